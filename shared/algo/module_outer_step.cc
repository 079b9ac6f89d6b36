#include "algo/module_outer_step.h"

#include <string>

namespace dipaco {

Result<ModuleOuterStepResult> module_outer_step(std::span<float> theta,
                                                std::span<const ModuleReport> reports,
                                                const AggregationOptions& options, uint64_t round,
                                                uint64_t module_id, OuterOptimizer* optimizer,
                                                std::vector<float>* scratch) {
  if (optimizer->num_params() != theta.size()) {
    return invalid_argument("module " + std::to_string(module_id) + " has " +
                            std::to_string(theta.size()) +
                            " parameters but its outer optimizer was made for " +
                            std::to_string(optimizer->num_params()));
  }
  scratch->resize(theta.size());
  ModuleOuterStepResult r;
  DIPACO_ASSIGN_OR_RETURN(
      r.aggregation, aggregate_outer_gradient(theta, reports, options, round, module_id, *scratch));
  if (r.aggregation.kept == 0) return r;
  DIPACO_RETURN_IF_ERROR(optimizer->step(theta, *scratch));
  r.stepped = true;
  return r;
}

}  // namespace dipaco
