// Coordinator: when a module's outer step is ready, partial aggregation at a deadline, recording
// new module versions and opening the next outer step.
#include <set>

#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace dipaco {
namespace {

struct ModuleStepCounts {
  int64_t expected = 0;  // tasks (path x shard) that feed the module's outer step
  int64_t resolved = 0;  // of those: done or skipped
  int64_t done = 0;
};

// The queries below walk from the module to its paths (path_modules_by_module), then by path
// (shards_by_path, tasks_by_path): CROSS JOIN and INDEXED BY pin that order, so that their cost
// is the module's own tasks, not the run's (a 10,000-path grid made the planner's choice of
// tasks_in_lease_order cost 35 ms per count).
Result<ModuleStepCounts> module_step_counts(SqliteDb& db, int64_t module_row, uint64_t step) {
  ModuleStepCounts counts;
  DIPACO_ASSIGN_OR_RETURN(counts.expected,
                          query_count(db,
                                      "SELECT count(*) FROM path_modules pm CROSS JOIN shards s "
                                      "INDEXED BY shards_by_path ON s.path = pm.path "
                                      "WHERE pm.module = ?1",
                                      module_row));
  DIPACO_ASSIGN_OR_RETURN(
      counts.resolved,
      query_count(db,
                  "SELECT count(*) FROM path_modules pm CROSS JOIN tasks t INDEXED BY "
                  "tasks_by_path ON t.path = pm.path AND t.outer_step = ?2 "
                  "WHERE pm.module = ?1 AND t.state IN ('done', 'skipped')",
                  module_row, step));
  DIPACO_ASSIGN_OR_RETURN(
      counts.done, query_count(db,
                               "SELECT count(*) FROM path_modules pm CROSS JOIN tasks t INDEXED BY "
                               "tasks_by_path ON t.path = pm.path AND t.outer_step = ?2 "
                               "WHERE pm.module = ?1 AND t.state = 'done'",
                               module_row, step));
  return counts;
}

Result<std::vector<int64_t>> column_of(Statement& statement) {
  std::vector<int64_t> values;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, statement.step());
    if (!row) break;
    values.push_back(statement.column_int64(0));
  }
  return values;
}

}  // namespace

Status Coordinator::note_resolved(int64_t module_row, uint64_t outer_step, int64_t now) {
  DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                  "INSERT OR IGNORE INTO aggregations(module, outer_step, state, "
                                  "first_report_ms) VALUES (?1, ?2, 'collecting', ?3)",
                                  module_row, outer_step, now));
  return check_ready(module_row, outer_step, now);
}

Status Coordinator::check_ready(int64_t module_row, uint64_t outer_step, int64_t now) {
  DIPACO_ASSIGN_OR_RETURN(
      auto collecting,
      query_int(db_,
                "SELECT 1 FROM aggregations WHERE module = ?1 AND outer_step = ?2 AND state = "
                "'collecting'",
                module_row, outer_step));
  if (!collecting) return Status::ok();
  DIPACO_ASSIGN_OR_RETURN(ModuleStepCounts counts, module_step_counts(db_, module_row, outer_step));
  if (counts.resolved < counts.expected) return Status::ok();
  DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                  "UPDATE aggregations SET state = 'ready', ready_ms = ?1 WHERE "
                                  "module = ?2 AND outer_step = ?3",
                                  now, module_row, outer_step));
  DIPACO_ASSIGN_OR_RETURN(
      Statement module, bound(db_, "SELECT run, module_id FROM modules WHERE id = ?1", module_row));
  DIPACO_ASSIGN_OR_RETURN(bool found, module.step());
  if (!found) return internal_error("module row vanished");
  RunEvent event;
  event.run_id = module.column_int64(0);
  event.time_ms = now;
  event.kind = EventKind::kAggregationReady;
  event.module_id = static_cast<uint32_t>(module.column_int64(1));
  event.outer_step = outer_step;
  event.version = outer_step;
  event.detail = "aggregate module " + std::to_string(event.module_id) + " for outer step " +
                 std::to_string(outer_step) + ": " + std::to_string(counts.done) + " of " +
                 std::to_string(counts.expected) + " tasks reported";
  return publish(std::move(event));
}

