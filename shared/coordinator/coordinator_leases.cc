// Coordinator: workers, heartbeats, leasing tasks and ending leases.
#include <algorithm>
#include <limits>

#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "util/human_units.h"
#include "util/log.h"

namespace dipaco {

Result<std::optional<Coordinator::LeaseRow>> Coordinator::find_lease(int64_t lease_id) {
  DIPACO_ASSIGN_OR_RETURN(
      Statement query,
      bound(db_,
            "SELECT l.id, l.task, l.worker, w.name, l.state, l.granted_ms, l.deadline_ms, "
            "l.hard_deadline_ms, coalesce(l.end_reason, ''), t.run, t.path, p.path_id, t.shard, "
            "s.shard_id, t.outer_step, t.state, t.inner_steps "
            "FROM leases l JOIN tasks t ON t.id = l.task JOIN workers w ON w.id = l.worker "
            "JOIN paths p ON p.id = t.path JOIN shards s ON s.id = t.shard WHERE l.id = ?1",
            lease_id));
  DIPACO_ASSIGN_OR_RETURN(bool found, query.step());
  if (!found) return std::optional<LeaseRow>();
  LeaseRow lease;
  lease.id = query.column_int64(0);
  lease.task = query.column_int64(1);
  lease.worker = query.column_int64(2);
  lease.worker_id = query.column_text(3);
  lease.state = query.column_text(4);
  lease.granted_ms = query.column_int64(5);
  lease.deadline_ms = query.column_int64(6);
  if (!query.column_is_null(7)) lease.hard_deadline_ms = query.column_int64(7);
  lease.end_reason = query.column_text(8);
  lease.run = query.column_int64(9);
  lease.path = query.column_int64(10);
  lease.path_id = static_cast<uint32_t>(query.column_int64(11));
  lease.shard = query.column_int64(12);
  lease.shard_id = static_cast<uint32_t>(query.column_int64(13));
  lease.outer_step = static_cast<uint64_t>(query.column_int64(14));
  lease.task_state = query.column_text(15);
  lease.inner_steps = static_cast<uint32_t>(query.column_int64(16));
  return std::optional<LeaseRow>(std::move(lease));
}

Status Coordinator::end_lease(const LeaseRow& lease, const std::string& state,
                              const std::string& reason, bool requeue, EventKind kind,
                              int64_t now) {
  DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                  "UPDATE leases SET state = ?1, ended_ms = ?2, end_reason = ?3 "
                                  "WHERE id = ?4 AND state = 'live'",
                                  state, now, reason, lease.id));
  if (db_.changes() != 1)
    return internal_error("lease " + std::to_string(lease.id) + " was not live");
  if (requeue)
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_, "UPDATE tasks SET state = 'queued' WHERE id = ?1 AND state = 'leased'", lease.task));
  RunEvent event;
  event.run_id = lease.run;
  event.time_ms = now;
  event.kind = kind;
  event.lease_id = lease.id;
  event.worker_id = lease.worker_id;
  event.path_id = lease.path_id;
  event.shard_id = lease.shard_id;
  event.outer_step = lease.outer_step;
  event.detail = reason;
  return publish(std::move(event));
}

Result<int64_t> Coordinator::worker_row(const std::string& worker_id) {
  DIPACO_ASSIGN_OR_RETURN(auto row,
                          query_int(db_, "SELECT id FROM workers WHERE name = ?1", worker_id));
  if (!row) return not_found("worker \"" + worker_id + "\" is not registered; register first");
  return *row;
}

