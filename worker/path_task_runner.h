// PathTaskRunner: the real TaskRunner of a worker — trains a DiPaCo path on its leased shard
// with the same PathTrainer that `dipaco run`'s local workers use (shared/run/path_task.h), so a
// remote worker and a local one compute identical outer gradients for identical inputs.
//
// The run's hyper-parameters come with the task: the model config, and the run's grid file
// (TaskAssignment::run_config, parsed as a GridSpec) for the inner schedule, error feedback and
// each module's wire dtype. Each (run, path, shard) keeps its inner state — AdamW moments, data
// position, error-feedback residuals — under <cache_dir>/state/, so a worker that trains the
// same path again continues where it stopped; another worker starts that state fresh.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "algo/grid_spec.h"
#include "backend/backend_factory.h"
#include "run/path_task.h"
#include "task_runner.h"
#include "worker_config.h"

namespace dipaco {

class PathTaskRunner final : public TaskRunner {
 public:
  explicit PathTaskRunner(const WorkerConfig& config);

  Result<TaskResult> run(const TaskAssignment& task, TaskProgress& progress,
                         const std::atomic<bool>& cancel) override;

 private:
  // The trainer for this model and inner configuration, rebuilt when a task needs another.
  Result<PathTrainer*> trainer_for(const ModelConfig& model, const TrainOptions& inner);
  // The config's island (auto | cpu | cuda, devices, fallback_to_cpu; create_island in
  // backend/backend_factory.h), made at the first task: one backend for one GPU or the CPU, an
  // NCCL island for several GPUs (each path then trains data parallel on all of them), CPU
  // replicas with DIPACO_CPU_ISLAND_REPLICAS. GPUs that cannot be used fail the task with the
  // reason unless falling back is on.
  Result<const CreatedIsland*> island();

  WorkerConfig config_;
  std::unique_ptr<CreatedIsland> island_;
  std::unique_ptr<PathTrainer> trainer_;
  std::string trainer_key_;
  std::map<std::string, GridSpec> grids_;  // parsed run configs, by text
};

// Registers PathTaskRunner as the worker's "train" runner (worker_service.h).
void install_path_task_runner();

}  // namespace dipaco
