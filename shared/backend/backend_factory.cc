#include "backend/backend_factory.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "tensor/island_host_all_reduce.h"

namespace dipaco {

Status parse_backend_name(std::string_view text, BackendChoice* choice) {
  if (text == "cpu") {
    choice->kind = BackendChoice::Kind::kCpu;
    return Status::ok();
  }
  if (text == "auto") {
    choice->kind = BackendChoice::Kind::kAuto;
    choice->device = 0;
    choice->device_pinned = false;
    return Status::ok();
  }
  if (text == "cuda") {
    choice->kind = BackendChoice::Kind::kCuda;
    choice->device = 0;
    choice->device_pinned = false;
    return Status::ok();
  }
  if (text.starts_with("cuda:")) {
    std::string_view index = text.substr(5);
    int device = -1;
    auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), device);
    if (ec == std::errc() && end == index.data() + index.size() && device >= 0) {
      choice->kind = BackendChoice::Kind::kCuda;
      choice->device = device;
      choice->device_pinned = true;
      return Status::ok();
    }
  }
  return invalid_argument("unknown backend '" + std::string(text) +
                          "' (choose cpu, cuda, cuda:N for GPU N, or auto)");
}

BackendChoice local_worker_choice(const BackendChoice& choice, int worker,
                                  const std::vector<int>& gpus, int gpus_per_worker) {
  BackendChoice mine = choice;
  if (choice.kind == BackendChoice::Kind::kCpu || choice.device_pinned || worker < 0 ||
      gpus.empty()) {
    return mine;
  }
  const size_t count = gpus.size();
  const int per_worker = std::max(1, gpus_per_worker);
  mine.island_devices.clear();
  mine.island_all_devices = false;
  for (int g = 0; g < per_worker; ++g) {
    const size_t slot = (static_cast<size_t>(worker) * per_worker + g) % count;
    mine.island_devices.push_back(gpus[slot]);
  }
  mine.device = mine.island_devices.front();
  return mine;
}

BackendChoice place_on_usable_gpus(const BackendChoice& choice, const CudaRuntimeInfo& info) {
  BackendChoice placed = choice;
  if (choice.kind == BackendChoice::Kind::kCpu || choice.device_pinned ||
      !choice.island_devices.empty()) {
    return placed;
  }
  const std::vector<int> usable = usable_gpu_indices(info);
  if (usable.empty()) return placed;
  placed.device = usable.front();
  if (choice.island_all_devices) {
    placed.island_all_devices = false;
    placed.island_devices = usable;
  }
  return placed;
}

Status check_local_islands(const BackendChoice& choice, int workers, int gpus_per_worker,
                           int gpu_count) {
  if (gpus_per_worker <= 1) return Status::ok();
  const std::string asked = std::to_string(gpus_per_worker) + " GPUs per worker";
  if (choice.kind == BackendChoice::Kind::kCpu) {
    return invalid_argument(asked + " needs the backend cuda or auto, not cpu");
  }
  if (choice.device_pinned) {
    return invalid_argument(asked + " needs the backend cuda or auto: cuda:" +
                            std::to_string(choice.device) + " pins every worker to one GPU");
  }
  if (choice.kind == BackendChoice::Kind::kAuto && gpu_count == 0) return Status::ok();
  const int64_t needed = static_cast<int64_t>(workers) * gpus_per_worker;
  if (needed > gpu_count) {
    return invalid_argument(std::to_string(workers) + " workers x " + asked + " need " +
                            std::to_string(needed) + " GPUs; this host has " +
                            std::to_string(gpu_count) +
                            ": use fewer workers or fewer GPUs per worker");
  }
  return Status::ok();
}

void prepare_gpu_environment() {
  setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
}