Status Coordinator::open_step(int64_t path_row, uint64_t outer_step, int64_t now) {
  DIPACO_ASSIGN_OR_RETURN(
      Statement run,
      bound(db_,
            "SELECT r.id, r.outer_steps, r.inner_steps FROM paths p JOIN runs r ON r.id = p.run "
            "WHERE p.id = ?1",
            path_row));
  DIPACO_ASSIGN_OR_RETURN(bool found, run.step());
  if (!found) return internal_error("path row vanished");
  int64_t run_id = run.column_int64(0);
  if (outer_step >= static_cast<uint64_t>(run.column_int64(1))) return Status::ok();
  int64_t inner_steps = run.column_int64(2);
  DIPACO_ASSIGN_OR_RETURN(int64_t behind,
                          query_count(db_,
                                      "SELECT count(*) FROM path_modules pm JOIN modules m ON "
                                      "m.id = pm.module WHERE pm.path = ?1 AND m.version < ?2",
                                      path_row, outer_step));
  if (behind > 0) return Status::ok();
  // INSERT OR IGNORE: a task skipped in advance by a partial aggregation stays skipped.
  return exec_sql(db_,
                  "INSERT OR IGNORE INTO tasks(run, path, shard, outer_step, inner_steps, state, "
                  "opened_ms) SELECT ?1, ?2, s.id, ?3, ?4, 'queued', ?5 FROM shards s WHERE "
                  "s.path = ?2",
                  run_id, path_row, outer_step, inner_steps, now);
}

