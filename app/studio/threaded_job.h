// ThreadedJob: one long core step (the routing stage, an export, ...) on a worker thread, its
// log brought to the GUI thread. work(log) runs on a std::thread and writes lines to `log` (a
// line-buffered temporary file); a GUI-thread timer reads the whole lines written so far, 5
// times a second, and emits them. finished(ok, message) comes once, after the last lines.
// A step cannot be interrupted: the destructor waits for it.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

class QTemporaryDir;
class QTimer;

namespace dipaco::studio {

struct JobOutcome {
  bool ok = false;
  QString message;  // what was done, or the error (which says what to do)
};

class ThreadedJob : public QObject {
  Q_OBJECT

 public:
  explicit ThreadedJob(QObject* parent = nullptr);
  ~ThreadedJob() override;

  using Work = std::function<JobOutcome(FILE* log)>;
  // False with *error while a job runs or when the log cannot be made.
  bool start(Work work, QString* error);
  bool running() const { return running_; }
  // Every line logged since start().
  const QStringList& log() const { return log_; }

 signals:
  void lines(const QStringList& lines);
  void finished(bool ok, const QString& message);

 private:
  void poll();
  void done(const JobOutcome& outcome);

  std::thread thread_;
  bool running_ = false;
  std::unique_ptr<QTemporaryDir> dir_;
  QString log_path_;
  qint64 log_pos_ = 0;
  QStringList log_;
  QTimer* timer_ = nullptr;
};

// The percentage in a Progress line ("features: 120/480 docs (25%), ..."), or -1.
int progress_percent(const QString& line);

}  // namespace dipaco::studio
