// ShardPlanJob: the routing stage of a grid (prepare_shards, shared/run/shard_routing.h) on a
// worker thread, for the data panel to show shard sizes before a run: it trains the routing
// base model when the grid needs one, fits the router and writes shards/ and routing.json into
// the grid's run directory (which a later run of the same grid reuses as they are).
// Its progress lines go to a temporary file that a GUI-thread timer reads (5 times a second):
// progress(line, percent) with percent -1 when the line has none. finished(ok, message) once.
// The stage cannot be interrupted: the destructor waits for it.
#pragma once

#include <QObject>
#include <QString>
#include <memory>
#include <thread>

#include "algo/grid_spec.h"

class QTemporaryDir;
class QTimer;

namespace dipaco::studio {

class ShardPlanJob : public QObject {
  Q_OBJECT

 public:
  explicit ShardPlanJob(QObject* parent = nullptr);
  ~ShardPlanJob() override;

  // False with *error when a plan is running or the grid cannot be planned (its training
  // tokens unreadable when the vocabulary comes from the data).
  bool start(GridSpec grid, int threads, QString* error);
  bool running() const { return running_; }
  // Everything the stage printed so far.
  QString output() const { return output_; }

 signals:
  void progress(const QString& line, int percent);
  void finished(bool ok, const QString& message);

 private:
  void poll();
  void done(bool ok, const QString& message);

  std::thread thread_;
  bool running_ = false;
  std::unique_ptr<QTemporaryDir> dir_;
  QString log_path_;
  qint64 log_pos_ = 0;
  QString output_;
  QTimer* timer_ = nullptr;
};

// The percentage in a Progress line ("features: 120/480 docs (25%), ..."), or -1.
int progress_percent(const QString& line);

}  // namespace dipaco::studio
