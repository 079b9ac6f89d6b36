#include "run/grid_run_hooks.h"

#include <map>
#include <memory>
#include <mutex>

#include "model/param_layout.h"
#include "run/module_aggregator.h"
#include "run/run_plan.h"
#include "run/run_results.h"
#include "run/shard_routing.h"

namespace dipaco {

namespace {

// Grids by their stored text (the effective grid written by plan_grid_run: vocabulary from
// the data already resolved into the file's directory, so parsing needs no data access).
class GridCache {
 public:
  Result<std::shared_ptr<const GridSpec>> get(int64_t run_id, const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = grids_.find(text);
    if (found != grids_.end()) return found->second;
    auto grid = parse_grid_spec(text, "run " + std::to_string(run_id) + " grid");
    if (!grid.is_ok()) return grid.status();
    auto resolved = resolve_grid_vocabulary(*grid);
    if (!resolved.is_ok()) return resolved.status();
    auto shared = std::make_shared<const GridSpec>(std::move(resolved).value());
    grids_[text] = shared;
    return shared;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const GridSpec>> grids_;
};

}  // namespace

RunHooks grid_run_hooks(int threads, FILE* log, std::shared_ptr<RunDirLocks> run_dirs) {
  auto cache = std::make_shared<GridCache>();
  RunHooks hooks;
  hooks.plan_run = [threads, log, run_dirs](const std::string& grid_toml) -> Result<RunSpec> {
    DIPACO_ASSIGN_OR_RETURN(GridSpec grid, parse_grid_spec(grid_toml, "CreateRun grid"));
    return run_dirs->with<RunSpec>(grid.dir, [&](RunDirLock& run_dir_lock) -> Result<RunSpec> {
      DIPACO_ASSIGN_OR_RETURN(PlannedRun planned, plan_grid_run(grid, threads, log, run_dir_lock));
      return planned.spec;
    });
  };
  hooks.task_config = [cache](int64_t run_id, const std::string& config) -> Result<TaskConfig> {
    DIPACO_ASSIGN_OR_RETURN(std::shared_ptr<const GridSpec> grid, cache->get(run_id, config));
    TaskConfig t;
    t.model_config_toml = grid->model.to_string();
    t.inner.lr = grid->inner.lr;
    t.inner.beta1 = grid->inner.adamw.beta1;
    t.inner.beta2 = grid->inner.adamw.beta2;
    t.inner.eps = grid->inner.adamw.eps;
    t.inner.weight_decay = grid->inner.adamw.weight_decay;
    t.inner.grad_clip = grid->inner.grad_clip;
    t.inner.warmup_steps = static_cast<uint32_t>(grid->inner.warmup_steps);
    t.batch_size = static_cast<uint32_t>(grid->inner.batch_size);
    t.seq_len = static_cast<uint32_t>(grid->inner.seq_len);
    t.gradient_dtype = grid->dtype;
    t.module_delta_dtype = grid->downlink;
    t.data_seed = grid->data_seed;
    ParamLayout layout(grid->model);
    for (int id = 0; id < grid->num_modules(); ++id) {
      ParamRange r = grid->module_range(layout, id);
      ModuleLayout& m = t.modules[static_cast<uint32_t>(id)];
      m = {r.offset, r.count, std::nullopt, std::nullopt, module_pushes_params(*grid, id)};
      if (module_wire_dtype(*grid, id) != grid->dtype)
        m.gradient_dtype = module_wire_dtype(*grid, id);
      if (module_downlink_dtype(*grid, id) != grid->downlink)
        m.module_delta_dtype = module_downlink_dtype(*grid, id);
    }
    return t;
  };
  hooks.shard_file = [cache](int64_t run_id, const std::string& config,
                             uint32_t shard_id) -> Result<std::string> {
    DIPACO_ASSIGN_OR_RETURN(std::shared_ptr<const GridSpec> grid, cache->get(run_id, config));
    if (shard_id >= static_cast<uint32_t>(grid->num_shards()))
      return not_found("run " + std::to_string(run_id) + " has no shard " +
                       std::to_string(shard_id));
    return RunLayout{grid->dir}.shard(shard_id);
  };
  hooks.module_delta_file = [cache](int64_t run_id, const std::string& config, uint32_t module_id,
                                    uint64_t version) -> Result<std::string> {
    DIPACO_ASSIGN_OR_RETURN(std::shared_ptr<const GridSpec> grid, cache->get(run_id, config));
    if (module_id >= static_cast<uint32_t>(grid->num_modules()))
      return not_found("run " + std::to_string(run_id) + " has no module " +
                       std::to_string(module_id));
    if (grid->downlink == WireDtype::kFp32)
      return not_found("run " + std::to_string(run_id) +
                       " sends whole module versions (compression.downlink = \"fp32\")");
    if (module_downlink_dtype(*grid, static_cast<int>(module_id)) == WireDtype::kFp32)
      return not_found("module " + std::to_string(module_id) + " of run " + std::to_string(run_id) +
                       " is path-specific: its versions travel whole, never as deltas");
    return RunLayout{grid->dir}.module_delta(module_id, version);
  };
  return hooks;
}

Status lock_served_run_dirs(Coordinator& coordinator, RunDirLocks& run_dirs) {
  DIPACO_ASSIGN_OR_RETURN(std::vector<int64_t> runs, coordinator.active_runs());
  for (int64_t run_id : runs) {
    DIPACO_ASSIGN_OR_RETURN(std::string config, coordinator.run_config(run_id));
    auto grid = parse_grid_spec(config, "run " + std::to_string(run_id) + " grid");
    if (!grid.is_ok() || grid->dir.empty()) continue;
    DIPACO_RETURN_IF_ERROR(
        run_dirs.with<bool>(grid->dir, [](RunDirLock&) -> Result<bool> { return true; }).status());
  }
  return Status::ok();
}

Aggregator grid_aggregator() {
  auto cache = std::make_shared<GridCache>();
  return [cache](Coordinator& coordinator, const AggregationDecision& decision,
                 const std::string& run_config) -> Status {
    DIPACO_ASSIGN_OR_RETURN(std::shared_ptr<const GridSpec> grid,
                            cache->get(decision.run_id, run_config));
    const RunLayout layout{grid->dir};
    ModuleAggregator aggregator(*grid, layout, &coordinator, decision.run_id);
    DIPACO_ASSIGN_OR_RETURN(AggregationOutcome outcome, aggregator.apply(decision));
    (void)outcome;
    // The last aggregation of a run finishes it as `dipaco run` would: every path evaluated on
    // its validation shard, paths/ written, run.json and summary.md — so `dipaco export` takes
    // a served run's directory too. Idempotent: a retried decision rewrites the same files.
    DIPACO_ASSIGN_OR_RETURN(RunStatus status, coordinator.run_status(decision.run_id));
    if (status.state != "finished") return Status::ok();
    DIPACO_ASSIGN_OR_RETURN(ShardPlan plan, prepare_shards(*grid, layout, 1, stderr));
    PathEvaluator evaluator(*grid, layout);
    DIPACO_RETURN_IF_ERROR(evaluator.init(1));
    std::vector<double> losses;
    DIPACO_ASSIGN_OR_RETURN(EvalSum last, evaluator.evaluate(grid->outer_steps, &losses));
    (void)last;
    DIPACO_ASSIGN_OR_RETURN(LocalRunResult result,
                            write_run_results(*grid, layout, plan, evaluator, {}, stderr, 0.0));
    (void)result;
    return Status::ok();
  };
}

}  // namespace dipaco