Result<TaskGrant> Coordinator::grant_of(const LeaseRow& lease) {
  TaskGrant grant;
  grant.lease_id = lease.id;
  grant.run_id = lease.run;
  grant.path_id = lease.path_id;
  grant.shard_id = lease.shard_id;
  grant.outer_step = lease.outer_step;
  grant.inner_steps = lease.inner_steps;
  grant.deadline_ms = lease.hard_deadline_ms ? std::min(lease.deadline_ms, *lease.hard_deadline_ms)
                                             : lease.deadline_ms;
  DIPACO_ASSIGN_OR_RETURN(
      Statement modules,
      bound(db_,
            "SELECT m.module_id, m.version, coalesce(v.checkpoint, ''), coalesce(v.sha256, '') "
            "FROM path_modules pm JOIN modules m ON m.id = pm.module "
            "LEFT JOIN module_versions v ON v.module = m.id AND v.version = m.version "
            "WHERE pm.path = ?1 ORDER BY pm.position",
            lease.path));
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, modules.step());
    if (!row) break;
    ModuleRef ref;
    ref.module_id = static_cast<uint32_t>(modules.column_int64(0));
    ref.version = static_cast<uint64_t>(modules.column_int64(1));
    ref.checkpoint = modules.column_text(2);
    ref.sha256 = modules.column_text(3);
    if (ref.version != lease.outer_step)
      return internal_error("lease " + std::to_string(lease.id) + ": module " +
                            std::to_string(ref.module_id) + " is at version " +
                            std::to_string(ref.version) + ", not at outer step " +
                            std::to_string(lease.outer_step));
    grant.modules.push_back(std::move(ref));
  }
  return grant;
}

Result<int64_t> Coordinator::wait_hint(int64_t now) {
  // Index lookups (leases_by_state, leases_by_hard_deadline, tasks_by_opening), not a pass over
  // live leases or the queue.
  DIPACO_ASSIGN_OR_RETURN(
      auto next_deadline,
      query_int(db_, "SELECT min(deadline_ms) FROM leases WHERE state = 'live'"));
  DIPACO_ASSIGN_OR_RETURN(
      auto next_hard_deadline,
      query_int(db_, "SELECT min(hard_deadline_ms) FROM leases WHERE state = 'live'"));
  DIPACO_ASSIGN_OR_RETURN(
      auto next_partial,
      query_int(db_,
                "SELECT min(a.first_report_ms + r.partial_after_ms) FROM aggregations a "
                "JOIN modules m ON m.id = a.module JOIN runs r ON r.id = m.run "
                "WHERE a.state = 'collecting' AND r.partial_after_ms > 0"));
  int64_t wait = options_.max_wait_ms;
  if (options_.affinity_grace_ms > 0) {
    // The earliest end of a queued task's grace still to come (a task held for its owner is free
    // to all then), by tasks_by_opening: one seek for the tasks opened since open() and one for
    // those opened before it, whose wait the coordinator's downtime does not count (see
    // next_task_for). Each stops at its first task of a running run.
    const int64_t grace = options_.affinity_grace_ms;
    auto first_opened = [&](int64_t from, int64_t before) -> Result<std::optional<int64_t>> {
      return query_int(db_,
                       "SELECT t.opened_ms FROM tasks t CROSS JOIN runs r ON r.id = t.run "
                       "WHERE t.state = 'queued' AND t.opened_ms >= ?1 AND t.opened_ms < ?2 AND "
                       "r.state = 'running' ORDER BY t.opened_ms LIMIT 1",
                       from, before);
    };
    DIPACO_ASSIGN_OR_RETURN(auto opened_since,
                            first_opened(std::max(now - grace + 1, downtime_.until_ms),
                                         std::numeric_limits<int64_t>::max()));
    if (opened_since) wait = std::min(wait, *opened_since + grace - now);
    if (downtime_.length_ms > 0) {
      DIPACO_ASSIGN_OR_RETURN(
          auto opened_before,
          first_opened(now - grace - downtime_.length_ms + 1, downtime_.until_ms));
      if (opened_before) wait = std::min(wait, *opened_before + downtime_.length_ms + grace - now);
    }
  }
  if (next_deadline) wait = std::min(wait, *next_deadline - now);
  if (next_hard_deadline) wait = std::min(wait, *next_hard_deadline - now);
  if (next_partial) wait = std::min(wait, *next_partial - now);
  return std::clamp(wait, options_.min_wait_ms, options_.max_wait_ms);
}

