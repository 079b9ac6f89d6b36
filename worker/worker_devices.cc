#include "worker_devices.h"

#include <algorithm>

namespace dipaco {
namespace {

std::vector<WorkerDevice> cpu_devices(int replicas) {
  return std::vector<WorkerDevice>(static_cast<size_t>(std::max(1, replicas)),
                                   WorkerDevice{"cpu", false, 0, ""});
}

WorkerDevice gpu_device(int index, const CudaRuntimeInfo& info) {
  WorkerDevice device;
  device.cuda = true;
  device.name = "cuda:" + std::to_string(index);
  for (const CudaDeviceInfo& gpu : info.devices) {
    if (gpu.index != index) continue;
    device.name = gpu.name;
    device.memory_bytes = gpu.total_bytes;
    device.compute_capability =
        std::to_string(gpu.compute_major) + "." + std::to_string(gpu.compute_minor);
  }
  return device;
}

}  // namespace

std::vector<WorkerDevice> describe_worker_devices(const BackendChoice& choice,
                                                  const CudaRuntimeInfo& info) {
  if (choice.kind == BackendChoice::Kind::kCpu) return cpu_devices(choice.cpu_replicas);
  // What create_island places the choice on; an open choice with no usable GPU stays open.
  const BackendChoice placed = place_on_usable_gpus(choice, info);
  std::vector<int> gpus;
  if (placed.island_all_devices) {
    for (const CudaDeviceInfo& gpu : info.devices) gpus.push_back(gpu.index);
  } else {
    gpus = placed.island_devices.empty() ? std::vector<int>{placed.device} : placed.island_devices;
  }
  const std::vector<int> usable = usable_gpu_indices(info);
  const bool all_usable = !gpus.empty() && std::all_of(gpus.begin(), gpus.end(), [&](int gpu) {
    return std::find(usable.begin(), usable.end(), gpu) != usable.end();
  });
  const bool falls_back = choice.kind == BackendChoice::Kind::kAuto || choice.fallback_to_cpu;
  if (!all_usable && falls_back) return cpu_devices(choice.cpu_replicas);
  if (gpus.empty()) return {WorkerDevice{"cuda (no GPU)", true, 0, ""}};
  std::vector<WorkerDevice> devices;
  for (int gpu : gpus) devices.push_back(gpu_device(gpu, info));
  return devices;
}

std::vector<WorkerDevice> describe_worker_devices(const WorkerConfig& config) {
  BackendChoice choice = backend_choice(config);
  Result<int> replicas = cpu_island_replicas_from_environment();
  choice.cpu_replicas = replicas.is_ok() ? replicas.value() : 1;
  if (choice.kind == BackendChoice::Kind::kCpu) return describe_worker_devices(choice, {});
  return describe_worker_devices(choice, probe_cuda());
}

}  // namespace dipaco
