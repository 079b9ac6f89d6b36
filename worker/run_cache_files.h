// Where a worker keeps each run's files under its cache_dir, and how they go once the run is
// over. Layout (one coordinator's runs per cache dir: run ids are that coordinator's):
//   modules/run-R.module-M.v-V[.part], modules/run-R.module-M.delta-v-V[.part]  (worker_client)
//   shards/run-R.shard-S[.part]                                                  (worker_client)
//   state/run-R/path-P-shard-S.safetensors  inner optimizer state (path_task_runner)
//   runs/run-R.config-sha256                  which run config the files above belong to
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include "util/status.h"

namespace dipaco {

// The directory of run `run_id`'s inner optimizer state.
std::filesystem::path run_state_dir(const std::string& cache_dir, const std::string& run_id);

// The ids of the runs that have any file in the cache (module, shard or state).
std::set<std::string> runs_in_cache(const std::string& cache_dir);

struct RemovedRunFiles {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Deletes every file of run `run_id` from the cache (its modules, shards, state and config
// record). Only for a run that can never lease to this worker again. Files that cannot be
// removed are left.
RemovedRunFiles remove_run_files(const std::string& cache_dir, const std::string& run_id);

// Before a task of run `run_id` uses the cache: records that the run's files belong to the run
// config with this sha256 (hex). When the record names another config, the id now names a
// different run (the coordinator's database was replaced, or the cache dir came from another
// coordinator): that run's files, above all its shards and optimizer state, are removed first
// and `replaced` is set. Files without a record (kept by an older worker) are adopted. A record
// that cannot be written is an error (the cache dir is broken).
struct ClaimedRunFiles {
  bool replaced = false;
  std::string previous_config_sha256;
  RemovedRunFiles removed;
};
Result<ClaimedRunFiles> claim_run_files(const std::string& cache_dir, const std::string& run_id,
                                        const std::string& config_sha256);

}  // namespace dipaco
