// A small self-contained run file (TOML) for `dipaco serve --run`, the rpc tests and the load
// benchmark, until the grid spec (which plans runs from a model and a corpus) plugs into
// RunHooks. Everything is explicit:
//
//   name = "demo"            outer_steps = 3         inner_steps = 10
//   lease_timeout_ms = 30000 max_lease_ms = 0        partial_after_ms = 0  partial_min_fraction
//   = 1.0 [task] batch_size = 8  seq_len = 128  gradient_dtype = "int8"  data_seed = 1 model_config
//   = "..."     lr = 3e-4  (beta1, beta2, eps, weight_decay, grad_clip, warmup_steps)
//   [[modules]]
//   id = 0  level = 0  index = 0  num_params = 1000  param_offset = 0
//   checkpoint = "/abs/module0.v0"   # version 0; its sha256 is computed when the run is planned
//   [[paths]]
//   id = 0  modules = [0, 2]
//   shards = [{ id = 10, tokens = 1000, file = "/abs/shard10.tok" }]
//
// Relative checkpoint and shard paths are taken relative to `base_dir`.
#pragma once

#include <map>
#include <string>

#include "rpc/task_config.h"

namespace dipaco {

struct SimpleRun {
  RunSpec spec;  // spec.config = the TOML text
  TaskConfig task;
  std::map<uint32_t, std::string> shard_files;  // shard id -> token file
};

// Parses a run file; errors name the key. Does not read checkpoints.
Result<SimpleRun> parse_simple_run(const std::string& toml_text, const std::string& source_name,
                                   const std::string& base_dir);
// parse_simple_run plus the sha256 of each initial checkpoint (which must exist).
Result<SimpleRun> plan_simple_run(const std::string& toml_text, const std::string& source_name,
                                  const std::string& base_dir);

// RunHooks over simple run files (plan_run = plan_simple_run; task_config and shard_file parse
// the stored config, cached by its text). Thread-safe.
RunHooks simple_run_hooks(const std::string& base_dir);

}  // namespace dipaco