Result<Registration> Coordinator::register_worker(const WorkerInfo& info) {
  if (info.worker_id.empty()) return invalid_argument("worker_id: empty");
  return call<Registration>([&](int64_t now) -> Result<Registration> {
    DIPACO_ASSIGN_OR_RETURN(
        Statement holder,
        bound(db_, "SELECT host, instance, last_heartbeat_ms FROM workers WHERE name = ?1",
              info.worker_id));
    DIPACO_ASSIGN_OR_RETURN(bool known, holder.step());
    if (known && !info.instance_id.empty()) {
      const std::string host = holder.column_text(0), instance = holder.column_text(1);
      int64_t last_heard_ms = holder.column_int64(2);
      // The coordinator's own downtime is not the holder's silence (as in next_task_for).
      if (last_heard_ms < downtime_.until_ms) last_heard_ms += downtime_.length_ms;
      const int64_t silent_ms = std::max<int64_t>(0, now - last_heard_ms);
      if (!instance.empty() && instance != info.instance_id && silent_ms < presence_window_ms()) {
        Registration refused;
        refused.refusal =
            "worker id \"" + info.worker_id + "\" is in use by a process on host " + host +
            " last heard " + format_double("%.1f", silent_ms / 1000.0) +
            " s ago; if that was this worker before a crash, this one registers once it has "
            "been silent for " +
            format_double("%.0f", presence_window_ms() / 1000.0) +
            " s; otherwise give each worker process its own [worker] id (several workers on "
            "one host: e.g. id = \"" +
            info.host + "-gpu0\")";
        DIPACO_LOG(kWarning) << "coordinator: refused a second process (host " << info.host
                             << ") for worker id \"" << info.worker_id
                             << "\": it is in use by a process on host " << host << " last heard "
                             << format_double("%.1f", silent_ms / 1000.0) << " s ago";
        return refused;
      }
    }
    holder.reset();
    // An operator's drain outlives the worker's restarts: only undrain() clears it.
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_,
        "INSERT INTO workers(name, host, devices, version, registered_ms, last_heartbeat_ms, "
        "state, instance) VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'active', ?6) ON CONFLICT(name) DO "
        "UPDATE SET host = excluded.host, devices = excluded.devices, version = "
        "excluded.version, registered_ms = excluded.registered_ms, last_heartbeat_ms = "
        "excluded.last_heartbeat_ms, instance = excluded.instance",
        info.worker_id, info.host, info.devices, info.version, now, info.instance_id));
    DIPACO_ASSIGN_OR_RETURN(
        auto shortest,
        query_int(db_, "SELECT min(lease_timeout_ms) FROM runs WHERE state != 'finished'"));
    DIPACO_ASSIGN_OR_RETURN(auto draining,
                            query_int(db_,
                                      "SELECT 1 FROM workers WHERE name = ?1 AND state = "
                                      "'draining'",
                                      info.worker_id));
    Registration registration;
    registration.heartbeat_interval_ms = options_.heartbeat_interval_ms;
    if (shortest)
      registration.heartbeat_interval_ms =
          std::min(registration.heartbeat_interval_ms, std::max<int64_t>(1, *shortest / 3));
    registration.drain = draining.has_value();
    return registration;
  });
}

Result<bool> Coordinator::unregister_worker(const std::string& worker_id,
                                            const std::string& instance_id) {
  if (worker_id.empty() || instance_id.empty()) return false;
  return call<bool>([&](int64_t) -> Result<bool> {
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_, "UPDATE workers SET instance = '' WHERE name = ?1 AND instance = ?2 AND ?2 != ''",
        worker_id, instance_id));
    return db_.changes() > 0;
  });
}

Status Coordinator::check_instance(int64_t worker, const std::string& worker_id,
                                   const std::string& instance_id) {
  if (instance_id.empty()) return Status::ok();
  DIPACO_ASSIGN_OR_RETURN(
      auto current,
      query_int(db_, "SELECT 1 FROM workers WHERE id = ?1 AND instance = ?2", worker, instance_id));
  if (current) return Status::ok();
  return failed_precondition("this process was replaced by a newer registration of worker id " +
                             worker_id + "; stopping its task");
}

Status Coordinator::check_current_instance(const std::string& worker_id,
                                           const std::string& instance_id) {
  if (instance_id.empty()) return Status::ok();
  return call<bool>([&](int64_t) -> Result<bool> {
           DIPACO_ASSIGN_OR_RETURN(int64_t worker, worker_row(worker_id));
           DIPACO_RETURN_IF_ERROR(check_instance(worker, worker_id, instance_id));
           return true;
         })
      .status();
}

