// Coordinator: opening, the deadline sweep, events, runs and operator actions.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <utility>

#include "coordinator/coordinator_internal.h"
#include "store/schema.h"

namespace dipaco {

Coordinator::Coordinator(CoordinatorOptions options, SqliteDb db)
    : options_(std::move(options)), store_(options_.gradient_store), db_(std::move(db)) {
  if (!store_) store_ = std::make_shared<OuterGradientFiles>(options_.payload_dir);
}

Result<std::string> Coordinator::read_gradient(const GradientReport& report) const {
  return store_->read_all(report.chunks);
}

Coordinator::~Coordinator() = default;

Result<std::unique_ptr<Coordinator>> Coordinator::open(CoordinatorOptions options) {
  if (options.db_path.empty()) return invalid_argument("db_path: empty");
  if (options.payload_dir.empty() && !options.gradient_store)
    return invalid_argument("payload_dir: empty");
  if (!options.clock) return invalid_argument("clock: not set");
  // kFull: SQLite commits without fsync (NORMAL) and each call that changed state waits for a
  // group fdatasync of the WAL before it returns, outside the mutex (WalGroupSync).
  bool group_commit =
      options.sqlite.synchronous == Synchronous::kFull && options.db_path != ":memory:";
  SqliteOptions sqlite = options.sqlite;
  if (group_commit) sqlite.synchronous = Synchronous::kNormal;
  DIPACO_ASSIGN_OR_RETURN(SqliteDb db, SqliteDb::open(options.db_path, sqlite));
  DIPACO_RETURN_IF_ERROR(migrate(db));
  std::unique_ptr<WalGroupSync> wal_sync;
  if (group_commit) {
    // The -wal file exists from the first transaction on (migrate ran one) while this connection
    // is open. Whatever was committed before, with any setting, is made durable here first.
    DIPACO_ASSIGN_OR_RETURN(wal_sync, WalGroupSync::open(options.db_path + "-wal"));
    DIPACO_RETURN_IF_ERROR(wal_sync->wait_durable(wal_sync->committed()));
  }
  Downtime downtime;
  {
    downtime.until_ms = options.clock();
    DIPACO_ASSIGN_OR_RETURN(auto last_heard,
                            query_int(db, "SELECT max(last_heartbeat_ms) FROM workers"));
    DIPACO_ASSIGN_OR_RETURN(  // the latest event by rowid: one lookup
        auto last_event, query_int(db, "SELECT time_ms FROM events ORDER BY id DESC LIMIT 1"));
    std::optional<int64_t> last_recorded = last_heard;
    if (last_event) last_recorded = std::max(last_recorded.value_or(*last_event), *last_event);
    if (last_recorded)
      downtime.length_ms = std::max<int64_t>(0, downtime.until_ms - *last_recorded);
  }
  if (options.restart == RestartPolicy::kKeepLeases) {
    // Before any call sweeps overdue leases: the coordinator's own downtime does not count
    // against the leases in flight, which get one lease timeout from now (never past a hard
    // deadline, never earlier than the deadline they had).
    DIPACO_ASSIGN_OR_RETURN(auto transaction, Transaction::begin(db));
    const int64_t now = options.clock();
    DIPACO_RETURN_IF_ERROR(
        exec_sql(db,
                 "UPDATE leases SET deadline_ms = max(deadline_ms, min(coalesce(hard_deadline_ms, "
                 "9223372036854775807), ?1 + (SELECT r.lease_timeout_ms FROM tasks t JOIN runs r "
                 "ON r.id = t.run WHERE t.id = leases.task))) WHERE state = 'live'",
                 now));
    DIPACO_RETURN_IF_ERROR(transaction.commit());
  }
  std::unique_ptr<Coordinator> coordinator(new Coordinator(std::move(options), std::move(db)));
  coordinator->wal_sync_ = std::move(wal_sync);
  coordinator->downtime_ = downtime;
  if (coordinator->options_.restart == RestartPolicy::kExpireLeases) {
    auto expired = coordinator->call<bool>([&](int64_t now) -> Result<bool> {
      DIPACO_RETURN_IF_ERROR(coordinator->expire_leases_at_restart(now));
      coordinator->downtime_.leases_ended_ms = now;
      return true;
    });
    if (!expired.is_ok()) return expired.status();
  }
  return coordinator;
}

Coordinator::DurabilityStats Coordinator::durability_stats() const {
  if (!wal_sync_) return {};
  return {wal_sync_->durable_commits(), wal_sync_->syncs()};
}

void Coordinator::set_event_sink(std::function<void(const RunEvent&)> sink) {
  std::lock_guard lock(mutex_);
  sink_ = std::move(sink);
}

Status Coordinator::publish(RunEvent event) {
  if (event.kind != EventKind::kMetric) {
    DIPACO_ASSIGN_OR_RETURN(
        Statement insert,
        bound(db_,
              "INSERT INTO events(run, time_ms, kind, payload, lease, worker, path, shard, module, "
              "outer_step, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
              event.run_id == 0 ? std::optional<int64_t>() : std::optional<int64_t>(event.run_id),
              event.time_ms, event_kind_name(event.kind), event.detail, event.lease_id,
              event.worker_id, static_cast<int64_t>(event.path_id),
              static_cast<int64_t>(event.shard_id), static_cast<int64_t>(event.module_id),
              static_cast<int64_t>(event.outer_step), static_cast<int64_t>(event.version)));
    DIPACO_RETURN_IF_ERROR(insert.run());
    event.id = db_.last_insert_rowid();
  }
  pending_events_.push_back(std::move(event));
  return Status::ok();
}

Status Coordinator::sweep(int64_t now) {
  DIPACO_ASSIGN_OR_RETURN(
      // Two index ranges (leases_by_state, leases_by_hard_deadline): every call runs this, so
      // its cost must not grow with the number of live leases.
      Statement due, bound(db_,
                           "SELECT id FROM leases WHERE state = 'live' AND deadline_ms <= ?1 "
                           "UNION SELECT id FROM leases WHERE state = 'live' AND "
                           "hard_deadline_ms <= ?1 ORDER BY id",
                           now));
  std::vector<int64_t> ids;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, due.step());
    if (!row) break;
    ids.push_back(due.column_int64(0));
  }
  for (int64_t id : ids) {
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(id));
    if (!lease) return internal_error("lease " + std::to_string(id) + " vanished");
    DIPACO_ASSIGN_OR_RETURN(
        auto timeout,
        query_int(db_, "SELECT lease_timeout_ms FROM runs WHERE id = ?1", lease->run));
    std::string reason;
    if (lease->hard_deadline_ms && *lease->hard_deadline_ms <= now &&
        *lease->hard_deadline_ms <= lease->deadline_ms) {
      reason = "lease " + std::to_string(id) + " expired at " +
               format_unix_ms(*lease->hard_deadline_ms) +
               ": it reached the run's max_lease_ms; task requeued";
    } else {
      reason = "lease " + std::to_string(id) + " expired at " + format_unix_ms(lease->deadline_ms) +
               ": no heartbeat for " + std::to_string(timeout.value_or(0)) + " ms; task requeued";
    }
    DIPACO_RETURN_IF_ERROR(
        end_lease(*lease, "expired", reason, /*requeue=*/true, EventKind::kLeaseExpired, now));
  }
  return apply_partial_aggregation(now);
}

