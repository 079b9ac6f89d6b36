// Grid files through the gRPC coordinator (`dipaco serve --grid` and CreateRun): the RunHooks
// the service calls, and the Aggregator, over the same planning (run_plan.h) and module
// aggregation (module_aggregator.h) that `dipaco run` uses locally.
//
//   plan_run      the grid TOML → plan_grid_run (routing, shards, version-0 modules) → RunSpec
//                 whose config is the effective grid, so every later hook can recover it; the
//                 run.dir stays locked (run_dir_lock.h) by this process from then on.
//   task_config   model config (vocabulary resolved), inner optimizer, batch, seq_len, dtype,
//                 data seed, each module's slice of the parameter buffer.
//   shard_file    run.dir/shards/shard-<id>.tok.
//   aggregator    ModuleAggregator on the run's directory; after the run's last aggregation it
//                 evaluates the paths and writes paths/, run.json and summary.md (run_results.h).
// Parsed grids are cached by text; every hook is thread-safe.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "rpc/task_config.h"
#include "run/run_dir_lock.h"

namespace dipaco {

// `threads`: CPU threads for planning (base model, features). Planning progress goes to `log`.
// A grid run is planned into its run.dir under the directory's lock, taken from `run_dirs` and
// held as long as it lives (so no `dipaco run` plans or trains in a directory being served).
RunHooks grid_run_hooks(int threads, FILE* log, std::shared_ptr<RunDirLocks> run_dirs);
// Locks the run.dir of every unfinished grid run in the coordinator's database into `run_dirs`:
// a restarted dipaco serve owns the directories of the runs it resumes. A directory another
// process holds is an error naming it; a config that is not a grid is passed over.
Status lock_served_run_dirs(Coordinator& coordinator, RunDirLocks& run_dirs);
Aggregator grid_aggregator();

}  // namespace dipaco
