// The backend of a run's own compute — its base model, routing features, document scores and
// validation evaluations — apart from its workers'. A run whose workers train on GPUs does these
// on the first GPU they use (worker 0's), with the workers' precision; a run on the CPU keeps
// the CPU as before (routing on run.threads threads, evaluation on one).
//
// That GPU is shared with worker 0 (and any other worker placed on it), and the evaluator's
// model stays on it for the whole run. Before the run uses it, its models are made once on it
// as a check against free memory (Model::create): the base model's trainer, the routing model,
// and the evaluator's model next to the trainers of the workers on that GPU. A GPU backend that
// cannot be made, or a model that does not fit, leaves the run's own compute on the CPU with the
// reason in the line it prints: it never fails the run.
//
// A CUDA backend is bound to the thread that made it: the run uses it from that thread only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "algo/grid_spec.h"
#include "backend/backend_factory.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

struct RunComputeBackend {
  std::unique_ptr<Backend> gpu;  // null: the CPU, as before
  // What to print: "base model and evaluation: <the GPU backend's name>", or the CPU with why
  // the GPU is not used; empty for a run whose workers train on the CPU.
  std::string line;
};

// The one-GPU choice of a run's own compute, for workers on `workers` over this host's usable
// GPUs `usable_gpus` with gpus_per_worker GPUs each: worker 0's first GPU (local_worker_choice),
// pinned, the workers' precision, no CPU fallback. nullopt when the workers train on the CPU:
// --backend cpu, or auto (or cuda with fallback_to_cpu) on a host without a usable GPU.
std::optional<BackendChoice> run_compute_gpu_choice(const BackendChoice& workers,
                                                    const std::vector<int>& usable_gpus,
                                                    int gpus_per_worker);

// How many of `worker_count` local workers train on GPU `device` (local_worker_choice).
int local_workers_on_gpu(const BackendChoice& workers, int worker_count,
                         const std::vector<int>& usable_gpus, int gpus_per_worker, int device);

// Whether the run's own models for `grid` fit on `backend`, as described above, with
// `workers_here` workers of gpus_per_worker GPUs each training on the same device: makes each
// once and frees it. The error is Model::create's, with the bytes needed and free.
Status check_run_compute_fits(const GridSpec& grid, int workers_here, int gpus_per_worker,
                              Backend* backend);

// The backend of a run's own compute for `grid` (vocabulary resolved; grid.workers local
// workers), as described above.
RunComputeBackend create_run_compute_backend(const GridSpec& grid, const BackendChoice& workers,
                                             const std::vector<int>& usable_gpus,
                                             int gpus_per_worker);

}  // namespace dipaco