Status Coordinator::expire_leases_at_restart(int64_t now) {
  DIPACO_ASSIGN_OR_RETURN(Statement live,
                          db_.prepare("SELECT id FROM leases WHERE state = 'live' ORDER BY id"));
  std::vector<int64_t> ids;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, live.step());
    if (!row) break;
    ids.push_back(live.column_int64(0));
  }
  for (int64_t id : ids) {
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(id));
    if (!lease) return internal_error("lease " + std::to_string(id) + " vanished");
    std::string reason = "lease " + std::to_string(id) + " expired at " + format_unix_ms(now) +
                         ": the coordinator restarted; task requeued";
    DIPACO_RETURN_IF_ERROR(
        end_lease(*lease, "expired", reason, /*requeue=*/true, EventKind::kLeaseExpired, now));
  }
  return Status::ok();
}

Status Coordinator::tick() {
  return call<bool>([](int64_t) -> Result<bool> { return true; }).status();
}

// ---- runs ---------------------------------------------------------------------------------

Result<int64_t> Coordinator::create_run(const RunSpec& spec) {
  DIPACO_RETURN_IF_ERROR(validate_run_spec(spec));
  return call<int64_t>([&](int64_t now) -> Result<int64_t> {
    if (!spec.request_id.empty()) {
      DIPACO_ASSIGN_OR_RETURN(
          auto existing,
          query_int(db_, "SELECT id FROM runs WHERE request_id = ?1", spec.request_id));
      if (existing) return *existing;
    }
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_,
        "INSERT INTO runs(name, request_id, state, outer_steps, inner_steps, lease_timeout_ms, "
        "max_lease_ms, partial_min_fraction, partial_after_ms, created_ms, config) "
        "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        spec.name, spec.request_id.empty() ? std::optional<int64_t>() : std::optional<int64_t>(),
        spec.outer_steps, spec.inner_steps, spec.lease_timeout_ms, spec.max_lease_ms,
        spec.partial.min_fraction, spec.partial.after_ms, now, spec.config));
    int64_t run = db_.last_insert_rowid();
    if (!spec.request_id.empty())
      DIPACO_RETURN_IF_ERROR(
          exec_sql(db_, "UPDATE runs SET request_id = ?1 WHERE id = ?2", spec.request_id, run));
    std::map<uint32_t, int64_t> module_rows;
    for (const ModuleSpec& module : spec.modules) {
      DIPACO_RETURN_IF_ERROR(exec_sql(
          db_,
          "INSERT INTO modules(run, module_id, level, idx, version) VALUES (?1, ?2, ?3, ?4, 0)",
          run, module.module_id, module.level, module.index));
      int64_t row = db_.last_insert_rowid();
      module_rows[module.module_id] = row;
      DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                      "INSERT INTO module_versions(module, version, checkpoint, "
                                      "sha256, created_ms) VALUES (?1, 0, ?2, ?3, ?4)",
                                      row, module.initial_checkpoint, module.initial_sha256, now));
    }
    for (const PathSpec& path : spec.paths) {
      DIPACO_RETURN_IF_ERROR(
          exec_sql(db_, "INSERT INTO paths(run, path_id) VALUES (?1, ?2)", run, path.path_id));
      int64_t path_row = db_.last_insert_rowid();
      for (size_t i = 0; i < path.module_ids.size(); ++i) {
        DIPACO_RETURN_IF_ERROR(
            exec_sql(db_, "INSERT INTO path_modules(path, position, module) VALUES (?1, ?2, ?3)",
                     path_row, static_cast<int64_t>(i), module_rows.at(path.module_ids[i])));
      }
      for (const ShardSpec& shard : path.shards) {
        DIPACO_RETURN_IF_ERROR(
            exec_sql(db_, "INSERT INTO shards(run, path, shard_id, tokens) VALUES (?1, ?2, ?3, ?4)",
                     run, path_row, shard.shard_id, shard.tokens));
      }
      DIPACO_RETURN_IF_ERROR(open_step(path_row, 0, now));
    }
    RunEvent event;
    event.run_id = run;
    event.time_ms = now;
    event.kind = EventKind::kRunCreated;
    event.detail = "run " + std::to_string(run) + " \"" + spec.name +
                   "\" created: " + std::to_string(spec.paths.size()) + " paths, " +
                   std::to_string(spec.modules.size()) + " modules, " +
                   std::to_string(spec.outer_steps) +
                   " outer steps of H=" + std::to_string(spec.inner_steps);
    DIPACO_RETURN_IF_ERROR(publish(std::move(event)));
    return run;
  });
}

