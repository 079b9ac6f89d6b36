// The module versions a `dipaco run` worker thread holds in memory, fetched from the run
// directory the way a remote worker fetches them over FetchModule (worker/worker_client.h):
// a worker that holds an older version of the module, at most max_delta_chain(downlink) behind,
// reads the quantized deltas from it (module_delta.h) and rebuilds the new version; otherwise it
// reads the whole version. Each fetch reports the payload bytes it moved, so the local run
// counts the downlink as the network would carry it.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "compress/wire_dtype.h"
#include "coordinator/coordinator.h"
#include "run/run_layout.h"
#include "util/status.h"

namespace dipaco {

struct ModuleFetch {
  std::vector<float> params;
  uint64_t bytes = 0;   // payload bytes moved: 0 (cached), deltas, or 4 · num_params
  uint32_t deltas = 0;  // deltas applied (0: cached or whole)
};

class ModuleCache {
 public:
  ModuleCache(RunLayout layout, WireDtype downlink)
      : layout_(std::move(layout)), downlink_(downlink) {}

  // Version ref.version of module ref.module_id. A delta that is missing or refused (hash
  // mismatch) falls back to the whole version, which is checked against ref.sha256.
  Result<ModuleFetch> fetch(const ModuleRef& ref, uint64_t num_params);

 private:
  struct Entry {
    uint64_t version = 0;
    std::vector<float> params;
  };
  Result<ModuleFetch> fetch_deltas(const ModuleRef& ref, uint64_t num_params, const Entry& held);

  RunLayout layout_;
  WireDtype downlink_;
  std::map<uint32_t, Entry> held_;
};

}  // namespace dipaco
