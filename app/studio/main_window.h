// The studio's main window. Panels (grid designer, data, launch, dashboard, runs) are separate
// widget classes added as tabs; this class only arranges and wires them:
//   designer grid -> launch (Start takes it) and data (Plan shards); data files -> designer;
//   designer estimates -> dashboard (data-parallel line); launch events -> dashboard buffer;
//   launch RunControl -> dashboard actions; a finished run -> runs list; a past run (Runs, "Open
//   in dashboard") -> dashboard, replayed; attaching to dipaco serve -> the dashboard takes the
//   attachment's RunControl until it ends.
// Settings (QSettings "dipaco"/"dipaco-studio"): window geometry and state, current tab, last
// grid file, runs folder, SSH template/host/config, attach address/TLS/CA file/run (never the
// token), the data panel's corpus and tokenizer settings, loss-plot log scale and smoothing.
// Shortcuts: Ctrl+O / Ctrl+S grid, Ctrl+1..6 tabs, F5 start, Shift+F5 stop, Ctrl+Q quit.
#pragma once

#include <QMainWindow>
#include <QString>

#include "run_history.h"

class QTabWidget;

namespace dipaco::studio {

class DashboardPanel;
class DataPanel;
class GridDesignerPanel;
class LaunchPanel;
class RunsPanel;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  // Detaches the dashboard from the launch panel's RunControl before the panels go.
  ~MainWindow() override;

  GridDesignerPanel* designer() const { return designer_; }
  DataPanel* data() const { return data_; }
  LaunchPanel* launch() const { return launch_; }
  DashboardPanel* dashboard() const { return dashboard_; }
  RunsPanel* runs() const { return runs_; }
  QTabWidget* tabs() const { return tabs_; }
  // Replays a past run's recorded metrics and events into the dashboard (the runs panel's
  // "Open in dashboard"); false with *error while a live run or an attachment owns it.
  bool replay_in_dashboard(const RunRecord& run, QString* error);

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void restore_settings();
  void save_settings() const;

  QTabWidget* tabs_ = nullptr;
  GridDesignerPanel* designer_ = nullptr;
  DataPanel* data_ = nullptr;
  LaunchPanel* launch_ = nullptr;
  DashboardPanel* dashboard_ = nullptr;
  RunsPanel* runs_ = nullptr;
};

}  // namespace dipaco::studio