Status Coordinator::apply_partial_aggregation(int64_t now) {
  DIPACO_ASSIGN_OR_RETURN(
      Statement due,
      bound(db_,
            "SELECT a.module, a.outer_step, r.partial_min_fraction FROM aggregations a "
            "JOIN modules m ON m.id = a.module JOIN runs r ON r.id = m.run "
            "WHERE a.state = 'collecting' AND r.partial_after_ms > 0 AND "
            "a.first_report_ms + r.partial_after_ms <= ?1 ORDER BY a.outer_step, a.module",
            now));
  struct Due {
    int64_t module;
    uint64_t step;
    double min_fraction;
  };
  std::vector<Due> due_list;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, due.step());
    if (!row) break;
    due_list.push_back(
        {due.column_int64(0), static_cast<uint64_t>(due.column_int64(1)), due.column_double(2)});
  }
  for (const Due& item : due_list) {
    DIPACO_ASSIGN_OR_RETURN(
        auto still,
        query_int(db_,
                  "SELECT 1 FROM aggregations WHERE module = ?1 AND outer_step = ?2 AND state = "
                  "'collecting'",
                  item.module, item.step));
    if (!still) continue;
    DIPACO_ASSIGN_OR_RETURN(ModuleStepCounts counts,
                            module_step_counts(db_, item.module, item.step));
    if (counts.expected == 0 ||
        static_cast<double>(counts.done) < item.min_fraction * static_cast<double>(counts.expected))
      continue;
    DIPACO_ASSIGN_OR_RETURN(Statement module_id_query,
                            bound(db_, "SELECT module_id FROM modules WHERE id = ?1", item.module));
    DIPACO_ASSIGN_OR_RETURN(bool found, module_id_query.step());
    if (!found) return internal_error("module row vanished");
    int64_t module_id = module_id_query.column_int64(0);

    // Skip every unresolved task feeding this module step; cancel leases working on them.
    DIPACO_ASSIGN_OR_RETURN(
        Statement shards,
        bound(db_,
              "SELECT s.id, s.path, s.run FROM shards s JOIN path_modules pm ON pm.path = s.path "
              "WHERE pm.module = ?1 ORDER BY s.id",
              item.module));
    struct ShardRow {
      int64_t shard, path, run;
    };
    std::vector<ShardRow> shard_rows;
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(bool row, shards.step());
      if (!row) break;
      shard_rows.push_back(
          {shards.column_int64(0), shards.column_int64(1), shards.column_int64(2)});
    }
    std::set<int64_t> affected_paths;
    for (const ShardRow& shard : shard_rows) {
      DIPACO_ASSIGN_OR_RETURN(
          Statement task,
          bound(db_, "SELECT id, state FROM tasks WHERE shard = ?1 AND outer_step = ?2",
                shard.shard, item.step));
      DIPACO_ASSIGN_OR_RETURN(bool exists, task.step());
      if (exists) {
        int64_t task_id = task.column_int64(0);
        std::string state = task.column_text(1);
        if (state == "done" || state == "skipped") continue;
        if (state == "leased") {
          DIPACO_ASSIGN_OR_RETURN(
              auto live,
              query_int(db_, "SELECT id FROM leases WHERE task = ?1 AND state = 'live'", task_id));
          if (live) {
            DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(*live));
            if (!lease) return internal_error("lease vanished");
            std::string reason = "lease " + std::to_string(*live) + " cancelled at " +
                                 format_unix_ms(now) + ": module " + std::to_string(module_id) +
                                 " aggregated outer step " + std::to_string(item.step) +
                                 " without its task (partial aggregation)";
            DIPACO_RETURN_IF_ERROR(end_lease(*lease, "cancelled", reason, /*requeue=*/false,
                                             EventKind::kLeaseCancelled, now));
          }
        }
        DIPACO_RETURN_IF_ERROR(
            exec_sql(db_, "UPDATE tasks SET state = 'skipped' WHERE id = ?1", task_id));
      } else {
        DIPACO_RETURN_IF_ERROR(exec_sql(
            db_,
            "INSERT INTO tasks(run, path, shard, outer_step, inner_steps, state, opened_ms) "
            "SELECT ?1, ?2, ?3, ?4, inner_steps, 'skipped', ?5 FROM runs WHERE id = ?1",
            shard.run, shard.path, shard.shard, item.step, now));
      }
      affected_paths.insert(shard.path);
    }
    // The skipped paths' other modules may now be ready too.
    std::set<int64_t> modules{item.module};
    for (int64_t path : affected_paths) {
      DIPACO_ASSIGN_OR_RETURN(Statement of_path,
                              bound(db_, "SELECT module FROM path_modules WHERE path = ?1", path));
      DIPACO_ASSIGN_OR_RETURN(std::vector<int64_t> rows, column_of(of_path));
      modules.insert(rows.begin(), rows.end());
    }
    for (int64_t module : modules) DIPACO_RETURN_IF_ERROR(note_resolved(module, item.step, now));
  }
  return Status::ok();
}