Result<std::vector<WorkerStatus>> Coordinator::workers() {
  return call<std::vector<WorkerStatus>>([&](int64_t) -> Result<std::vector<WorkerStatus>> {
    DIPACO_ASSIGN_OR_RETURN(
        Statement query,
        bound(db_,
              "SELECT w.name, w.host, w.devices, w.version, w.state, w.last_heartbeat_ms, "
              "coalesce((SELECT max(l.id) FROM leases l WHERE l.worker = w.id AND l.state = "
              "'live'), 0) FROM workers w ORDER BY w.name"));
    std::vector<WorkerStatus> workers;
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
      if (!row) break;
      WorkerStatus worker;
      worker.worker_id = query.column_text(0);
      worker.host = query.column_text(1);
      worker.devices = query.column_text(2);
      worker.version = query.column_text(3);
      worker.state = query.column_text(4);
      worker.last_heartbeat_ms = query.column_int64(5);
      worker.live_lease_id = query.column_int64(6);
      workers.push_back(std::move(worker));
    }
    return workers;
  });
}

Result<bool> Coordinator::touch_worker(int64_t worker, int64_t now) {
  DIPACO_RETURN_IF_ERROR(
      exec_sql(db_, "UPDATE workers SET last_heartbeat_ms = ?1 WHERE id = ?2", now, worker));
  changes_are_lossy();  // a lost heartbeat time only makes the worker look older
  DIPACO_ASSIGN_OR_RETURN(
      auto draining,
      query_int(db_, "SELECT 1 FROM workers WHERE id = ?1 AND state = 'draining'", worker));
  return draining.has_value();
}

Result<HeartbeatReply> Coordinator::heartbeat(const std::string& worker_id, int64_t lease_id,
                                              uint64_t inner_step, const std::string& instance_id) {
  return call<HeartbeatReply>([&](int64_t now) -> Result<HeartbeatReply> {
    DIPACO_ASSIGN_OR_RETURN(int64_t worker, worker_row(worker_id));
    DIPACO_RETURN_IF_ERROR(check_instance(worker, worker_id, instance_id));
    HeartbeatReply reply;
    DIPACO_ASSIGN_OR_RETURN(reply.drain, touch_worker(worker, now));
    if (lease_id == 0) return reply;
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
    std::string name = "lease " + std::to_string(lease_id);
    if (!lease) {
      reply.reason = name + " is unknown";
      return reply;
    }
    if (lease->worker != worker) {
      reply.reason = name + " belongs to worker " + lease->worker_id;
      return reply;
    }
    if (lease->state != "live") {
      reply.reason = lease->end_reason;
      return reply;
    }
    DIPACO_ASSIGN_OR_RETURN(
        auto timeout,
        query_int(db_, "SELECT lease_timeout_ms FROM runs WHERE id = ?1", lease->run));
    int64_t deadline = now + timeout.value_or(0);
    if (lease->hard_deadline_ms) deadline = std::min(deadline, *lease->hard_deadline_ms);
    DIPACO_RETURN_IF_ERROR(
        exec_sql(db_, "UPDATE leases SET deadline_ms = ?1, inner_step = ?2 WHERE id = ?3", deadline,
                 inner_step, lease_id));
    // A deadline lost on power loss is an earlier one: the lease may expire after the restart and
    // its task be requeued, which the worker learns from its next heartbeat.
    changes_are_lossy();
    reply.lease_valid = true;
    reply.lease_deadline_ms = deadline;
    return reply;
  });
}

namespace {
// A worker's latest completed leases that task affinity looks at: more than it can complete in
// one outer step unless it trains more than this many tasks per step.
constexpr int64_t kAffinityLeasesLooked = 64;
}  // namespace

