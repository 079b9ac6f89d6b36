// Which backend a trainer or worker runs on, from the words people write in configs:
// "cpu", "cuda" (the first usable GPU), "cuda:N", or "auto" (the first usable GPU when this host
// has one, otherwise the CPU). A CUDA choice that cannot be met is an error naming why, unless
// fallback_to_cpu is set: then the CPU backend runs and the reason is kept in the note.
//
// On CUDA, the environment variable DIPACO_CUDA_ATTENTION=gemm|kernels|cudnn picks the
// attention path (backend/cuda_runtime.h); a value that is none of these is an error. Unset, it
// is cuDNN in bf16 and the cuBLASLt path in tf32 and fp32 (default_training_attention).
//
// create_island makes the backends of an island (tensor/island_all_reduce.h): several GPUs of
// this host, or several CPU replicas, that train one path together, data parallel.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/cuda_runtime.h"
#include "tensor/backend.h"
#include "tensor/island_all_reduce.h"
#include "util/status.h"

namespace dipaco {

struct BackendChoice {
  enum class Kind { kCpu, kCuda, kAuto };
  Kind kind = Kind::kAuto;
  int device = 0;              // for kCuda
  bool device_pinned = false;  // "cuda:N" named the GPU; "cuda" and "auto" leave it open
  int cpu_threads = 0;         // 0 = all cores
  CudaMatmulPrecision precision = CudaMatmulPrecision::kBf16;
  bool fallback_to_cpu = false;

  // For create_island only (create_backend uses `device`).
  // The GPUs of the island when the choice runs on CUDA: island_all_devices = every usable GPU
  // (a worker's `devices = []`, place_on_usable_gpus), else island_devices, else just `device`.
  std::vector<int> island_devices;
  bool island_all_devices = false;
  // CPU replicas in one process whenever the island ends up on the CPU, asked for or fallen
  // back to (tests and demos; each replica gets its share of cpu_threads). 1 = one CPU
  // backend, no island.
  int cpu_replicas = 1;
};

// Parses "cpu" | "cuda" | "cuda:N" | "auto" into choice->kind and choice->device.
Status parse_backend_name(std::string_view text, BackendChoice* choice);

// The choice for local worker `worker` of a run on one host whose usable GPUs are `gpus`
// (usable_gpu_indices): a GPU choice that did not name its device spreads the workers over
// them (worker i on gpus[i mod count]), so `dipaco run --backend cuda` on an 8-GPU host uses
// all 8 and a host whose GPU 0 is too old uses the others; a pinned "cuda:N", the CPU, or no
// usable GPU leave the choice as it is. With gpus_per_worker n > 1 each worker is an island of
// n GPUs instead (worker i on gpus[i n] .. gpus[i n + n - 1], for create_island);
// check_local_islands says whether they fit.
BackendChoice local_worker_choice(const BackendChoice& choice, int worker,
                                  const std::vector<int>& gpus, int gpus_per_worker = 1);
// Whether `workers` local workers of gpus_per_worker GPUs each can run here: more than one GPU
// per worker needs a GPU choice that did not name its device ("cuda" or "auto") and
// workers x gpus_per_worker GPUs on this host ("auto" on a host without a GPU trains on the
// CPU). The error says what to change.
Status check_local_islands(const BackendChoice& choice, int workers, int gpus_per_worker,
                           int gpu_count);

// An open GPU choice ("cuda", "auto", a worker's `devices = []`: not pinned, no island listed)
// placed on this host's usable GPUs (compute capability 8.0 or newer, usable_gpu_indices): the
// first usable GPU rather than GPU 0, and for island_all_devices every usable GPU rather than
// every visible one, so a host that mixes GPUs trains on the ones that can. Without a usable
// GPU, or for a pinned or listed choice, it is returned as it is (and refused, or falls back,
// when its backend is made). create_backend and create_island do this themselves.
BackendChoice place_on_usable_gpus(const BackendChoice& choice, const CudaRuntimeInfo& info);

// Call first thing in main(), before any thread starts (setenv is not safe once they run):
// sets NCCL_RUNTIME_CONNECT=0 unless the environment already has it, so that NCCL (2.22 and
// later) connects an island's GPUs and allocates their buffers when the island is made, not
// at its first all-reduce, after the models checked their memory budget against free memory.
void prepare_gpu_environment();

// DIPACO_CPU_ISLAND_REPLICAS (unset: 1): CPU replicas per island for tests and demos of islands
// on a host without GPUs; an error when it is not a whole number from 1 to 64.
Result<int> cpu_island_replicas_from_environment();

struct CreatedBackend {
  std::unique_ptr<Backend> backend;
  std::string note;  // why the CPU runs instead of the asked-for GPU; empty otherwise
};

Result<CreatedBackend> create_backend(const BackendChoice& choice);

struct CreatedIsland {
  std::vector<std::unique_ptr<Backend>> backends;  // one per replica; replica 0 first
  std::unique_ptr<IslandAllReduce> all_reduce;     // null for one backend (no island)
  std::string note;  // why the CPU runs instead of the asked-for GPUs; empty otherwise

  std::vector<Backend*> replicas() const;
  // "cuda:0 ... (+3 more), all-reduce nccl 2.28.3 (GPUs 0,1,2,3)", or the one backend's name.
  std::string name() const;
};

// The island a choice asks for. One GPU (or cpu_replicas = 1) is exactly create_backend. More:
// one backend per GPU and an NCCL all-reduce over them, or CPU replicas and the host
// all-reduce. A GPU index this host does not have, a GPU listed twice, a backend or NCCL that
// cannot be set up: an error naming it, or the CPU fallback (cpu_replicas of it) with the
// reason in the note (fallback_to_cpu, or auto).
Result<CreatedIsland> create_island(const BackendChoice& choice);

}  // namespace dipaco
