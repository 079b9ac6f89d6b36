// The backend of a run's own compute — its base model, routing features, document scores and
// validation evaluations — apart from its workers'. A run whose workers train on GPUs does these
// on the first GPU they use (worker 0's), with the workers' precision; a run on the CPU keeps
// the CPU as before (routing on run.threads threads, evaluation on one).
//
// That GPU is shared with worker 0's model. Before the run uses it, the largest model of its own
// compute (the base model's trainer, at the evaluator's batch of 8 if that is larger) is made
// once on it as a check against free memory (Model::create). A GPU backend that cannot be made,
// or a model that does not fit, leaves the run's own compute on the CPU with the reason in the
// line it prints: it never fails the run.
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
  // the GPU is not used; empty for a run on the CPU that asked for no GPU.
  std::string line;
};

// The one-GPU choice of a run's own compute, for workers on `workers` over this host's usable
// GPUs `usable_gpus` with gpus_per_worker GPUs each: worker 0's first GPU (local_worker_choice),
// pinned, the workers' precision, no CPU fallback. nullopt when the workers train on the CPU:
// --backend cpu, or auto (or cuda with fallback_to_cpu) on a host without a usable GPU.
std::optional<BackendChoice> run_compute_gpu_choice(const BackendChoice& workers,
                                                    const std::vector<int>& usable_gpus,
                                                    int gpus_per_worker);

// Whether the largest model of the run's own compute for `grid` fits on `backend`: makes it once
// and frees it. The error is Model::create's, with the bytes needed and free.
Status check_run_compute_fits(const GridSpec& grid, Backend* backend);

// The backend of a run's own compute for `grid` (vocabulary resolved), as described above.
RunComputeBackend create_run_compute_backend(const GridSpec& grid, const BackendChoice& workers,
                                             const std::vector<int>& usable_gpus,
                                             int gpus_per_worker);

}  // namespace dipaco
