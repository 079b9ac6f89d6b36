// Export of any QCustomPlot: PNG (as drawn) and CSV (every graph's and bar chart's points as
// "series,x,y" rows, series named by the plottable's legend name). add_export_menu() gives a
// plot a right-click menu with both.
#pragma once

#include <QString>

class QCustomPlot;

namespace dipaco::studio {

// "series,x,y\n" then one row per point of every graph and bar chart, in plottable order.
QString plot_csv(QCustomPlot* plot);
// Writes `path` as CSV when it ends in .csv, else PNG (at the widget's size, or width×height
// when both are > 0). False on a write error.
bool export_plot(QCustomPlot* plot, const QString& path, int width = 0, int height = 0);
// Right-click menu: "Export PNG…", "Export CSV…" (file dialogs).
void add_export_menu(QCustomPlot* plot);

}  // namespace dipaco::studio
