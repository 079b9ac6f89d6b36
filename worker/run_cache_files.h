// Where a worker keeps each run's files under its cache_dir, and how they go once the run is
// over. Layout (one coordinator's runs per cache dir: run ids are that coordinator's):
//   modules/run-R.module-M.v-V[.part], modules/run-R.module-M.delta-v-V[.part]  (worker_client)
//   shards/run-R.shard-S[.part]                                                  (worker_client)
//   state/run-R/path-P-shard-S.safetensors  inner optimizer state (path_task_runner)
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

namespace dipaco {

// The directory of run `run_id`'s inner optimizer state.
std::filesystem::path run_state_dir(const std::string& cache_dir, const std::string& run_id);

// The ids of the runs that have any file in the cache (module, shard or state).
std::set<std::string> runs_in_cache(const std::string& cache_dir);

struct RemovedRunFiles {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Deletes every file of run `run_id` from the cache (its modules, shards and state). Only for
// a run that can never lease to this worker again. Files that cannot be removed are left.
RemovedRunFiles remove_run_files(const std::string& cache_dir, const std::string& run_id);

}  // namespace dipaco
