#include "run/run_compute_backend.h"

#include <algorithm>

#include "model/model.h"
#include "run/run_results.h"
#include "run/shard_routing.h"
#include "train/trainer.h"

namespace dipaco {

namespace {

constexpr char kWhat[] = "base model and evaluation: ";

}  // namespace

int local_workers_on_gpu(const BackendChoice& workers, int worker_count,
                         const std::vector<int>& usable_gpus, int gpus_per_worker, int device) {
  int here = 0;
  for (int w = 0; w < worker_count; ++w) {
    const BackendChoice mine = local_worker_choice(workers, w, usable_gpus, gpus_per_worker);
    const bool on_device = mine.island_devices.empty()
                               ? mine.device == device
                               : std::find(mine.island_devices.begin(), mine.island_devices.end(),
                                           device) != mine.island_devices.end();
    here += on_device ? 1 : 0;
  }
  return here;
}

Status check_run_compute_fits(const GridSpec& grid, int workers_here, int gpus_per_worker,
                              Backend* backend) {
  // A worker's trainer on this GPU: the path's batch, split over its island's GPUs.
  TrainOptions worker = grid.inner;
  worker.batch_size = std::max(1, worker.batch_size / std::max(1, gpus_per_worker));
  size_t worker_bytes = 0;
  {
    DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                            Trainer::create(backend, grid.model, worker));
    worker_bytes = trainer->model().budget_bytes();
  }
  {  // The base model trains with the path's whole batch, alone on the GPU.
    DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> base,
                            Trainer::create(backend, grid.model, grid.inner));
  }
  const int prefix = std::min(grid.routing.prefix_tokens, grid.model.max_seq_len);
  if (prefix > 0) {
    DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> features,
                            Model::create(backend, grid.model, kRoutingFeatureBatch, prefix));
  }
  // The evaluator's model stays while the workers train next to it.
  DIPACO_ASSIGN_OR_RETURN(
      std::unique_ptr<Model> evaluator,
      Model::create(backend, grid.model, PathEvaluator::kBatch, grid.inner.seq_len,
                    static_cast<size_t>(std::max(0, workers_here)) * worker_bytes));
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
  // Allowed to fall back, create_backend says why the GPU cannot be had in its note (and makes a
  // CPU backend, unused: the CPU path keeps its own thread counts).
  BackendChoice or_cpu = *choice;
  or_cpu.fallback_to_cpu = true;
  or_cpu.cpu_threads = 1;
  auto created = create_backend(or_cpu);
  if (!created.is_ok() || !created->note.empty()) {
    compute.line = std::string(kWhat) + "CPU (" + gpu_name + ": " +
                   (created.is_ok() ? created->note : created.status().message()) + ")";
    return compute;
  }
  const int workers_here =
      local_workers_on_gpu(workers, grid.workers, usable_gpus, gpus_per_worker, choice->device);
  if (Status fits =
          check_run_compute_fits(grid, workers_here, gpus_per_worker, created->backend.get());
      !fits) {
    compute.line = std::string(kWhat) + "CPU (" + gpu_name + " cannot hold them next to " +
                   std::to_string(workers_here) + " worker" + (workers_here == 1 ? "" : "s") +
                   "' models: " + fits.message() + ")";
    return compute;
  }
  compute.gpu = std::move(created->backend);
  compute.line = std::string(kWhat) + compute.gpu->name();
  return compute;
}

}  // namespace dipaco
