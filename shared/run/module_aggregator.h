// The coordinator's ML step: turns an AggregationDecision (module m, outer step s, the reports
// of the tasks that fed it) into version s+1 of the module.
//
//   θ_s        read from modules/m<id>/v<s>.safetensors
//   Δ_p        each report's payload decoded (module_wire_dtype, or the grid's dtype for a
//              report of an older worker: report_wire_dtype), weighted by its shard's token
//              count (module_aggregation.h)
//   θ_{s+1}    the outer optimizer's step (Nesterov by default; plain replacement θ − Δ for a
//              path-specific module, whose single path owns it: fp32 both ways, so with one
//              shard per path θ_{s+1} = θ_s − (θ_s − θ_p) with no codec loss), written atomically
//              with the optimizer state, then recorded through Coordinator::complete_aggregation.
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

#include "algo/grid_spec.h"
#include "algo/module_outer_step.h"
#include "coordinator/coordinator.h"
#include "model/param_layout.h"
#include "run/module_wire.h"
#include "run/run_layout.h"
#include "util/status.h"

namespace dipaco {

// The outer step module `module_id` takes: the grid's optimizer and aggregation options for a
// shared module; for a path-specific one plain replacement (SGD, lr 1, no momentum, no rescale,
// no dropping): with one shard per path its new version is θ − Δ exactly, the path's trained
// parameters as far as fp32 carries them (Δ = θ − θ_p, both fp32 on the wire).
struct ModuleOuterSettings {
  OuterOptimizerConfig optimizer;
  AggregationOptions aggregation;
};
ModuleOuterSettings module_outer_settings(const GridSpec& grid, int module_id);

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
