#include "coordinator/run_spec.h"

#include <set>
#include <string>
#include <utility>

namespace dipaco {

Status validate_run_spec(const RunSpec& spec) {
  if (spec.name.empty()) return invalid_argument("name: a run needs a name");
  if (spec.outer_steps == 0) return invalid_argument("outer_steps: must be at least 1");
  if (spec.outer_steps > (uint64_t{1} << 40))
    return invalid_argument("outer_steps: " + std::to_string(spec.outer_steps) + " is too many");
  if (spec.inner_steps == 0) return invalid_argument("inner_steps: must be at least 1");
  if (spec.lease_timeout_ms <= 0) return invalid_argument("lease_timeout_ms: must be positive");
  if (spec.max_lease_ms < 0) return invalid_argument("max_lease_ms: must be 0 (none) or positive");
  if (spec.partial.after_ms < 0) return invalid_argument("partial.after_ms: must not be negative");
  if (!(spec.partial.min_fraction > 0.0 && spec.partial.min_fraction <= 1.0))
    return invalid_argument("partial.min_fraction: must be in (0, 1], got " +
                            std::to_string(spec.partial.min_fraction));
  if (spec.modules.empty()) return invalid_argument("modules: a run needs at least one module");
  if (spec.paths.empty()) return invalid_argument("paths: a run needs at least one path");

  std::set<uint32_t> module_ids;
  std::set<std::pair<uint32_t, uint32_t>> positions;
  std::set<uint32_t> used;
  for (size_t i = 0; i < spec.modules.size(); ++i) {
    const ModuleSpec& module = spec.modules[i];
    std::string where = "modules[" + std::to_string(i) + "]";
    if (!module_ids.insert(module.module_id).second)
      return invalid_argument(where + ".module_id: " + std::to_string(module.module_id) +
                              " appears twice");
    if (!positions.insert({module.level, module.index}).second)
      return invalid_argument(where + ": level " + std::to_string(module.level) + " index " +
                              std::to_string(module.index) + " is taken by another module");
  }
  std::set<uint32_t> path_ids;
  std::set<uint32_t> shard_ids;
  for (size_t p = 0; p < spec.paths.size(); ++p) {
    const PathSpec& path = spec.paths[p];
    std::string where = "paths[" + std::to_string(p) + "]";
    if (!path_ids.insert(path.path_id).second)
      return invalid_argument(where + ".path_id: " + std::to_string(path.path_id) +
                              " appears twice");
    if (path.module_ids.empty()) return invalid_argument(where + ".module_ids: empty");
    if (path.shards.empty()) return invalid_argument(where + ".shards: a path needs a shard");
    std::set<uint32_t> in_path;
    for (size_t m = 0; m < path.module_ids.size(); ++m) {
      uint32_t id = path.module_ids[m];
      std::string at = where + ".module_ids[" + std::to_string(m) + "]";
      if (!module_ids.count(id))
        return invalid_argument(at + ": module " + std::to_string(id) + " does not exist");
      if (!in_path.insert(id).second)
        return invalid_argument(at + ": module " + std::to_string(id) + " used twice");
      used.insert(id);
    }
    for (size_t s = 0; s < path.shards.size(); ++s) {
      if (!shard_ids.insert(path.shards[s].shard_id).second)
        return invalid_argument(where + ".shards[" + std::to_string(s) + "].shard_id: " +
                                std::to_string(path.shards[s].shard_id) + " appears twice");
    }
  }
  for (const ModuleSpec& module : spec.modules) {
    if (!used.count(module.module_id))
      return invalid_argument("modules: module " + std::to_string(module.module_id) +
                              " is used by no path");
  }
  return Status::ok();
}

}  // namespace dipaco