namespace {

Result<std::string> run_state(SqliteDb& db, int64_t run_id) {
  DIPACO_ASSIGN_OR_RETURN(Statement query,
                          bound(db, "SELECT state FROM runs WHERE id = ?1", run_id));
  DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
  if (!row) return not_found("run " + std::to_string(run_id) + " does not exist");
  return query.column_text(0);
}

// An operator action on an id no worker registered with: said in the operator's terms (the
// worker-facing "register first" is no help to them).
Status unknown_worker_for_operator(const Status& status, const std::string& worker_id) {
  if (status.code() != StatusCode::kNotFound) return status;
  return not_found("no worker with id \"" + worker_id + "\" (see dipaco ctl workers)");
}

}  // namespace

Result<OperatorReply> Coordinator::pause(int64_t run_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    DIPACO_ASSIGN_OR_RETURN(std::string state, run_state(db_, run_id));
    std::string name = "run " + std::to_string(run_id);
    if (state != "running") return OperatorReply{false, name + " is " + state};
    DIPACO_RETURN_IF_ERROR(exec_sql(db_, "UPDATE runs SET state = 'paused' WHERE id = ?1", run_id));
    RunEvent event;
    event.run_id = run_id;
    event.time_ms = now;
    event.kind = EventKind::kRunPaused;
    event.detail = name + " paused: no new leases; leases in flight continue";
    DIPACO_RETURN_IF_ERROR(publish(event));
    return OperatorReply{true, event.detail};
  });
}

