// RunsPanel: the history of runs under a runs folder (run_history.h: each run directory's
// coordinator.db and run.json, or metrics.jsonl alone).
//   One run selected: its validation curves per path (and routed) from metrics.jsonl, the mean
//     training loss per outer step from its database, and its summary.md. "Open in dashboard"
//     asks for the whole run to be replayed into the dashboard (open_in_dashboard).
//   Two selected: their headline validation curves (routed, else the mean over paths) and mean
//     training losses on one plot.
//   Export: the selected run's paths (Hugging Face and/or GGUF) to a folder by export_run on a
//     worker thread (ThreadedJob), with each file written shown and errors said plainly.
// The plot exports as CSV or PNG.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>
#include <optional>
#include <vector>

#include "run_history.h"

class QCheckBox;
class QCustomPlot;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;

namespace dipaco::studio {

class ThreadedJob;

class RunsPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RunsPanel(QWidget* parent = nullptr);
  // Stops the root field from rescanning while the panel is torn down (it loses focus then).
  ~RunsPanel() override;

  void set_root(const QString& root);
  QString root() const;
  // Rescans the root; returns the runs' labels (directory names under the root, sorted).
  QStringList refresh();
  const std::vector<RunRecord>& records() const { return records_; }
  // Shows one run (a directory path, or a record); false when it has no curves.
  bool open_run(const QString& dir);
  bool open_record(const RunRecord& run);
  // Compares two runs' headline validation and mean training curves.
  bool compare(const QString& a, const QString& b);
  // The one selected run, if exactly one is selected.
  std::optional<RunRecord> selected_run() const;

  // Exports the selected run's paths to `out_dir`; false with *error when nothing can start.
  bool export_selected(const QString& out_dir, bool hf, bool gguf, QString* error);
  bool exporting() const;
  QString export_status() const;

  QCustomPlot* plot() const { return plot_; }
  QListWidget* list() const { return list_; }
  QString summary_text() const;

 signals:
  // "Open in dashboard" on a selected run.
  void open_in_dashboard(const dipaco::studio::RunRecord& run);
  void exported(bool ok, const QString& message);

 private:
  void selection_changed();
  void choose_root();
  const RunRecord* record_for(const QString& dir) const;
  void set_export_status(const QString& text, bool ok);

  std::vector<RunRecord> records_;
  ThreadedJob* export_job_ = nullptr;
  int exported_files_ = 0;
  QLineEdit* root_ = nullptr;
  QListWidget* list_ = nullptr;
  QCustomPlot* plot_ = nullptr;
  QPlainTextEdit* summary_ = nullptr;
  QPushButton* open_dashboard_ = nullptr;
  QLineEdit* export_dir_ = nullptr;
  QCheckBox* export_hf_ = nullptr;
  QCheckBox* export_gguf_ = nullptr;
  QPushButton* export_button_ = nullptr;
  QProgressBar* export_progress_ = nullptr;
  QLabel* export_status_ = nullptr;
};

}  // namespace dipaco::studio
