// What the gRPC service needs from the rest of dipaco, injected (the service owns no ML and no
// grid format): how an operator's grid becomes a RunSpec, the hyper-parameters of a run's tasks,
// where a shard's token file is, and who aggregates.
//
// Every hook receives the run's stored config (RunSpec::config, usually the grid TOML) so that
// implementations can be stateless and survive coordinator restarts. Hooks run on gRPC threads
// concurrently: they must be thread-safe; cache parsed configs if parsing is slow.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "compress/wire_dtype.h"
#include "coordinator/coordinator.h"
#include "coordinator/run_spec.h"
#include "util/status.h"

namespace dipaco {

struct InnerOptimizerConfig {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  uint32_t warmup_steps = 0;
};

// Where a module's parameters sit in a path's flat parameter vector, and how many there are.
struct ModuleLayout {
  uint64_t param_offset = 0;
  uint64_t num_params = 0;
  // This module's own wire dtypes (e.g. fp32 for a path-specific module); nullopt: the run's
  // TaskConfig::gradient_dtype / module_delta_dtype.
  std::optional<WireDtype> gradient_dtype;
  std::optional<WireDtype> module_delta_dtype;
  // Workers push the trained parameters (fp32) of this module, not its outer gradient
  // (ModuleRef.push_params): a path-specific module of a run whose dtype is not fp32
  // (run/module_wire.h).
  bool push_params = false;
};

// The hyper-parameters every task of a run shares.
struct TaskConfig {
  std::string model_config_toml;
  InnerOptimizerConfig inner;
  uint32_t batch_size = 0;
  uint32_t seq_len = 0;
  WireDtype gradient_dtype = WireDtype::kInt8;
  // Module versions as quantized deltas (FetchModuleRequest.as_delta); fp32: whole versions only.
  WireDtype module_delta_dtype = WireDtype::kFp32;
  uint64_t data_seed = 0;
  std::map<uint32_t, ModuleLayout> modules;  // every module id of the run
};

struct RunHooks {
  // CreateRun: the operator's grid file to a RunSpec (set its `config` to what task_config and
  // shard_file need later, usually the grid file itself). Null: CreateRun is UNIMPLEMENTED.
  std::function<Result<RunSpec>(const std::string& grid_toml)> plan_run;
  // Task hyper-parameters of run `run_id` from its stored config. Required.
  std::function<Result<TaskConfig>(int64_t run_id, const std::string& run_config)> task_config;
  // Token file of a shard (the runner writes one per shard). Null: FetchShard is UNIMPLEMENTED.
  std::function<Result<std::string>(int64_t run_id, const std::string& run_config,
                                    uint32_t shard_id)>
      shard_file;
  // The delta file that builds `version` of a module from version − 1 (module_delta.h), or
  // kNotFound. Null: FetchModule serves whole versions only.
  std::function<Result<std::string>(int64_t run_id, const std::string& run_config,
                                    uint32_t module_id, uint64_t version)>
      module_delta_file;
};

// Aggregation: called (from one background thread of RpcServer, or by an embedding program) for
// every pending decision. It decodes the reports (Coordinator::read_gradient), runs the outer
// optimizer, writes version outer_step+1 atomically and calls complete_aggregation(). An error is
// logged and the decision retried later (it stays pending across restarts).
using Aggregator = std::function<Status(
    Coordinator& coordinator, const AggregationDecision& decision, const std::string& run_config)>;

}  // namespace dipaco