Result<OperatorReply> Coordinator::resume(int64_t run_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    DIPACO_ASSIGN_OR_RETURN(std::string state, run_state(db_, run_id));
    std::string name = "run " + std::to_string(run_id);
    if (state != "paused") return OperatorReply{false, name + " is " + state};
    DIPACO_RETURN_IF_ERROR(
        exec_sql(db_, "UPDATE runs SET state = 'running' WHERE id = ?1", run_id));
    RunEvent event;
    event.run_id = run_id;
    event.time_ms = now;
    event.kind = EventKind::kRunResumed;
    event.detail = name + " resumed";
    DIPACO_RETURN_IF_ERROR(publish(event));
    return OperatorReply{true, event.detail};
  });
}

Result<OperatorReply> Coordinator::set_inner_steps(int64_t run_id, uint32_t inner_steps) {
  if (inner_steps == 0) return invalid_argument("inner_steps: must be at least 1");
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    DIPACO_ASSIGN_OR_RETURN(std::string state, run_state(db_, run_id));
    std::string name = "run " + std::to_string(run_id);
    if (state == "finished") return OperatorReply{false, name + " is finished"};
    DIPACO_ASSIGN_OR_RETURN(auto current,
                            query_int(db_, "SELECT inner_steps FROM runs WHERE id = ?1", run_id));
    if (current && *current == inner_steps)
      return OperatorReply{false, name + " already uses H=" + std::to_string(inner_steps)};
    DIPACO_RETURN_IF_ERROR(
        exec_sql(db_, "UPDATE runs SET inner_steps = ?1 WHERE id = ?2", inner_steps, run_id));
    RunEvent event;
    event.run_id = run_id;
    event.time_ms = now;
    event.kind = EventKind::kInnerStepsChanged;
    event.version = inner_steps;
    event.detail = name + ": H=" + std::to_string(inner_steps) +
                   " for tasks opened from now on (the next outer step)";
    DIPACO_RETURN_IF_ERROR(publish(event));
    return OperatorReply{true, event.detail};
  });
}

Result<OperatorReply> Coordinator::preempt(int64_t lease_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
    if (!lease) return not_found("lease " + std::to_string(lease_id) + " does not exist");
    if (lease->state != "live")
      return OperatorReply{false, "lease " + std::to_string(lease_id) + " is already " +
                                      lease->state + ": " + lease->end_reason};
    std::string reason = "lease " + std::to_string(lease_id) + " preempted by an operator at " +
                         format_unix_ms(now) + "; task requeued";
    DIPACO_RETURN_IF_ERROR(
        end_lease(*lease, "preempted", reason, /*requeue=*/true, EventKind::kLeasePreempted, now));
    return OperatorReply{true, reason};
  });
}

