// Grid files through the gRPC coordinator (`dipaco serve --grid` and CreateRun): the RunHooks
// the service calls, and the Aggregator, over the same planning (run_plan.h) and module
// aggregation (module_aggregator.h) that `dipaco run` uses locally.
//
//   plan_run      the grid TOML → plan_grid_run (routing, shards, version-0 modules) → RunSpec
//                 whose config is the effective grid, so every later hook can recover it.
//   task_config   model config (vocabulary resolved), inner optimizer, batch, seq_len, dtype,
//                 data seed, each module's slice of the parameter buffer.
//   shard_file    run.dir/shards/shard-<id>.tok.
//   aggregator    ModuleAggregator on the run's directory; after the run's last aggregation it
//                 evaluates the paths and writes paths/, run.json and summary.md (run_results.h).
// Parsed grids are cached by text; every hook is thread-safe.
#pragma once

#include <cstdio>
#include <string>

#include "rpc/task_config.h"

namespace dipaco {

// `threads`: CPU threads for planning (base model, features). Planning progress goes to `log`.
RunHooks grid_run_hooks(int threads, FILE* log);
Aggregator grid_aggregator();

}  // namespace dipaco
