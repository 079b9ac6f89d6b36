#include "run_export_job.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTimer>
#include <cstdio>

namespace dipaco::studio {

RunExportJob::RunExportJob(QObject* parent) : QObject(parent) {
  timer_ = new QTimer(this);
  timer_->setInterval(200);
  connect(timer_, &QTimer::timeout, this, &RunExportJob::poll);
}

RunExportJob::~RunExportJob() {
  if (thread_.joinable()) thread_.join();
}

bool RunExportJob::start(const QString& run_dir, const QString& out_dir, ExportOptions options,
                         QString* error) {
  if (running_) {
    *error = tr("an export is running; wait for it");
    return false;
  }
  if (out_dir.trimmed().isEmpty()) {
    *error = tr("no output folder: choose where the exported paths go");
    return false;
  }
  if (thread_.joinable()) thread_.join();
  dir_ = std::make_unique<QTemporaryDir>();
  log_path_ = dir_->filePath(QStringLiteral("export.txt"));
  FILE* log = std::fopen(log_path_.toLocal8Bit().constData(), "w");
  if (log == nullptr) {
    *error = tr("cannot create %1").arg(log_path_);
    return false;
  }
  setvbuf(log, nullptr, _IOLBF, 0);  // each line reaches the file as it is written
  options.log = log;
  log_pos_ = 0;
  files_ = 0;
  running_ = true;
  timer_->start();
  thread_ =
      std::thread([this, run = run_dir.toStdString(), out = out_dir.toStdString(), options, log] {
        auto summary = export_run(run, out, options);
        std::fclose(log);
        const bool ok = summary.is_ok();
        QString message;
        if (ok) {
          message = tr("exported %1 paths (%2 files) to %3")
                        .arg(summary->path_ids.size())
                        .arg(summary->files.size())
                        .arg(QString::fromStdString(summary->out_dir));
        } else {
          message = QString::fromStdString(summary.status().message());
        }
        QMetaObject::invokeMethod(
            this, [this, ok, message] { done(ok, message); }, Qt::QueuedConnection);
      });
  return true;
}

void RunExportJob::poll() {
  QFile f(log_path_);
  if (!f.open(QIODevice::ReadOnly) || !f.seek(log_pos_)) return;
  const QByteArray more = f.readAll();
  const qsizetype end = more.lastIndexOf('\n');
  if (end < 0) return;
  log_pos_ += end + 1;
  for (const QByteArray& line : more.left(end).split('\n')) {
    if (line.trimmed().isEmpty()) continue;
    emit file_written(QString::fromUtf8(line.trimmed()), ++files_);
  }
}

void RunExportJob::done(bool ok, const QString& message) {
  if (thread_.joinable()) thread_.join();
  poll();
  timer_->stop();
  running_ = false;
  emit finished(ok, message);
}

}  // namespace dipaco::studio