Result<OperatorReply> Coordinator::release_lease(int64_t lease_id, const std::string& worker_id,
                                                 const std::string& why,
                                                 const std::string& instance_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
    std::string name = "lease " + std::to_string(lease_id);
    if (!lease || lease->worker_id != worker_id)
      return failed_precondition(name + " is not held by worker " + worker_id);
    DIPACO_RETURN_IF_ERROR(check_instance(lease->worker, worker_id, instance_id));
    if (lease->state != "live")
      return OperatorReply{false, name + " is already " + lease->state + ": " + lease->end_reason};
    std::string reason = name + " handed back by worker " + worker_id + " at " +
                         format_unix_ms(now) + " (" + why + "); task requeued";
    DIPACO_RETURN_IF_ERROR(
        end_lease(*lease, "preempted", reason, /*requeue=*/true, EventKind::kLeasePreempted, now));
    return OperatorReply{true, reason};
  });
}

Result<OperatorReply> Coordinator::drain(const std::string& worker_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    auto found = worker_row(worker_id);
    if (!found.is_ok()) return unknown_worker_for_operator(found.status(), worker_id);
    const int64_t worker = *found;
    DIPACO_ASSIGN_OR_RETURN(
        auto draining,
        query_int(db_, "SELECT 1 FROM workers WHERE id = ?1 AND state = 'draining'", worker));
    if (draining) return OperatorReply{false, "worker " + worker_id + " is already draining"};
    DIPACO_RETURN_IF_ERROR(
        exec_sql(db_, "UPDATE workers SET state = 'draining' WHERE id = ?1", worker));
    RunEvent event;
    event.time_ms = now;
    event.kind = EventKind::kWorkerDraining;
    event.worker_id = worker_id;
    event.detail = "worker " + worker_id + " draining: no new tasks; its lease may finish";
    DIPACO_RETURN_IF_ERROR(publish(event));
    return OperatorReply{true, event.detail};
  });
}

Result<OperatorReply> Coordinator::undrain(const std::string& worker_id) {
  return call<OperatorReply>([&](int64_t now) -> Result<OperatorReply> {
    auto found = worker_row(worker_id);
    if (!found.is_ok()) return unknown_worker_for_operator(found.status(), worker_id);
    const int64_t worker = *found;
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_, "UPDATE workers SET state = 'active' WHERE id = ?1 AND state = 'draining'", worker));
    if (db_.changes() == 0) return OperatorReply{false, "worker " + worker_id + " is not draining"};
    RunEvent event;
    event.time_ms = now;
    event.kind = EventKind::kWorkerUndrained;
    event.worker_id = worker_id;
    event.detail = "worker " + worker_id + " undrained: it takes tasks again";
    DIPACO_RETURN_IF_ERROR(publish(event));
    return OperatorReply{true, event.detail};
  });
}

Status Coordinator::report_metrics(const std::vector<MetricPoint>& points) {
  return call<bool>([&](int64_t now) -> Result<bool> {
           for (const MetricPoint& point : points) {
             if (point.name.empty()) return invalid_argument("metric name: empty");
             DIPACO_ASSIGN_OR_RETURN(std::string state, run_state(db_, point.run_id));
             (void)state;
             int64_t time = point.time_ms != 0 ? point.time_ms : now;
             DIPACO_RETURN_IF_ERROR(exec_sql(
                 db_,
                 "INSERT INTO metrics(run, path, outer_step, inner_step, name, value, time_ms) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 point.run_id, point.path_id, point.outer_step, point.inner_step, point.name,
                 point.value, time));
             RunEvent event;
             event.run_id = point.run_id;
             event.time_ms = time;
             event.kind = EventKind::kMetric;
             event.path_id = point.path_id;
             event.outer_step = point.outer_step;
             event.inner_step = point.inner_step;
             event.metric_name = point.name;
             event.value = point.value;
             DIPACO_RETURN_IF_ERROR(publish(std::move(event)));
           }
           return true;
         })
      .status();
}

// ---- inspection ---------------------------------------------------------------------------