Result<int> cpu_island_replicas_from_environment() {
  const char* text = std::getenv("DIPACO_CPU_ISLAND_REPLICAS");
  if (text == nullptr || *text == '\0') return 1;
  const std::string_view value(text);
  int replicas = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), replicas);
  if (ec != std::errc() || end != value.data() + value.size() || replicas < 1 || replicas > 64) {
    return invalid_argument(
        "DIPACO_CPU_ISLAND_REPLICAS must be a whole number from 1 to 64, got '" +
        std::string(value) + "'");
  }
  return replicas;
}

namespace {

// A training backend's options on GPU `device`: the choice's precision, and the attention path
// DIPACO_CUDA_ATTENTION names (default_training_attention when it is unset or empty).
Result<CudaBackendOptions> training_cuda_options(const BackendChoice& choice, int device) {
  CudaBackendOptions options;
  options.device = device;
  options.precision = choice.precision;
  options.attention = default_training_attention(choice.precision);
  const char* attention = std::getenv("DIPACO_CUDA_ATTENTION");
  if (attention != nullptr && *attention != '\0') {
    auto parsed = parse_cuda_attention(attention);
    if (!parsed.is_ok()) {
      return invalid_argument("DIPACO_CUDA_ATTENTION: " + parsed.status().message());
    }
    options.attention = *parsed;
  }
  return options;
}

}  // namespace

Result<CreatedBackend> create_backend(const BackendChoice& asked) {
  CreatedBackend created;
  BackendChoice choice = asked;
  if (choice.kind != BackendChoice::Kind::kCpu) {
    std::string reason;
    if (choice.kind == BackendChoice::Kind::kAuto || !choice.device_pinned) {
      const CudaRuntimeInfo info = probe_cuda();
      if (choice.kind == BackendChoice::Kind::kAuto && info.devices.empty()) {
        reason = info.unavailable_reason;
      }
      choice = place_on_usable_gpus(choice, info);
    }
    auto made = training_cuda_options(choice, choice.device);
    if (!made.is_ok()) return made.status();
    const CudaBackendOptions options = *made;
    if (reason.empty()) {
      auto gpu = create_cuda_backend(options);
      if (gpu.is_ok()) {
        created.backend = std::move(gpu).value();
        return created;
      }
      reason = gpu.status().message();
    }
    if (choice.kind == BackendChoice::Kind::kCuda && !choice.fallback_to_cpu) {
      return unavailable(reason + " (set the backend to cpu, or allow falling back to the CPU)");
    }
    created.note = (choice.kind == BackendChoice::Kind::kAuto ? "no usable GPU, training on the "
                                                                "CPU: "
                                                              : "falling back to the CPU: ") +
                   reason;
  }
  created.backend = std::make_unique<CpuBackend>(choice.cpu_threads);
  return created;
}

std::vector<Backend*> CreatedIsland::replicas() const {
  std::vector<Backend*> out;
  for (const auto& backend : backends) out.push_back(backend.get());
  return out;
}

std::string CreatedIsland::name() const {
  if (backends.empty()) return "(no backend)";
  std::string text = backends.front()->name();
  if (backends.size() > 1) text += " (+" + std::to_string(backends.size() - 1) + " more)";
  if (all_reduce != nullptr) text += ", all-reduce " + all_reduce->name();
  return text;
}

namespace {

constexpr int kMaxCpuReplicas = 64;

Result<CreatedIsland> create_cpu_island(const BackendChoice& choice) {
  if (choice.cpu_replicas < 1 || choice.cpu_replicas > kMaxCpuReplicas) {
    return invalid_argument("a CPU island needs 1 to " + std::to_string(kMaxCpuReplicas) +
                            " replicas, got " + std::to_string(choice.cpu_replicas));
  }
  CreatedIsland island;
  const int replicas = choice.cpu_replicas;
  const int threads = choice.cpu_threads > 0
                          ? choice.cpu_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < replicas; ++i) {
    island.backends.push_back(std::make_unique<CpuBackend>(
        replicas == 1 ? choice.cpu_threads : std::max(1, threads / replicas)));
  }
  if (replicas > 1) island.all_reduce = std::make_unique<HostIslandAllReduce>(island.replicas());
  return island;
}

