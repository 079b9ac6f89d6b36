#include "run_history.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "store/sqlite_db.h"

namespace dipaco::studio {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Result<SqliteDb> open_database(const QString& dir) {
  SqliteOptions options;
  options.create_if_missing = false;
  options.synchronous = Synchronous::kNormal;  // the studio only reads
  return SqliteDb::open(QDir(dir).filePath(QStringLiteral("coordinator.db")).toStdString(),
                        options);
}

void read_results(const QString& dir, RunRecord* r) {
  QFile f(QDir(dir).filePath(QStringLiteral("run.json")));
  r->routed_val_loss = kNaN;
  if (!f.open(QIODevice::ReadOnly)) return;
  r->has_results = true;
  const QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
  if (o.contains(QStringLiteral("routed_val_loss")))
    r->routed_val_loss = o.value(QStringLiteral("routed_val_loss")).toDouble();
  if (r->name.isEmpty()) r->name = o.value(QStringLiteral("name")).toString();
  if (r->outer_steps == 0)
    r->outer_steps = static_cast<uint64_t>(o.value(QStringLiteral("outer_steps")).toDouble());
}

EventKind kind_named(const std::string& name) {
  for (int k = 0; k <= static_cast<int>(EventKind::kMetric); ++k) {
    if (name == event_kind_name(static_cast<EventKind>(k))) return static_cast<EventKind>(k);
  }
  return EventKind::kRunCreated;  // unreachable for this build's databases
}

Result<std::vector<RunEvent>> database_events(const RunRecord& run) {
  DIPACO_ASSIGN_OR_RETURN(SqliteDb db, open_database(run.dir));
  std::vector<RunEvent> events;
  DIPACO_ASSIGN_OR_RETURN(
      Statement metrics,
      db.prepare("SELECT path, outer_step, inner_step, name, value, time_ms FROM metrics "
                 "WHERE run = ?1 ORDER BY id"));
  metrics.bind(1, run.db_run_id);
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, metrics.step());
    if (!row) break;
    RunEvent e;
    e.kind = EventKind::kMetric;
    e.run_id = run.db_run_id;
    e.path_id = static_cast<uint32_t>(metrics.column_int64(0));
    e.outer_step = static_cast<uint64_t>(metrics.column_int64(1));
    e.inner_step = static_cast<uint64_t>(metrics.column_int64(2));
    e.metric_name = metrics.column_text(3);
    e.value = metrics.column_double(4);
    e.time_ms = metrics.column_int64(5);
    events.push_back(std::move(e));
  }
  DIPACO_ASSIGN_OR_RETURN(
      Statement stored,
      db.prepare("SELECT id, time_ms, kind, payload FROM events WHERE run = ?1 ORDER BY id"));
  stored.bind(1, run.db_run_id);
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, stored.step());
    if (!row) break;
    RunEvent e;
    e.id = stored.column_int64(0);
    e.run_id = run.db_run_id;
    e.time_ms = stored.column_int64(1);
    e.kind = kind_named(stored.column_text(2));
    e.detail = stored.column_text(3);
    events.push_back(std::move(e));
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const RunEvent& a, const RunEvent& b) { return a.time_ms < b.time_ms; });
  return events;
}

std::vector<RunEvent> jsonl_events(const QString& dir) {
  const RunMetrics m = load_run_metrics(dir);
  std::vector<RunEvent> events;
  auto metric = [&](uint32_t path, double step, const char* name, double value) {
    RunEvent e;
    e.kind = EventKind::kMetric;
    e.path_id = path;
    e.outer_step = static_cast<uint64_t>(step);
    e.metric_name = name;
    e.value = value;
    events.push_back(std::move(e));
  };
  for (const auto& [path, curve] : m.path_val) {
    for (const CurvePoint& p : curve)
      metric(static_cast<uint32_t>(path), p.outer_step, "val_loss", p.loss);
  }
  for (const CurvePoint& p : m.routed_val) metric(0, p.outer_step, "routed_val_loss", p.loss);
  for (const RoundTrafficPoint& t : m.traffic) {
    metric(0, t.outer_step, "bytes_up", t.bytes_up);
    metric(0, t.outer_step, "bytes_down", t.bytes_down);
  }
  return events;
}

}  // namespace

std::vector<RunRecord> list_runs(const QString& root) {
  std::vector<RunRecord> runs;
  const QDir base(root);
  for (const QString& entry : base.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
    const QString dir = base.filePath(entry);
    const QDir d(dir);
    const bool has_db = d.exists(QStringLiteral("coordinator.db"));
    if (!has_db && !d.exists(QStringLiteral("run.json")) &&
        !d.exists(QStringLiteral("metrics.jsonl")))
      continue;
    std::vector<RunRecord> found;
    QString problem;
    if (has_db) {
      auto db = open_database(dir);
      auto query = db.is_ok() ? db->prepare(
                                    "SELECT id, name, state, outer_steps, inner_steps, created_ms "
                                    "FROM runs ORDER BY id")
                              : Result<Statement>(db.status());
      while (query.is_ok()) {
        auto row = query->step();
        if (!row.is_ok()) {
          problem = QString::fromStdString(row.status().message());
          break;
        }
        if (!*row) break;
        RunRecord r;
        r.db_run_id = query->column_int64(0);
        r.name = QString::fromStdString(query->column_text(1));
        r.state = QString::fromStdString(query->column_text(2));
        r.outer_steps = static_cast<uint64_t>(query->column_int64(3));
        r.inner_steps = static_cast<uint32_t>(query->column_int64(4));
        r.created_ms = query->column_int64(5);
        found.push_back(std::move(r));
      }
      if (!query.is_ok()) problem = QString::fromStdString(query.status().message());
    }
    if (found.empty()) {
      RunRecord r;
      r.state = d.exists(QStringLiteral("run.json")) ? QStringLiteral("finished")
                                                     : QStringLiteral("unknown");
      r.problem = problem;
      found.push_back(std::move(r));
    }
    for (RunRecord& r : found) {
      r.dir = dir;
      r.label =
          found.size() > 1 ? QStringLiteral("%1 · run %2").arg(entry).arg(r.db_run_id) : entry;
      read_results(dir, &r);
      if (r.name.isEmpty()) r.name = entry;
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

Result<std::vector<RunEvent>> load_run_events(const RunRecord& run) {
  if (run.db_run_id == 0) return jsonl_events(run.dir);
  return database_events(run);
}

std::vector<CurvePoint> mean_train_loss(const std::vector<RunEvent>& events) {
  std::map<uint64_t, std::pair<double, int>> sums;
  for (const RunEvent& e : events) {
    if (e.kind != EventKind::kMetric || e.metric_name != "train_loss" || !std::isfinite(e.value))
      continue;
    sums[e.outer_step].first += e.value;
    sums[e.outer_step].second += 1;
  }
  std::vector<CurvePoint> out;
  for (const auto& [step, sum] : sums)
    out.push_back({static_cast<double>(step) + 0.5, sum.first / sum.second});
  return out;
}

}  // namespace dipaco::studio