// The first queued task of a running run in lease order (outer step, run, path, shard). CROSS
// JOIN keeps tasks the outer loop, walked in tasks_in_lease_order, without sorting the whole
// queue. With task affinity: first a task that continues a (path, shard) this worker completed
// at the previous outer step (found from its latest completed leases, whatever the queue's
// length); otherwise the first task whose previous step's worker is not present or has had
// affinity_grace_ms to come. The scan costs a few index lookups (tasks' UNIQUE(shard,
// outer_step), leases_by_task, leases_by_worker) per task it skips as held for its owner.
Result<std::optional<Coordinator::QueuedTask>> Coordinator::next_task_for(int64_t worker,
                                                                          int64_t now) {
  auto first_row = [](Statement& query) -> Result<std::optional<QueuedTask>> {
    DIPACO_ASSIGN_OR_RETURN(bool found, query.step());
    if (!found) return std::optional<QueuedTask>();
    return std::optional<QueuedTask>(
        QueuedTask{query.column_int64(0), query.column_int64(1), query.column_int64(2)});
  };
  if (options_.affinity_grace_ms <= 0) {
    DIPACO_ASSIGN_OR_RETURN(
        Statement next,
        bound(db_,
              "SELECT t.id, r.lease_timeout_ms, r.max_lease_ms FROM tasks t "
              "CROSS JOIN runs r ON r.id = t.run WHERE t.state = 'queued' AND "
              "r.state = 'running' ORDER BY t.outer_step, t.run, t.path, t.shard LIMIT 1"));
    return first_row(next);
  }
  // From the worker's latest completed leases (leases_by_worker), not from the queue: the
  // cost does not grow with the queue or the run's length.
  DIPACO_ASSIGN_OR_RETURN(
      Statement own,
      bound(db_,
            "SELECT t.id, r.lease_timeout_ms, r.max_lease_ms FROM "
            "(SELECT task FROM leases WHERE worker = ?1 AND state = 'completed' "
            " ORDER BY id DESC LIMIT ?2) l "
            "JOIN tasks prev ON prev.id = l.task "
            "JOIN tasks t ON t.shard = prev.shard AND t.outer_step = prev.outer_step + 1 "
            "JOIN runs r ON r.id = t.run WHERE t.state = 'queued' AND r.state = 'running' "
            "ORDER BY t.outer_step, t.run, t.path, t.shard LIMIT 1",
            worker, kAffinityLeasesLooked));
  DIPACO_ASSIGN_OR_RETURN(std::optional<QueuedTask> mine, first_row(own));
  if (mine) return mine;
  // An owner is waited for while it is present (heard from within presence_window_ms()), not
  // holding another lease, and not silent since a lease of its expired (stopped or cut off; not
  // the leases open() ended, at ?6). The coordinator's downtime before open() counts neither as
  // the owner's silence nor as the task's wait (times before ?4 are moved on by ?5).
  const int64_t present_within = presence_window_ms();
  DIPACO_ASSIGN_OR_RETURN(
      Statement next,
      bound(
          db_,
          "SELECT t.id, r.lease_timeout_ms, r.max_lease_ms FROM tasks t "
          "CROSS JOIN runs r ON r.id = t.run WHERE t.state = 'queued' AND "
          "r.state = 'running' AND ("
          "  t.opened_ms + CASE WHEN t.opened_ms < ?4 THEN ?5 ELSE 0 END <= ?2 OR NOT EXISTS ("
          "  SELECT 1 FROM tasks prev JOIN leases l ON l.task = prev.id "
          "  JOIN workers w ON w.id = l.worker "
          "  WHERE prev.shard = t.shard AND prev.outer_step = t.outer_step - 1 "
          "  AND l.state = 'completed' AND w.id != ?1 AND w.state = 'active' "
          "  AND w.last_heartbeat_ms + CASE WHEN w.last_heartbeat_ms < ?4 THEN ?5 ELSE 0 END > ?3 "
          "  AND NOT EXISTS ("
          "    SELECT 1 FROM leases busy WHERE busy.worker = w.id AND (busy.state = 'live' OR "
          "    (busy.state = 'expired' AND busy.ended_ms >= w.last_heartbeat_ms AND "
          "     busy.ended_ms != ?6))))) "
          "ORDER BY t.outer_step, t.run, t.path, t.shard LIMIT 1",
          worker, now - options_.affinity_grace_ms, now - present_within, downtime_.until_ms,
          downtime_.length_ms, downtime_.leases_ended_ms));
  return first_row(next);
}