Result<RunStatus> Coordinator::run_status(int64_t run_id) {
  return call<RunStatus>([&](int64_t) -> Result<RunStatus> {
    DIPACO_ASSIGN_OR_RETURN(
        Statement run,
        bound(db_, "SELECT name, state, inner_steps, outer_steps FROM runs WHERE id = ?1", run_id));
    DIPACO_ASSIGN_OR_RETURN(bool found, run.step());
    if (!found) return not_found("run " + std::to_string(run_id) + " does not exist");
    RunStatus status;
    status.run_id = run_id;
    status.name = run.column_text(0);
    status.state = run.column_text(1);
    status.inner_steps = static_cast<uint32_t>(run.column_int64(2));
    status.outer_steps = static_cast<uint64_t>(run.column_int64(3));
    DIPACO_ASSIGN_OR_RETURN(
        Statement modules,
        bound(db_, "SELECT module_id, version FROM modules WHERE run = ?1", run_id));
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, modules.step());
      if (!row) break;
      status.module_versions[static_cast<uint32_t>(modules.column_int64(0))] =
          static_cast<uint64_t>(modules.column_int64(1));
    }
    DIPACO_ASSIGN_OR_RETURN(
        Statement tasks,
        bound(db_, "SELECT state, count(*) FROM tasks WHERE run = ?1 GROUP BY state", run_id));
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, tasks.step());
      if (!row) break;
      std::string state = tasks.column_text(0);
      int64_t count = tasks.column_int64(1);
      if (state == "queued") status.tasks_queued = count;
      if (state == "leased") status.tasks_leased = count;
      if (state == "done") status.tasks_done = count;
      if (state == "skipped") status.tasks_skipped = count;
    }
    DIPACO_ASSIGN_OR_RETURN(status.live_leases,
                            query_count(db_,
                                        "SELECT count(*) FROM leases l JOIN tasks t ON t.id = "
                                        "l.task WHERE t.run = ?1 AND l.state = 'live'",
                                        run_id));
    return status;
  });
}

Result<std::vector<RunEvent>> Coordinator::events(int64_t run_id, int64_t after_event_id) {
  return call<std::vector<RunEvent>>([&](int64_t) -> Result<std::vector<RunEvent>> {
    DIPACO_ASSIGN_OR_RETURN(
        Statement query, bound(db_,
                               "SELECT id, time_ms, kind, payload, lease, worker, path, shard, "
                               "module, outer_step, version FROM events WHERE run = ?1 AND id > ?2 "
                               "ORDER BY id",
                               run_id, after_event_id));
    std::vector<RunEvent> events;
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
      if (!row) break;
      RunEvent event;
      event.id = query.column_int64(0);
      event.run_id = run_id;
      event.time_ms = query.column_int64(1);
      std::string kind = query.column_text(2);
      for (int k = 0; k <= static_cast<int>(EventKind::kMetric); ++k) {
        if (kind == event_kind_name(static_cast<EventKind>(k)))
          event.kind = static_cast<EventKind>(k);
      }
      event.detail = query.column_text(3);
      event.lease_id = query.column_int64(4);
      event.worker_id = query.column_text(5);
      event.path_id = static_cast<uint32_t>(query.column_int64(6));
      event.shard_id = static_cast<uint32_t>(query.column_int64(7));
      event.module_id = static_cast<uint32_t>(query.column_int64(8));
      event.outer_step = static_cast<uint64_t>(query.column_int64(9));
      event.version = static_cast<uint64_t>(query.column_int64(10));
      events.push_back(std::move(event));
    }
    return events;
  });
}

Result<std::vector<RunEvent>> Coordinator::metrics(int64_t run_id, int64_t after_metric_id,
                                                   int limit) {
  return call<std::vector<RunEvent>>([&](int64_t) -> Result<std::vector<RunEvent>> {
    DIPACO_ASSIGN_OR_RETURN(
        Statement query,
        bound(db_,
              "SELECT id, time_ms, path, outer_step, inner_step, name, value FROM metrics WHERE "
              "run = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
              run_id, after_metric_id, static_cast<int64_t>(limit)));
    std::vector<RunEvent> points;
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
      if (!row) break;
      RunEvent point;
      point.kind = EventKind::kMetric;
      point.id = query.column_int64(0);
      point.run_id = run_id;
      point.time_ms = query.column_int64(1);
      point.path_id = static_cast<uint32_t>(query.column_int64(2));
      point.outer_step = static_cast<uint64_t>(query.column_int64(3));
      point.inner_step = static_cast<uint64_t>(query.column_int64(4));
      point.metric_name = query.column_text(5);
      point.value = query.column_double(6);
      points.push_back(std::move(point));
    }
    return points;
  });
}

}  // namespace dipaco
