// The coordinator's ML step: turns an AggregationDecision (module m, outer step s, the reports
// of the tasks that fed it) into version s+1 of the module.
//
//   θ_s        read from modules/m<id>/v<s>.safetensors
//   Δ_p        each report's payload decoded (report_encoding: the grid's dtype, or θ_p in
//              fp32 for a path-specific module), weighted by its shard's token count
//              (module_aggregation.h)
//   θ_{s+1}    the outer optimizer's step (Nesterov by default), written atomically with the
//              optimizer state, then recorded through Coordinator::complete_aggregation. A
//              path-specific module, whose single path owns it, is replaced by the trained
//              parameters θ_p its worker sent in fp32 (run/module_wire.h): with one shard per
//              path θ_{s+1} = θ_p bit for bit.
//              With a quantized downlink (module_downlink_dtype) θ_{s+1} is θ_s plus the
//              quantized step (compress/quantized_delta.h), written also as
//              modules/m<id>/delta-v<s+1>; the downlink residual lives in the outer-state file,
//              so a restart resumes it.
//
// Idempotent: applying the same decision again rewrites the same files and completes nothing
// twice, so a coordinator killed between the file writes and the commit redoes it on restart.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "algo/grid_spec.h"
#include "algo/module_outer_step.h"
#include "coordinator/coordinator.h"
#include "model/param_layout.h"
#include "run/module_wire.h"
#include "run/run_layout.h"
#include "util/status.h"

namespace dipaco {

// The outer optimizer of module `module_id`: the grid's optimizer and aggregation options for a
// shared module; for a path-specific one plain SGD at lr 1 without momentum (no state), whose
// step is replacement by the path's parameters (replace_with_path_parameters, which the
// aggregator uses for it so that the version is θ_p bit for bit).
struct ModuleOuterSettings {
  OuterOptimizerConfig optimizer;
  AggregationOptions aggregation;
};
ModuleOuterSettings module_outer_settings(const GridSpec& grid, int module_id);

// A path-specific module's new version: its path's trained parameters (a report of θ_p, or
// θ − Δ_p from a worker that predates sending θ_p), weighted by shard size when the path has
// several shards; with one shard exactly the θ_p reported, bit for bit. Errors as
// aggregate_outer_gradient's.
Result<ModuleOuterStepResult> replace_with_path_parameters(std::span<float> theta,
                                                           std::span<const ModuleReport> reports,
                                                           uint64_t round, uint64_t module_id,
                                                           std::vector<float>* scratch);

struct AggregationOutcome {
  uint32_t module_id = 0;
  uint64_t new_version = 0;
  ModuleOuterStepResult step;
  uint64_t bytes_up = 0;     // payload bytes of the reports
  uint64_t delta_bytes = 0;  // payload bytes of the published delta (0: fp32 downlink)
};

class ModuleAggregator {
 public:
  ModuleAggregator(const GridSpec& grid, RunLayout layout, Coordinator* coordinator,
                   int64_t run_id);

  Result<AggregationOutcome> apply(const AggregationDecision& decision);

 private:
  const GridSpec& grid_;
  RunLayout layout_;
  ParamLayout params_;
  Coordinator* coordinator_;
  int64_t run_id_;
  std::vector<float> scratch_;
};

}  // namespace dipaco