Result<LeaseReply> Coordinator::lease_task(const std::string& worker_id,
                                           const std::string& instance_id) {
  return call<LeaseReply>([&](int64_t now) -> Result<LeaseReply> {
    DIPACO_ASSIGN_OR_RETURN(int64_t worker, worker_row(worker_id));
    DIPACO_RETURN_IF_ERROR(check_instance(worker, worker_id, instance_id));
    LeaseReply reply;
    DIPACO_ASSIGN_OR_RETURN(reply.drain, touch_worker(worker, now));

    // A retried LeaseTask (its reply was lost) gets the same lease back.
    DIPACO_ASSIGN_OR_RETURN(
        auto held,
        query_int(db_, "SELECT id FROM leases WHERE worker = ?1 AND state = 'live' ORDER BY id",
                  worker));
    if (held) {
      DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(*held));
      if (!lease) return internal_error("live lease vanished");
      DIPACO_ASSIGN_OR_RETURN(TaskGrant grant, grant_of(*lease));
      reply.task = std::move(grant);
      return reply;
    }
    if (reply.drain) {
      reply.wait_ms = options_.max_wait_ms;
      reply.reason = "worker " + worker_id + " is draining";
      return reply;
    }

    DIPACO_ASSIGN_OR_RETURN(std::optional<QueuedTask> next, next_task_for(worker, now));
    if (!next) {
      DIPACO_ASSIGN_OR_RETURN(reply.wait_ms, wait_hint(now));
      DIPACO_ASSIGN_OR_RETURN(auto paused,
                              query_int(db_,
                                        "SELECT r.id FROM runs r WHERE r.state = 'paused' AND "
                                        "EXISTS (SELECT 1 FROM tasks t WHERE t.run = r.id AND "
                                        "t.state = 'queued') ORDER BY r.id LIMIT 1"));
      DIPACO_ASSIGN_OR_RETURN(
          int64_t running, query_count(db_, "SELECT count(*) FROM runs WHERE state = 'running'"));
      DIPACO_ASSIGN_OR_RETURN(
          auto held_for_owner,
          query_int(db_,
                    "SELECT t.id FROM tasks t CROSS JOIN runs r ON r.id = t.run "
                    "WHERE t.state = 'queued' AND r.state = 'running' LIMIT 1"));
      if (paused)
        reply.reason = "run " + std::to_string(*paused) + " is paused";
      else if (held_for_owner)
        reply.reason =
            "the queued tasks wait for the workers that trained their previous outer "
            "step (task affinity, up to " +
            std::to_string(options_.affinity_grace_ms) + " ms)";
      else if (running > 0)
        reply.reason = "no task is ready: waiting for leases in flight or for aggregation";
      else
        reply.reason = "no run is active";
      return reply;
    }
    const int64_t task = next->task, timeout = next->lease_timeout_ms,
                  max_lease = next->max_lease_ms;
    std::optional<int64_t> hard_deadline;
    if (max_lease > 0) hard_deadline = now + max_lease;
    int64_t deadline = hard_deadline ? std::min(now + timeout, *hard_deadline) : now + timeout;
    DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                    "INSERT INTO leases(task, worker, granted_ms, deadline_ms, "
                                    "hard_deadline_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, 'live')",
                                    task, worker, now, deadline, hard_deadline));
    int64_t lease_id = db_.last_insert_rowid();
    DIPACO_RETURN_IF_ERROR(exec_sql(
        db_, "UPDATE tasks SET state = 'leased' WHERE id = ?1 AND state = 'queued'", task));
    if (db_.changes() != 1) return internal_error("task " + std::to_string(task) + " not queued");
    DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
    if (!lease) return internal_error("new lease vanished");
    DIPACO_ASSIGN_OR_RETURN(TaskGrant grant, grant_of(*lease));
    RunEvent event;
    event.run_id = lease->run;
    event.time_ms = now;
    event.kind = EventKind::kLeaseGranted;
    event.lease_id = lease_id;
    event.worker_id = worker_id;
    event.path_id = lease->path_id;
    event.shard_id = lease->shard_id;
    event.outer_step = lease->outer_step;
    event.detail = "lease " + std::to_string(lease_id) + " granted to worker " + worker_id +
                   ": path " + std::to_string(lease->path_id) + " shard " +
                   std::to_string(lease->shard_id) + " outer step " +
                   std::to_string(lease->outer_step) + " until " + format_unix_ms(deadline);
    DIPACO_RETURN_IF_ERROR(publish(std::move(event)));
    reply.task = std::move(grant);
    return reply;
  });
}

}  // namespace dipaco
