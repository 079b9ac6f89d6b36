#include "run/run_compute_backend.h"

#include <algorithm>

#include "train/trainer.h"

namespace dipaco {

namespace {

constexpr char kWhat[] = "base model and evaluation: ";

// The evaluator scores batches of 8 windows (run_results.h).
constexpr int kEvaluatorBatch = 8;

}  // namespace

Status check_run_compute_fits(const GridSpec& grid, Backend* backend) {
  // The base model's trainer, at the evaluator's batch if that is larger.
  TrainOptions largest = grid.inner;
  largest.batch_size = std::max(largest.batch_size, kEvaluatorBatch);
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                          Trainer::create(backend, grid.model, largest));
  return Status::ok();
}

std::optional<BackendChoice> run_compute_gpu_choice(const BackendChoice& workers,
                                                    const std::vector<int>& usable_gpus,
                                                    int gpus_per_worker) {
  if (workers.kind == BackendChoice::Kind::kCpu) return std::nullopt;
  // "cuda:N" trains on N (run_local checked it is usable); an open choice on a usable GPU.
  if (!workers.device_pinned && usable_gpus.empty()) return std::nullopt;
  BackendChoice gpu = local_worker_choice(workers, 0, usable_gpus, gpus_per_worker);
  gpu.kind = BackendChoice::Kind::kCuda;
  gpu.device_pinned = true;
  gpu.island_devices.clear();
  gpu.island_all_devices = false;
  gpu.cpu_replicas = 1;
  gpu.fallback_to_cpu = false;
  return gpu;
}

RunComputeBackend create_run_compute_backend(const GridSpec& grid, const BackendChoice& workers,
                                             const std::vector<int>& usable_gpus,
                                             int gpus_per_worker) {
  RunComputeBackend compute;
  const std::optional<BackendChoice> choice =
      run_compute_gpu_choice(workers, usable_gpus, gpus_per_worker);
  if (!choice) return compute;
  const std::string gpu_name = "cuda:" + std::to_string(choice->device);
  auto created = create_backend(*choice);
  if (!created.is_ok()) {
    compute.line = std::string(kWhat) + "CPU (" + gpu_name +
                   " cannot run them: " + created.status().message() + ")";
    return compute;
  }
  if (Status fits = check_run_compute_fits(grid, created->backend.get()); !fits) {
    compute.line =
        std::string(kWhat) + "CPU (" + gpu_name + " cannot hold them: " + fits.message() + ")";
    return compute;
  }
  compute.gpu = std::move(created->backend);
  compute.line = std::string(kWhat) + compute.gpu->name();
  return compute;
}

}  // namespace dipaco
