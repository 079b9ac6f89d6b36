// RunHistory: past runs under a runs folder, from each run directory's coordinator.db (the
// SQLite state `dipaco run` and `dipaco serve` keep: runs, metrics, events) and run.json (a
// finished run's results); a folder with only metrics.jsonl counts too.
//
// load_run_events() gives a run's whole record as the RunEvents a live run streams (metrics from
// the metrics table; lease, aggregation and operator events from the events table, which keeps
// their kind, time and sentence), in time order, so the dashboard replays an old run exactly as
// it draws a live one. Without a database the validation curves of metrics.jsonl are used.
#pragma once

#include <QString>
#include <cstdint>
#include <vector>

#include "coordinator/run_event.h"
#include "run_metrics.h"
#include "util/status.h"

namespace dipaco::studio {

struct RunRecord {
  QString dir;            // the run directory
  QString label;          // directory name; "name · run N" when its database holds several runs
  QString name;           // the run's name (grid [run] name)
  QString state;          // "running", "paused", "finished"; "finished" for run.json alone
  int64_t db_run_id = 0;  // 0: no database
  uint64_t outer_steps = 0;
  uint32_t inner_steps = 0;
  int64_t created_ms = 0;
  bool has_results = false;    // run.json
  double routed_val_loss = 0;  // from run.json when has_results and it has one, else NaN
  QString problem;             // a database that could not be read, said plainly
};

// Run directories directly under `root`, by name.
std::vector<RunRecord> list_runs(const QString& root);
// One record's events (see above).
Result<std::vector<RunEvent>> load_run_events(const RunRecord& run);
// The mean training loss over a run's paths per outer step (x = outer step + 0.5, as the
// dashboard draws training loss); empty without training-loss metrics.
std::vector<CurvePoint> mean_train_loss(const std::vector<RunEvent>& events);

}  // namespace dipaco::studio
