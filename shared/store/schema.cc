#include "store/schema.h"

#include <string>

namespace dipaco {
namespace {

// v1: the coordinator's first schema. Times are unix milliseconds from the coordinator's clock.
// Ids handed to workers (leases) are AUTOINCREMENT so that they are never reused.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  request_id TEXT UNIQUE,
  state TEXT NOT NULL CHECK(state IN ('running', 'paused', 'finished')),
  outer_steps INTEGER NOT NULL CHECK(outer_steps > 0),
  inner_steps INTEGER NOT NULL CHECK(inner_steps > 0),
  lease_timeout_ms INTEGER NOT NULL CHECK(lease_timeout_ms > 0),
  max_lease_ms INTEGER NOT NULL CHECK(max_lease_ms >= 0),
  partial_min_fraction REAL NOT NULL,
  partial_after_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL);

CREATE TABLE modules(
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs(id),
  module_id INTEGER NOT NULL,
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 0,
  UNIQUE(run, module_id),
  UNIQUE(run, level, idx));

CREATE TABLE module_versions(
  module INTEGER NOT NULL REFERENCES modules(id),
  version INTEGER NOT NULL,
  checkpoint TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY(module, version));

CREATE TABLE paths(
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs(id),
  path_id INTEGER NOT NULL,
  UNIQUE(run, path_id));

CREATE TABLE path_modules(
  path INTEGER NOT NULL REFERENCES paths(id),
  position INTEGER NOT NULL,
  module INTEGER NOT NULL REFERENCES modules(id),
  PRIMARY KEY(path, position),
  UNIQUE(path, module));
CREATE INDEX path_modules_by_module ON path_modules(module);

CREATE TABLE shards(
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs(id),
  path INTEGER NOT NULL REFERENCES paths(id),
  shard_id INTEGER NOT NULL,
  tokens INTEGER NOT NULL CHECK(tokens >= 0),
  UNIQUE(run, shard_id));

CREATE TABLE tasks(
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs(id),
  path INTEGER NOT NULL REFERENCES paths(id),
  shard INTEGER NOT NULL REFERENCES shards(id),
  outer_step INTEGER NOT NULL,
  inner_steps INTEGER NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('queued', 'leased', 'done', 'skipped')),
  opened_ms INTEGER NOT NULL,
  UNIQUE(shard, outer_step));
CREATE INDEX tasks_by_state ON tasks(state, outer_step);
CREATE INDEX tasks_by_path ON tasks(path, outer_step);

CREATE TABLE workers(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  host TEXT NOT NULL,
  devices TEXT NOT NULL,
  version TEXT NOT NULL,
  registered_ms INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('active', 'draining')));

CREATE TABLE leases(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task INTEGER NOT NULL REFERENCES tasks(id),
  worker INTEGER NOT NULL REFERENCES workers(id),
  granted_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  hard_deadline_ms INTEGER,
  state TEXT NOT NULL CHECK(state IN ('live', 'completed', 'expired', 'preempted', 'cancelled')),
  ended_ms INTEGER,
  end_reason TEXT,
  last_sequence INTEGER,
  inner_step INTEGER NOT NULL DEFAULT 0);
CREATE INDEX leases_by_state ON leases(state, deadline_ms);
CREATE INDEX leases_by_task ON leases(task);
CREATE INDEX leases_by_worker ON leases(worker, state);

CREATE TABLE push_chunks(
  lease INTEGER NOT NULL REFERENCES leases(id),
  sequence INTEGER NOT NULL,
  module INTEGER NOT NULL REFERENCES modules(id),
  offset_bytes INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL,
  total_bytes INTEGER NOT NULL,
  file TEXT NOT NULL,
  PRIMARY KEY(lease, sequence));
CREATE INDEX push_chunks_by_module ON push_chunks(lease, module, offset_bytes);

CREATE TABLE reports(
  lease INTEGER NOT NULL REFERENCES leases(id),
  module INTEGER NOT NULL REFERENCES modules(id),
  total_bytes INTEGER NOT NULL,
  reported_ms INTEGER NOT NULL,
  PRIMARY KEY(lease, module));

CREATE TABLE aggregations(
  module INTEGER NOT NULL REFERENCES modules(id),
  outer_step INTEGER NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('collecting', 'ready', 'done')),
  first_report_ms INTEGER NOT NULL,
  ready_ms INTEGER,
  PRIMARY KEY(module, outer_step));
CREATE INDEX aggregations_by_state ON aggregations(state);

CREATE TABLE metrics(
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs(id),
  path INTEGER NOT NULL,
  outer_step INTEGER NOT NULL,
  inner_step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  time_ms INTEGER NOT NULL);
