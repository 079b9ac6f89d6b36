// RunExportJob: `dipaco export` of a run's paths (export_run, shared/export/export_run.h) on a
// worker thread. export_run writes one log line per file; a GUI-thread timer reads them from a
// temporary file (5 times a second) and reports each as file_written(name, count so far).
// finished(ok, message) once: the files written, or export_run's error (which says what to do;
// a failed export leaves nothing behind). The export cannot be interrupted: the destructor
// waits for it.
#pragma once

#include <QObject>
#include <QString>
#include <memory>
#include <thread>

#include "export/export_run.h"

class QTemporaryDir;
class QTimer;

namespace dipaco::studio {

class RunExportJob : public QObject {
  Q_OBJECT

 public:
  explicit RunExportJob(QObject* parent = nullptr);
  ~RunExportJob() override;

  // False with *error when an export runs already or its log cannot be made. `options.log` is
  // the job's own.
  bool start(const QString& run_dir, const QString& out_dir, ExportOptions options, QString* error);
  bool running() const { return running_; }

 signals:
  void file_written(const QString& line, int files);
  void finished(bool ok, const QString& message);

 private:
  void poll();
  void done(bool ok, const QString& message);

  std::thread thread_;
  bool running_ = false;
  int files_ = 0;
  std::unique_ptr<QTemporaryDir> dir_;
  QString log_path_;
  qint64 log_pos_ = 0;
  QTimer* timer_ = nullptr;
};

}  // namespace dipaco::studio
