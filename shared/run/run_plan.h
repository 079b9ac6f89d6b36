// Planning a grid run: everything between a grid file and a coordinator run, shared by
// `dipaco run` (local workers) and `dipaco serve` (remote workers).
//
//   1. the vocabulary comes from the training token file (model.vocab_size = 0);
//   2. the run directory is created; its grid.toml must describe the same run as the grid given
//      (worker and thread counts may differ), else the directory is refused with the keys that
//      differ; a fresh start writes grid.toml, and if its planning fails it removes what it
//      wrote (the run directory and its lock file too, when it created them), so that a failed
//      start (a bad routing.base_checkpoint) does not claim the directory;
//   3. routing writes the shards (shard_routing.h);
//   4. version 0 of every module is written (warm start from the base model, or random init);
//   5. the RunSpec: modules with their version-0 files and sha256, paths with their shards
//      (weighted by tokens), H, outer steps; config = the effective grid TOML, request_id a hash
//      of the run's identity, so creating it again returns the same run.
#pragma once

#include <cstdio>
#include <string>

#include "algo/grid_spec.h"
#include "coordinator/run_spec.h"
#include "run/run_dir_lock.h"
#include "run/run_layout.h"
#include "run/shard_routing.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

struct PlannedRun {
  GridSpec grid;  // vocabulary resolved
  RunLayout layout;
  ShardPlan shards;
  RunSpec spec;
  bool resumed = false;  // the run directory already held this run
};

// The base model, routing features and document scores run on `compute` when given (a run's
// GPU: run_compute_backend.h), else on a CPU backend of `threads` threads. Progress goes to
// `out`. The caller holds the lock of grid.dir (lock_run_dir) for as long as it owns the
// directory; a first start whose planning fails releases it, leaving nothing it created (the
// lock file and the directory included).
Result<PlannedRun> plan_grid_run(const GridSpec& grid, int threads, FILE* out,
                                 RunDirLock& run_dir_lock, Backend* compute = nullptr);

// The vocabulary from data.train (and a check of data.val); errors point at `dipaco data`.
Result<GridSpec> resolve_grid_vocabulary(const GridSpec& grid);

// What makes two grids the same run: everything but worker and thread counts.
std::string run_identity(const GridSpec& grid);

// The keys whose values differ between the identities of two grids, as
// "inner.lr: 0.001 in the run, 0.002 now; run.outer_steps: 8 in the run, 12 now" (empty when
// they are the same run). [[grid.level]] tables are numbered from 0: "grid.level[1].modules".
std::string describe_grid_differences(const GridSpec& in_run, const GridSpec& now);

}  // namespace dipaco
