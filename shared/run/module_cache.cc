#include "run/module_cache.h"

#include <filesystem>

#include "run/module_delta.h"
#include "run/module_files.h"

namespace dipaco {

Result<ModuleFetch> ModuleCache::fetch_deltas(const ModuleRef& ref, uint64_t num_params,
                                              const Entry& held) {
  ModuleFetch out;
  std::vector<float> current = held.params;
  for (uint64_t v = held.version + 1; v <= ref.version; ++v) {
    DIPACO_ASSIGN_OR_RETURN(
        ModuleDelta delta,
        read_module_delta(layout_.module_delta(ref.module_id, v), ref.module_id, v, num_params));
    DIPACO_ASSIGN_OR_RETURN(current, rebuild_module_version(delta, current));
    if (v == ref.version && delta.target_sha256 != ref.sha256) {
      return data_loss("module " + std::to_string(ref.module_id) + " version " + std::to_string(v) +
                       ": the delta builds " + delta.target_sha256 + ", the coordinator recorded " +
                       ref.sha256);
    }
    out.bytes += delta.payload.size();
    ++out.deltas;
  }
  out.params = std::move(current);
  return out;
}

Result<ModuleFetch> ModuleCache::fetch(const ModuleRef& ref, uint64_t num_params) {
  auto found = held_.find(ref.module_id);
  if (found != held_.end() && found->second.version == ref.version &&
      found->second.params.size() == num_params) {
    return ModuleFetch{found->second.params, 0, 0};
  }
  if (found != held_.end() && found->second.version < ref.version &&
      found->second.params.size() == num_params &&
      ref.version - found->second.version <= max_delta_chain(downlink_, num_params)) {
    auto rebuilt = fetch_deltas(ref, num_params, found->second);
    if (rebuilt.is_ok()) {
      found->second = {ref.version, rebuilt->params};
      return rebuilt;
    }
    // A missing delta (an old one removed) or a refused one: fetch the whole version.
  }
  DIPACO_ASSIGN_OR_RETURN(
      std::vector<float> params,
      read_module_version(ref.checkpoint, ref.module_id, num_params, ref.sha256));
  held_[ref.module_id] = {ref.version, params};
  return ModuleFetch{std::move(params), num_params * sizeof(float), 0};
}

}  // namespace dipaco
