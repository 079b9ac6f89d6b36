// One module's outer step for one round: aggregate the paths' reports into Δ
// (module_aggregation.h), then apply the module's outer optimizer (outer_optimizer.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "algo/module_aggregation.h"
#include "algo/outer_optimizer.h"
#include "util/status.h"

namespace dipaco {

struct ModuleOuterStepResult {
  AggregationSummary aggregation;
  bool stepped = false;  // false when every report was dropped: θ and the optimizer untouched
};

// Updates theta in place. scratch is resized to theta.size() and holds Δ afterwards (reused
// across rounds to avoid an allocation per step). When every report is dropped the optimizer
// does not step (its momentum does not advance either): a round without news for the module.
// On error theta and the optimizer are unchanged.
Result<ModuleOuterStepResult> module_outer_step(std::span<float> theta,
                                                std::span<const ModuleReport> reports,
                                                const AggregationOptions& options, uint64_t round,
                                                uint64_t module_id, OuterOptimizer* optimizer,
                                                std::vector<float>* scratch);

}  // namespace dipaco
