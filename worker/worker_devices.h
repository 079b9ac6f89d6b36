// The devices a worker trains on, as it tells the coordinator at Register (`dipaco ctl workers`,
// the studio's worker table): the same choice PathTaskRunner::island() hands to create_island,
// worked out from the config and a CUDA probe without making a CUDA context.
//   - backend "cpu": one "cpu" device (cpu_replicas of them for an island of CPU replicas).
//   - "cuda" / "auto": the island's GPUs (the config's `devices`; empty = every usable GPU,
//     compute capability 8.0 or newer, as place_on_usable_gpus decides), each with its name,
//     total memory and compute capability.
//   - No usable GPU for them: "cpu" when the island falls back (auto, or fallback_to_cpu);
//     otherwise the GPUs asked for as far as the probe knows them (the island will refuse).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend_factory.h"
#include "backend/cuda_runtime.h"
#include "worker_config.h"

namespace dipaco {

struct WorkerDevice {
  std::string name;  // "cpu", "NVIDIA H100 80GB HBM3", or "cuda:N" when the probe lacks it
  bool cuda = false;
  uint64_t memory_bytes = 0;       // total; 0 for the CPU
  std::string compute_capability;  // "9.0"; empty for the CPU
};

// The description for a choice (backend_choice, with cpu_replicas set) on a host whose GPUs are
// `info` (probe_cuda()); never empty.
std::vector<WorkerDevice> describe_worker_devices(const BackendChoice& choice,
                                                  const CudaRuntimeInfo& info);

// The same for a worker config: probes CUDA (no context) only for a GPU choice, and takes the
// CPU replicas from DIPACO_CPU_ISLAND_REPLICAS (1 when unset or invalid: the island reports that).
std::vector<WorkerDevice> describe_worker_devices(const WorkerConfig& config);

}  // namespace dipaco
