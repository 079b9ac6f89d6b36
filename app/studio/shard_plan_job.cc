#include "shard_plan_job.h"

#include <QFile>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTimer>
#include <cstdio>

#include "data/token_file.h"
#include "run/run_layout.h"
#include "run/shard_routing.h"

namespace dipaco::studio {

int progress_percent(const QString& line) {
  static const QRegularExpression percent(QStringLiteral("\\((\\d+)%\\)"));
  const QRegularExpressionMatch m = percent.match(line);
  return m.hasMatch() ? m.captured(1).toInt() : -1;
}

ShardPlanJob::ShardPlanJob(QObject* parent) : QObject(parent) {
  timer_ = new QTimer(this);
  timer_->setInterval(200);
  connect(timer_, &QTimer::timeout, this, &ShardPlanJob::poll);
}

ShardPlanJob::~ShardPlanJob() {
  if (thread_.joinable()) thread_.join();
}

bool ShardPlanJob::start(GridSpec grid, int threads, QString* error) {
  if (running_) {
    *error = tr("shards are being planned already");
    return false;
  }
  if (grid.vocab_from_data) {
    auto train = TokenFile::open(grid.train_tokens);
    if (!train.is_ok()) {
      *error = tr("cannot plan shards: %1 (prepare the data first)")
                   .arg(QString::fromStdString(train.status().message()));
      return false;
    }
    grid.model.vocab_size = static_cast<int>(train->vocab_size());
  }
  if (Status s = grid.validate(); !s) {
    *error = QString::fromStdString(s.message());
    return false;
  }
  if (thread_.joinable()) thread_.join();
  dir_ = std::make_unique<QTemporaryDir>();
  log_path_ = dir_->filePath(QStringLiteral("plan.txt"));
  FILE* out = std::fopen(log_path_.toLocal8Bit().constData(), "w");
  if (out == nullptr) {
    *error = tr("cannot create %1").arg(log_path_);
    return false;
  }
  setvbuf(out, nullptr, _IOLBF, 0);  // each line reaches the file as it is written
  log_pos_ = 0;
  output_.clear();
  running_ = true;
  timer_->start();
  thread_ = std::thread([this, grid = std::move(grid), threads, out] {
    const RunLayout layout{grid.dir};
    auto plan = prepare_shards(grid, layout, threads, out);
    std::fclose(out);
    const bool ok = plan.is_ok();
    const QString message = ok ? tr("routed into %1 shards in %2")
                                     .arg(plan->shard_tokens.size())
                                     .arg(QString::fromStdString(grid.dir))
                               : QString::fromStdString(plan.status().message());
    QMetaObject::invokeMethod(
        this, [this, ok, message] { done(ok, message); }, Qt::QueuedConnection);
  });
  return true;
}

void ShardPlanJob::poll() {
  QFile f(log_path_);
  if (!f.open(QIODevice::ReadOnly) || !f.seek(log_pos_)) return;
  const QByteArray more = f.readAll();
  const qsizetype end = more.lastIndexOf('\n');
  if (end < 0) return;
  log_pos_ += end + 1;
  const QString text = QString::fromUtf8(more.left(end));
  output_ += text + QLatin1Char('\n');
  const QStringList lines = text.split(QLatin1Char('\n'));
  emit progress(lines.last(), progress_percent(lines.last()));
}

void ShardPlanJob::done(bool ok, const QString& message) {
  if (thread_.joinable()) thread_.join();
  poll();
  timer_->stop();
  running_ = false;
  emit finished(ok, message);
}

}  // namespace dipaco::studio
