#include "threaded_job.h"

#include <QFile>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTimer>

namespace dipaco::studio {

int progress_percent(const QString& line) {
  static const QRegularExpression percent(QStringLiteral("\\((\\d+)%\\)"));
  const QRegularExpressionMatch m = percent.match(line);
  return m.hasMatch() ? m.captured(1).toInt() : -1;
}

ThreadedJob::ThreadedJob(QObject* parent) : QObject(parent) {
  timer_ = new QTimer(this);
  timer_->setInterval(200);
  connect(timer_, &QTimer::timeout, this, &ThreadedJob::poll);
}

ThreadedJob::~ThreadedJob() {
  if (thread_.joinable()) thread_.join();
}

bool ThreadedJob::start(Work work, QString* error) {
  if (running_) {
    *error = tr("a job is running; wait for it");
    return false;
  }
  if (thread_.joinable()) thread_.join();
  dir_ = std::make_unique<QTemporaryDir>();
  log_path_ = dir_->filePath(QStringLiteral("log.txt"));
  FILE* log = std::fopen(log_path_.toLocal8Bit().constData(), "w");
  if (log == nullptr) {
    *error = tr("cannot create %1").arg(log_path_);
    return false;
  }
  setvbuf(log, nullptr, _IOLBF, 0);  // each line reaches the file as it is written
  log_pos_ = 0;
  log_.clear();
  running_ = true;
  timer_->start();
  thread_ = std::thread([this, work = std::move(work), log] {
    const JobOutcome outcome = work(log);
    std::fclose(log);
    QMetaObject::invokeMethod(
        this, [this, outcome] { done(outcome); }, Qt::QueuedConnection);
  });
  return true;
}

void ThreadedJob::poll() {
  QFile f(log_path_);
  if (!f.open(QIODevice::ReadOnly) || !f.seek(log_pos_)) return;
  const QByteArray more = f.readAll();
  const qsizetype end = more.lastIndexOf('\n');
  if (end < 0) return;
  log_pos_ += end + 1;
  QStringList fresh;
  for (const QByteArray& line : more.left(end).split('\n')) {
    if (!line.trimmed().isEmpty()) fresh << QString::fromUtf8(line.trimmed());
  }
  if (fresh.isEmpty()) return;
  log_ << fresh;
  emit lines(fresh);
}

void ThreadedJob::done(const JobOutcome& outcome) {
  if (thread_.joinable()) thread_.join();
  poll();
  timer_->stop();
  running_ = false;
  emit finished(outcome.ok, outcome.message);
}

}  // namespace dipaco::studio
