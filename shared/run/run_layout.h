// Where everything of one run lives inside its directory (GridSpec::dir):
//
//   .lock                       flock()ed by the process that owns the run (dipaco run, the
//                               studio, dipaco serve); holds "dipaco run, pid N" (run_dir_lock.h)
//   grid.toml                   the effective grid (written at the start; a rerun must match)
//   coordinator.db              the coordinator's SQLite state (tasks, leases, versions, metrics)
//   payload/                    outer-gradient chunks in flight (coordinator)
//   base.safetensors            the base model (routing features, warm start)
//   router.safetensors          the fitted router; routing.json: shard sizes and assignments
//   shards/shard-<s>.tok        training documents of shard s (token file)
//   shards/val-<p>.tok          validation documents routed to path p
//   modules/m<id>/v<k>.safetensors      module id at version k (after k outer steps)
//   modules/m<id>/outer-v<k>.safetensors its outer optimizer's state after step k (and the
//                                        downlink's error-feedback residual)
//   modules/m<id>/delta-v<k>.safetensors version k as a quantized delta from k-1 (module_delta.h)
//   state/path-<p>-shard-<s>.safetensors a task's inner state: AdamW, data position, residuals
//   paths/path-<p>.safetensors  each path's full model at the end (export reads these)
//   metrics.jsonl, run.json, summary.md
#pragma once

#include <cstdint>
#include <string>

namespace dipaco {

struct RunLayout {
  std::string dir;

  std::string lock() const { return dir + "/.lock"; }
  std::string grid() const { return dir + "/grid.toml"; }
  std::string database() const { return dir + "/coordinator.db"; }
  std::string payload_dir() const { return dir + "/payload"; }
  std::string base_model() const { return dir + "/base.safetensors"; }
  std::string router() const { return dir + "/router.safetensors"; }
  std::string routing_json() const { return dir + "/routing.json"; }
  std::string shards_dir() const { return dir + "/shards"; }
  std::string shard(uint32_t shard_id) const {
    return shards_dir() + "/shard-" + std::to_string(shard_id) + ".tok";
  }
  std::string val_shard(uint32_t path_id) const {
    return shards_dir() + "/val-" + std::to_string(path_id) + ".tok";
  }
  std::string module_dir(uint32_t module_id) const {
    return dir + "/modules/m" + std::to_string(module_id);
  }
  std::string module_version(uint32_t module_id, uint64_t version) const {
    return module_dir(module_id) + "/v" + std::to_string(version) + ".safetensors";
  }
  std::string outer_state(uint32_t module_id, uint64_t version) const {
    return module_dir(module_id) + "/outer-v" + std::to_string(version) + ".safetensors";
  }
  std::string module_delta(uint32_t module_id, uint64_t version) const {
    return module_dir(module_id) + "/delta-v" + std::to_string(version) + ".safetensors";
  }
  std::string state_dir() const { return dir + "/state"; }
  std::string task_state(uint32_t path_id, uint32_t shard_id) const {
    return state_dir() + "/path-" + std::to_string(path_id) + "-shard-" + std::to_string(shard_id) +
           ".safetensors";
  }
  std::string paths_dir() const { return dir + "/paths"; }
  std::string path_model(uint32_t path_id) const {
    return paths_dir() + "/path-" + std::to_string(path_id) + ".safetensors";
  }
  std::string metrics() const { return dir + "/metrics.jsonl"; }
  std::string run_json() const { return dir + "/run.json"; }
  std::string summary() const { return dir + "/summary.md"; }
};

}  // namespace dipaco
