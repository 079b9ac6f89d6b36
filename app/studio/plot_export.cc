#include "plot_export.h"

#include <qcustomplot.h>

#include <QFile>
#include <QFileDialog>
#include <QMenu>
#include <QTextStream>

namespace dipaco::studio {

namespace {

QString csv_field(QString s) {
  if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"'))) {
    s.replace(QStringLiteral("\""), QStringLiteral("\"\""));
    return QLatin1Char('"') + s + QLatin1Char('"');
  }
  return s;
}

}  // namespace

QString plot_csv(QCustomPlot* plot) {
  QString out = QStringLiteral("series,x,y\n");
  for (int i = 0; i < plot->plottableCount(); ++i) {
    QCPAbstractPlottable* p = plot->plottable(i);
    const QString name = csv_field(p->name());
    auto rows = [&](auto* data) {
      for (auto it = data->constBegin(); it != data->constEnd(); ++it) {
        out += name + QLatin1Char(',') + QString::number(it->mainKey(), 'g', 10) +
               QLatin1Char(',') + QString::number(it->mainValue(), 'g', 10) + QLatin1Char('\n');
      }
    };
    if (auto* g = qobject_cast<QCPGraph*>(p)) {
      rows(g->data().data());
    } else if (auto* b = qobject_cast<QCPBars*>(p)) {
      rows(b->data().data());
    }
  }
  return out;
}

bool export_plot(QCustomPlot* plot, const QString& path, int width, int height) {
  if (path.endsWith(QStringLiteral(".csv"), Qt::CaseInsensitive)) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) return false;
    QTextStream(&f) << plot_csv(plot);
    return f.error() == QFile::NoError;
  }
  return plot->savePng(path, width > 0 ? width : plot->width(),
                       height > 0 ? height : plot->height());
}

void add_export_menu(QCustomPlot* plot) {
  plot->setContextMenuPolicy(Qt::CustomContextMenu);
  QObject::connect(plot, &QWidget::customContextMenuRequested, plot, [plot](const QPoint& at) {
    QMenu menu(plot);
    menu.addAction(QObject::tr("Export PNG…"));
    QAction* csv = menu.addAction(QObject::tr("Export CSV…"));
    QAction* chosen = menu.exec(plot->mapToGlobal(at));
    if (chosen == nullptr) return;
    const bool as_csv = chosen == csv;
    const QString path = QFileDialog::getSaveFileName(
        plot, as_csv ? QObject::tr("Export CSV") : QObject::tr("Export PNG"), QString(),
        as_csv ? QObject::tr("CSV (*.csv)") : QObject::tr("PNG image (*.png)"));
    if (!path.isEmpty()) export_plot(plot, path);
  });
}

}  // namespace dipaco::studio