Result<std::vector<AggregationDecision>> Coordinator::pending_aggregations(int64_t run_id) {
  return call<std::vector<AggregationDecision>>(
      [&](int64_t) -> Result<std::vector<AggregationDecision>> {
        DIPACO_ASSIGN_OR_RETURN(auto exists,
                                query_int(db_, "SELECT 1 FROM runs WHERE id = ?1", run_id));
        if (!exists) return not_found("run " + std::to_string(run_id) + " does not exist");
        DIPACO_ASSIGN_OR_RETURN(
            Statement ready,
            bound(db_,
                  "SELECT a.module, m.module_id, a.outer_step FROM aggregations a JOIN modules m "
                  "ON m.id = a.module WHERE m.run = ?1 AND a.state = 'ready' "
                  "ORDER BY a.outer_step, m.module_id",
                  run_id));
        std::vector<AggregationDecision> decisions;
        std::vector<int64_t> module_rows;
        while (true) {
          DIPACO_ASSIGN_OR_RETURN(bool row, ready.step());
          if (!row) break;
          AggregationDecision decision;
          decision.run_id = run_id;
          module_rows.push_back(ready.column_int64(0));
          decision.module_id = static_cast<uint32_t>(ready.column_int64(1));
          decision.outer_step = static_cast<uint64_t>(ready.column_int64(2));
          decisions.push_back(std::move(decision));
        }
        for (size_t i = 0; i < decisions.size(); ++i) {
          AggregationDecision& decision = decisions[i];
          DIPACO_ASSIGN_OR_RETURN(
              int64_t paths, query_count(db_, "SELECT count(*) FROM path_modules WHERE module = ?1",
                                         module_rows[i]));
          decision.paths_using = static_cast<uint32_t>(paths);
          DIPACO_ASSIGN_OR_RETURN(ModuleStepCounts counts,
                                  module_step_counts(db_, module_rows[i], decision.outer_step));
          decision.tasks_expected = static_cast<uint32_t>(counts.expected);
          DIPACO_ASSIGN_OR_RETURN(
              Statement reports,
              bound(db_,
                    // From the module to its step's tasks, their completed leases, then the
                    // reports (not every completed lease of the run).
                    "SELECT l.id, w.name, p.path_id, s.shard_id, s.tokens, r.total_bytes "
                    "FROM path_modules pm CROSS JOIN tasks t INDEXED BY tasks_by_path "
                    "ON t.path = pm.path AND t.outer_step = ?2 CROSS JOIN leases l INDEXED BY "
                    "leases_by_task ON l.task = t.id AND l.state = 'completed' "
                    "JOIN reports r ON r.lease = l.id AND r.module = pm.module "
                    "JOIN workers w ON w.id = l.worker JOIN paths p ON p.id = t.path "
                    "JOIN shards s ON s.id = t.shard WHERE pm.module = ?1 "
                    "ORDER BY p.path_id, s.shard_id",
                    module_rows[i], decision.outer_step));
          while (true) {
            DIPACO_ASSIGN_OR_RETURN(bool row, reports.step());
            if (!row) break;
            GradientReport report;
            report.lease_id = reports.column_int64(0);
            report.worker_id = reports.column_text(1);
            report.path_id = static_cast<uint32_t>(reports.column_int64(2));
            report.shard_id = static_cast<uint32_t>(reports.column_int64(3));
            report.shard_tokens = static_cast<uint64_t>(reports.column_int64(4));
            report.total_bytes = static_cast<uint64_t>(reports.column_int64(5));
            decision.reports.push_back(std::move(report));
          }
          for (GradientReport& report : decision.reports) {
            DIPACO_ASSIGN_OR_RETURN(
                Statement files,
                bound(db_,
                      "SELECT file FROM push_chunks WHERE lease = ?1 AND module = ?2 "
                      "ORDER BY offset_bytes",
                      report.lease_id, module_rows[i]));
            while (true) {
              DIPACO_ASSIGN_OR_RETURN(bool row, files.step());
              if (!row) break;
              report.chunks.push_back(files.column_text(0));
            }
          }
          decision.partial = decision.reports.size() < decision.tasks_expected;
        }
        return decisions;
      });
}

