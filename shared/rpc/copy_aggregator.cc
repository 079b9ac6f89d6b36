#include "rpc/copy_aggregator.h"

#include <filesystem>
#include <vector>

#include "compress/codec.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace dipaco {

Aggregator copy_aggregator(std::string dir, RunHooks hooks) {
  return [dir = std::move(dir), hooks = std::move(hooks)](Coordinator& coordinator,
                                                          const AggregationDecision& decision,
                                                          const std::string& run_config) -> Status {
    DIPACO_ASSIGN_OR_RETURN(TaskConfig config, hooks.task_config(decision.run_id, run_config));
    auto layout = config.modules.find(decision.module_id);
    if (layout == config.modules.end())
      return internal_error("no layout for module " + std::to_string(decision.module_id));
    for (const GradientReport& report : decision.reports) {
      DIPACO_ASSIGN_OR_RETURN(std::string payload, coordinator.read_gradient(report));
      std::vector<float> values(layout->second.num_params);
      Status decoded =
          decode_into(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()),
                                               payload.size()),
                      config.gradient_dtype, values);
      if (!decoded.is_ok())
        return decoded.with_context("lease " + std::to_string(report.lease_id) + " module " +
                                    std::to_string(decision.module_id));
    }
    DIPACO_ASSIGN_OR_RETURN(
        auto current,
        coordinator.module_version(decision.run_id, decision.module_id, decision.outer_step));
    if (!current)
      return not_found("module " + std::to_string(decision.module_id) + " version " +
                       std::to_string(decision.outer_step) + " is not recorded");
    DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(current->checkpoint));
    std::string path =
        (std::filesystem::path(dir) /
         ("run-" + std::to_string(decision.run_id) + ".module-" +
          std::to_string(decision.module_id) + ".v" + std::to_string(decision.outer_step + 1)))
            .string();
    DIPACO_RETURN_IF_ERROR(write_file_atomically(path, bytes));
    return coordinator.complete_aggregation(decision.run_id, decision.module_id,
                                            decision.outer_step, path, to_hex(sha256(bytes)));
  };
}

}  // namespace dipaco
