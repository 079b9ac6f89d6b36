// The coordinator's ML step: turns an AggregationDecision (module m, outer step s, the reports
// of the tasks that fed it) into version s+1 of the module.
//
//   θ_s        read from modules/m<id>/v<s>.safetensors
//   Δ_p        each report's payload decoded (the grid's wire dtype), weighted by its shard's
//              token count (module_aggregation.h)
//   θ_{s+1}    the outer optimizer's step (Nesterov by default; plain replacement θ − Δ for a
//              path-specific module, whose single path owns it), written atomically with the
//              optimizer state, then recorded through Coordinator::complete_aggregation.
//              With a quantized downlink (grid.downlink) θ_{s+1} is θ_s plus the quantized
//              step (compress/quantized_delta.h), written also as modules/m<id>/delta-v<s+1>;
//              the downlink residual lives in the outer-state file, so a restart resumes it.
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
#include "run/run_layout.h"
#include "util/status.h"

namespace dipaco {

// How module `module_id`'s outer gradients travel: the grid's compression, for every module
// (one dtype per run keeps the wire contract simple; a path-specific module's error-feedback
// residual reaches it in the next round).
WireDtype module_wire_dtype(const GridSpec& grid, int module_id);

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