// The island's GPU indices, checked against this host's; an error says which index is wrong.
Result<std::vector<int>> island_gpus(const BackendChoice& choice, const CudaRuntimeInfo& info) {
  const int visible = static_cast<int>(info.devices.size());
  std::vector<int> gpus;
  if (choice.island_all_devices) {
    for (int i = 0; i < visible; ++i) gpus.push_back(i);
    return gpus;
  }
  gpus = choice.island_devices.empty() ? std::vector<int>{choice.device} : choice.island_devices;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (gpus[i] < 0 || gpus[i] >= visible) {
      return invalid_argument("CUDA device " + std::to_string(gpus[i]) +
                              " does not exist: this host has " + std::to_string(visible) +
                              " visible GPU(s), 0.." + std::to_string(visible - 1));
    }
    if (std::find(gpus.begin(), gpus.begin() + static_cast<std::ptrdiff_t>(i), gpus[i]) !=
        gpus.begin() + static_cast<std::ptrdiff_t>(i)) {
      return invalid_argument("CUDA device " + std::to_string(gpus[i]) +
                              " is listed twice for one island");
    }
  }
  return gpus;
}

// Several GPUs: a backend on each and the NCCL all-reduce over them.
Result<CreatedIsland> create_gpu_island(const BackendChoice& choice, const std::vector<int>& gpus) {
  CreatedIsland island;
  for (int gpu : gpus) {
    DIPACO_ASSIGN_OR_RETURN(CudaBackendOptions options, training_cuda_options(choice, gpu));
    DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, create_cuda_backend(options));
    island.backends.push_back(std::move(backend));
  }
  DIPACO_ASSIGN_OR_RETURN(island.all_reduce,
                          create_cuda_island_all_reduce(island.replicas(), gpus));
  return island;
}

}  // namespace

Result<CreatedIsland> create_island(const BackendChoice& asked) {
  if (asked.kind == BackendChoice::Kind::kCpu) return create_cpu_island(asked);
  const BackendChoice choice =
      asked.island_all_devices ? place_on_usable_gpus(asked, probe_cuda()) : asked;
  bool several = choice.island_all_devices || choice.island_devices.size() > 1;
  BackendChoice one = choice;
  std::string reason;
  if (several) {
    CudaRuntimeInfo info = probe_cuda();
    if (info.devices.empty()) {
      several = false;  // create_backend says why, with the same words as without an island
    } else {
      auto gpus = island_gpus(choice, info);
      if (!gpus.is_ok()) {
        reason = gpus.status().message();
      } else if (gpus->size() > 1) {
        auto island = create_gpu_island(choice, *gpus);
        if (island.is_ok()) return island;
        reason = island.status().message();
      } else {
        one.device = gpus->front();
        several = false;
      }
    }
  } else if (!choice.island_devices.empty()) {
    one.device = choice.island_devices.front();
  }
  if (!several) {
    // One GPU: exactly create_backend, its fallback and its notes.
    DIPACO_ASSIGN_OR_RETURN(CreatedBackend created, create_backend(one));
    // A note means create_backend fell back to the CPU.
    if (!created.note.empty() && choice.cpu_replicas > 1) {
      DIPACO_ASSIGN_OR_RETURN(CreatedIsland island, create_cpu_island(choice));
      island.note = std::move(created.note);
      return island;
    }
    CreatedIsland island;
    island.backends.push_back(std::move(created.backend));
    island.note = std::move(created.note);
    return island;
  }
  if (choice.kind == BackendChoice::Kind::kCuda && !choice.fallback_to_cpu) {
    return unavailable(reason + " (set the backend to cpu, or allow falling back to the CPU)");
  }
  DIPACO_ASSIGN_OR_RETURN(CreatedIsland island, create_cpu_island(choice));
  island.note = (choice.kind == BackendChoice::Kind::kAuto ? "no usable GPU island, training on "
                                                             "the CPU: "
                                                           : "falling back to the CPU: ") +
                reason;
  return island;
}

}  // namespace dipaco