CREATE INDEX metrics_by_run ON metrics(run, path, name);

CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  run INTEGER REFERENCES runs(id),  -- NULL for events of no run (a worker told to drain)
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL);
CREATE INDEX events_by_run ON events(run, id);
)sql";

// v2: the run's opaque configuration (the operator's grid file); the gRPC service hands it to the
// task-config provider that turns it into hyper-parameters of tasks.
constexpr const char* kSchemaV2 = "ALTER TABLE runs ADD COLUMN config TEXT NOT NULL DEFAULT '';";

// v3: indexes for the coordinator's hot queries, so that their cost does not grow with the number
// of tasks or live leases: the next queued task in lease order (no sort of the whole queue), live
// leases by hard deadline (the sweep and the wait hint read both deadlines by range), and a
// path's shards (the tasks feeding a module step).
constexpr const char* kSchemaV3 =
    "CREATE INDEX tasks_in_lease_order ON tasks(state, outer_step, run, path, shard);"
    "CREATE INDEX leases_by_hard_deadline ON leases(state, hard_deadline_ms);"
    "CREATE INDEX shards_by_path ON shards(path);";

// v4: the structured fields of an event next to its sentence, so that watchers (WatchRun, the
// studio) get which lease, worker, path, shard, module, outer step and version it concerns.
constexpr const char* kSchemaV4 =
    "ALTER TABLE events ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN worker TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE events ADD COLUMN path INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN module INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN outer_step INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN version INTEGER NOT NULL DEFAULT 0;";

// v5: queued tasks by the time they opened, so that the wait hint finds the earliest end of a
// held task's affinity grace with one index seek, not a pass over the queue.
constexpr const char* kSchemaV5 = "CREATE INDEX tasks_by_opening ON tasks(state, opened_ms);";

// v6: the worker process that registered a worker id last (RegisterRequest.instance_id), so
// that a second process given the same id is refused while the first is still heard from.
constexpr const char* kSchemaV6 =
    "ALTER TABLE workers ADD COLUMN instance TEXT NOT NULL DEFAULT '';";

constexpr Migration kMigrations[] = {
    {1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4}, {5, kSchemaV5}, {6, kSchemaV6},
};

}  // namespace

std::span<const Migration> schema_migrations() {
  return kMigrations;
}
int latest_schema_version() {
  return kMigrations[std::size(kMigrations) - 1].version;
}

Result<int> schema_version(SqliteDb& db) {
  DIPACO_ASSIGN_OR_RETURN(
      auto exists,
      db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"));
  DIPACO_ASSIGN_OR_RETURN(bool has_table, exists.step());
  if (!has_table) return 0;
  DIPACO_ASSIGN_OR_RETURN(auto query, db.prepare("SELECT max(version) FROM schema_version"));
  DIPACO_ASSIGN_OR_RETURN(bool has_row, query.step());
  if (!has_row || query.column_is_null(0)) return 0;
  return static_cast<int>(query.column_int64(0));
}

Status apply_migrations(SqliteDb& db, std::span<const Migration> migrations) {
  if (migrations.empty()) return internal_error("no migrations");
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1)
      return internal_error("migration " + std::to_string(i) + " has version " +
                            std::to_string(migrations[i].version));
  }
  int latest = migrations.back().version;
  DIPACO_ASSIGN_OR_RETURN(int current, schema_version(db));
  if (current > latest)
    return failed_precondition(
        db.path() + " has schema version " + std::to_string(current) +
        " but this dipaco understands versions up to " + std::to_string(latest) +
        "; it was written by a newer dipaco: upgrade this binary (the database was not changed)");
  for (const Migration& migration : migrations) {
    if (migration.version <= current) continue;
    DIPACO_ASSIGN_OR_RETURN(auto transaction, Transaction::begin(db));
    DIPACO_RETURN_IF_ERROR(
        db.exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER "
                "NOT NULL)"));
    Status applied = db.exec(migration.sql);
    if (!applied.is_ok())
      return applied.with_context("schema migration to version " +
                                  std::to_string(migration.version));
    DIPACO_RETURN_IF_ERROR(db.exec("DELETE FROM schema_version"));
    DIPACO_ASSIGN_OR_RETURN(auto record,
                            db.prepare("INSERT INTO schema_version(version) VALUES (?1)"));
    DIPACO_RETURN_IF_ERROR(record.bind(1, migration.version).run());
    DIPACO_RETURN_IF_ERROR(transaction.commit());
  }
  return Status::ok();
}

Status migrate(SqliteDb& db) {
  return apply_migrations(db, schema_migrations());
}

}  // namespace dipaco