Status Coordinator::complete_aggregation(int64_t run_id, uint32_t module_id, uint64_t outer_step,
                                         const std::string& checkpoint, const std::string& sha256) {
  if (checkpoint.empty()) return invalid_argument("checkpoint: empty path");
  if (sha256.empty()) return invalid_argument("sha256: empty");
  return call<bool>([&](int64_t now) -> Result<bool> {
           std::string name =
               "module " + std::to_string(module_id) + " of run " + std::to_string(run_id);
           DIPACO_ASSIGN_OR_RETURN(
               Statement module,
               bound(db_, "SELECT id, version FROM modules WHERE run = ?1 AND module_id = ?2",
                     run_id, module_id));
           DIPACO_ASSIGN_OR_RETURN(bool found, module.step());
           if (!found) return not_found(name + " does not exist");
           int64_t module_row = module.column_int64(0);
           uint64_t version = static_cast<uint64_t>(module.column_int64(1));
           DIPACO_ASSIGN_OR_RETURN(
               Statement aggregation,
               bound(db_, "SELECT state FROM aggregations WHERE module = ?1 AND outer_step = ?2",
                     module_row, outer_step));
           DIPACO_ASSIGN_OR_RETURN(bool has_row, aggregation.step());
           std::string state = has_row ? aggregation.column_text(0) : "";
           if (state == "done") {
             DIPACO_ASSIGN_OR_RETURN(
                 auto same, query_int(db_,
                                      "SELECT 1 FROM module_versions WHERE module = ?1 AND "
                                      "version = ?2 AND checkpoint = ?3 AND sha256 = ?4",
                                      module_row, outer_step + 1, checkpoint, sha256));
             if (same) return true;  // a retry of a recorded aggregation
             return failed_precondition(name + " outer step " + std::to_string(outer_step) +
                                        " was already aggregated into version " +
                                        std::to_string(outer_step + 1) +
                                        " with another checkpoint");
           }
           if (state != "ready") {
             DIPACO_ASSIGN_OR_RETURN(ModuleStepCounts counts,
                                     module_step_counts(db_, module_row, outer_step));
             return failed_precondition(
                 name + " outer step " + std::to_string(outer_step) +
                 " is not ready for aggregation: " + std::to_string(counts.resolved) + " of " +
                 std::to_string(counts.expected) + " tasks resolved");
           }
           if (version != outer_step)
             return internal_error(name + " is at version " + std::to_string(version) +
                                   " but outer step " + std::to_string(outer_step) + " is ready");
           DIPACO_RETURN_IF_ERROR(
               exec_sql(db_,
                        "INSERT INTO module_versions(module, version, checkpoint, sha256, "
                        "created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        module_row, outer_step + 1, checkpoint, sha256, now));
           DIPACO_RETURN_IF_ERROR(exec_sql(db_, "UPDATE modules SET version = ?1 WHERE id = ?2",
                                           outer_step + 1, module_row));
           DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                           "UPDATE aggregations SET state = 'done' WHERE module "
                                           "= ?1 AND outer_step = ?2",
                                           module_row, outer_step));
           RunEvent event;
           event.run_id = run_id;
           event.time_ms = now;
           event.kind = EventKind::kModuleVersionCreated;
           event.module_id = module_id;
           event.outer_step = outer_step;
           event.version = outer_step + 1;
           event.detail = name + " version " + std::to_string(outer_step + 1) +
                          " recorded: " + checkpoint + " sha256 " + sha256;
           DIPACO_RETURN_IF_ERROR(publish(std::move(event)));

           // The chunks of this module step are folded into the checkpoint now.
           DIPACO_ASSIGN_OR_RETURN(
               Statement files,
               bound(db_,
                     "SELECT c.file FROM path_modules pm CROSS JOIN tasks t INDEXED BY "
                     "tasks_by_path ON t.path = pm.path AND t.outer_step = ?2 CROSS JOIN leases "
                     "l INDEXED BY leases_by_task ON l.task = t.id CROSS JOIN push_chunks c ON "
                     "c.lease = l.id AND c.module = pm.module WHERE pm.module = ?1",
                     module_row, outer_step));
           while (true) {
             DIPACO_ASSIGN_OR_RETURN(bool row, files.step());
             if (!row) break;
             remove_after_commit_.push_back(files.column_text(0));
           }

           DIPACO_ASSIGN_OR_RETURN(
               Statement paths,
               bound(db_, "SELECT path FROM path_modules WHERE module = ?1", module_row));
           DIPACO_ASSIGN_OR_RETURN(std::vector<int64_t> path_rows, column_of(paths));
           for (int64_t path : path_rows)
             DIPACO_RETURN_IF_ERROR(open_step(path, outer_step + 1, now));

           DIPACO_ASSIGN_OR_RETURN(
               int64_t unfinished,
               query_count(db_,
                           "SELECT count(*) FROM modules m JOIN runs r ON r.id = m.run "
                           "WHERE m.run = ?1 AND m.version < r.outer_steps",
                           run_id));
           if (unfinished == 0) {
             DIPACO_RETURN_IF_ERROR(
                 exec_sql(db_, "UPDATE runs SET state = 'finished' WHERE id = ?1", run_id));
             RunEvent finished;
             finished.run_id = run_id;
             finished.time_ms = now;
             finished.kind = EventKind::kRunFinished;
             finished.detail = "run " + std::to_string(run_id) + " finished";
             DIPACO_RETURN_IF_ERROR(publish(std::move(finished)));
           }
           return true;
         })
      .status();
}

}  // namespace dipaco
