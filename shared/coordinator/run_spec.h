// RunSpec: what an operator asks the coordinator to train, and its validation.
//
// The grid: modules are identified by `module_id` (unique in the run) and sit at (level, index).
// A path lists its module ids in level order and owns one or more shards; each (path, shard,
// outer step) is one task. Outer step s of a path runs on its modules at version s; version s+1
// of a module exists once every path that uses it has reported (or was skipped) for step s.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

struct ModuleSpec {
  uint32_t module_id = 0;
  uint32_t level = 0;
  uint32_t index = 0;
  // Version 0 of the module (the initial parameters): a checkpoint file and its sha256 (hex).
  std::string initial_checkpoint;
  std::string initial_sha256;
};

struct ShardSpec {
  uint32_t shard_id = 0;  // unique in the run
  uint64_t tokens = 0;    // size of the shard; the weight of its outer gradients
};

struct PathSpec {
  uint32_t path_id = 0;              // unique in the run
  std::vector<uint32_t> module_ids;  // in level order, one per level the path uses
  std::vector<ShardSpec> shards;     // at least one
};

// Partial aggregation: a module's outer step may aggregate without every path once
// `after_ms` have passed since its first report and at least `min_fraction` of the tasks that
// feed it have completed; the missing tasks are skipped (their leases cancelled). after_ms = 0
// disables it: every path must report.
struct PartialAggregation {
  int64_t after_ms = 0;
  double min_fraction = 1.0;  // in (0, 1]
};

struct RunSpec {
  std::string name;
  std::string request_id;  // idempotency key: creating the same request_id again returns the run
  std::vector<ModuleSpec> modules;
  std::vector<PathSpec> paths;
  uint64_t outer_steps = 1;
  uint32_t inner_steps = 1;          // H for the first outer step
  int64_t lease_timeout_ms = 30000;  // a lease dies this long after its grant or last heartbeat
  int64_t max_lease_ms = 0;          // hard limit on a lease however it heartbeats; 0 = none
  PartialAggregation partial;
  // Opaque to the coordinator: stored with the run and returned by Coordinator::run_config()
  // (the gRPC service derives each task's hyper-parameters from it). Usually the grid file.
  std::string config;
};

// Checks a spec; errors name the field ("paths[1].module_ids[0]: module 7 does not exist").
Status validate_run_spec(const RunSpec& spec);

}  // namespace dipaco
