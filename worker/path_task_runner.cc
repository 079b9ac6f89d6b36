#include "path_task_runner.h"

#include <chrono>
#include <filesystem>

#include "run/module_aggregator.h"
#include "run/module_files.h"
#include "run_cache_files.h"
#include "util/log.h"
#include "worker_service.h"

namespace dipaco {

PathTaskRunner::PathTaskRunner(const WorkerConfig& config) : config_(config) {}

Result<const CreatedIsland*> PathTaskRunner::island() {
  if (island_ == nullptr) {
    BackendChoice choice = backend_choice(config_);
    DIPACO_ASSIGN_OR_RETURN(choice.cpu_replicas, cpu_island_replicas_from_environment());
    DIPACO_ASSIGN_OR_RETURN(CreatedIsland created, create_island(choice));
    if (!created.note.empty()) log_message(LogLevel::kWarning, created.note);
    log_message(LogLevel::kInfo,
                "training on " + created.name() +
                    (created.backends.size() > 1
                         ? " (an island of " + std::to_string(created.backends.size()) +
                               " replicas: each path's batch is split across them)"
                         : ""));
    island_ = std::make_unique<CreatedIsland>(std::move(created));
  }
  return island_.get();
}

Result<PathTrainer*> PathTaskRunner::trainer_for(const ModelConfig& model,
                                                 const TrainOptions& inner) {
  const std::string key = model.to_string() + "|" + std::to_string(inner.batch_size) + "|" +
                          std::to_string(inner.seq_len) + "|" + std::to_string(inner.steps) + "|" +
                          std::to_string(inner.lr) + "|" + std::to_string(inner.min_lr) + "|" +
                          std::to_string(inner.warmup_steps);
  if (trainer_ == nullptr || key != trainer_key_) {
    trainer_.reset();
    DIPACO_ASSIGN_OR_RETURN(const CreatedIsland* island, this->island());
    DIPACO_ASSIGN_OR_RETURN(
        trainer_,
        PathTrainer::create_island(island->replicas(), island->all_reduce.get(), model, inner));
    trainer_key_ = key;
  }
  return trainer_.get();
}

Result<TaskResult> PathTaskRunner::run(const TaskAssignment& task, TaskProgress& progress,
                                       const std::atomic<bool>& cancel) {
  auto cached = grids_.find(task.run_config);
  if (cached == grids_.end()) {
    auto grid = parse_grid_spec(task.run_config, "run " + task.run_id + " grid");
    if (!grid.is_ok()) {
      return invalid_argument("run " + task.run_id +
                              " was not created from a grid file, so this worker cannot train "
                              "it (" +
                              grid.status().message() + ")");
    }
    cached = grids_.emplace(task.run_config, std::move(grid).value()).first;
  }
  const GridSpec& grid = cached->second;
  auto model = ModelConfig::parse(task.model_config_toml);
  if (!model.is_ok()) return model.status().with_context("task model config");
  TrainOptions inner = grid.inner;
  inner.batch_size = static_cast<int>(task.batch_size);
  inner.seq_len = static_cast<int>(task.seq_len);
  inner.steps = static_cast<int64_t>(grid.outer_steps) * grid.inner_steps;
  DIPACO_ASSIGN_OR_RETURN(PathTrainer * trainer, trainer_for(*model, inner));
  progress.note_activity();  // building the island and the trainer can take minutes

  PathTaskSpec spec;
  spec.path_id = task.path_id;
  spec.shard_id = task.shard_id;
  spec.outer_step = task.outer_step;
  spec.inner_steps = task.inner_steps;
  spec.data_seed = task.data_seed;
  for (const TaskAssignment::Module& m : task.modules) {
    TaskModule tm;
    tm.module_id = m.module_id;
    tm.range = {m.param_offset, m.num_params};
    // As the coordinator asked (ModuleRef.gradient_dtype, else the run's dtype): it decodes
    // what it asked for, whatever this worker's grid code would decide.
    tm.dtype = m.gradient_dtype;
    tm.send_params = m.push_params;  // path-specific: its new version is what this task trains
    tm.error_feedback = grid.error_feedback;
    DIPACO_ASSIGN_OR_RETURN(tm.params,
                            read_module_version(m.checkpoint_file, m.module_id, m.num_params));
    spec.modules.push_back(std::move(tm));
    progress.note_activity();
  }
  const std::filesystem::path state_dir = run_state_dir(config_.cache_dir, task.run_id);
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return io_error(state_dir.string() + ": cannot create: " + ec.message());
  const std::string state_file = (state_dir / ("path-" + std::to_string(task.path_id) + "-shard-" +
                                               std::to_string(task.shard_id) + ".safetensors"))
                                     .string();
  PathTaskState state;
  if (std::filesystem::exists(state_file)) {
    auto loaded = load_path_task_state(state_file, trainer->num_params());
    if (loaded.is_ok()) state = std::move(loaded).value();  // unreadable: start fresh
  }
  progress.note_activity();
  auto started = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  auto on_step = [&](int64_t step, const StepStats& stats) {
    tokens += stats.tokens;
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    progress.inner_step = static_cast<uint64_t>(step);
    if (seconds > 0) progress.tokens_per_second = static_cast<double>(tokens) / seconds;
    return !cancel.load();
  };
  DIPACO_ASSIGN_OR_RETURN(PathTaskResult r, trainer->run(spec, task.shard_file, &state, on_step));
  DIPACO_RETURN_IF_ERROR(save_path_task_state(state_file, state));
  TaskResult result;
  for (OuterGradientPayload& g : r.gradients) {
    result.gradients.push_back({g.module_id, {}, std::string(g.payload.begin(), g.payload.end())});
  }
  const auto steps = static_cast<uint64_t>(r.inner_steps_done);
  result.metrics.push_back({"train_loss", steps, r.mean_loss});
  result.metrics.push_back(
      {"tokens_per_second", steps, r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0});
  return result;
}

void install_path_task_runner() {
  set_train_runner_factory([](const WorkerConfig& config) -> Result<std::unique_ptr<TaskRunner>> {
    return std::unique_ptr<TaskRunner>(new PathTaskRunner(config));
  });
}

}  // namespace dipaco
