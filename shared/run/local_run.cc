#include "run/local_run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "compress/wire_dtype.h"
#include "coordinator/coordinator.h"
#include "data/json_writer.h"
#include "data/token_file.h"
#include "model/model.h"
#include "run/document_eval.h"
#include "run/module_aggregator.h"
#include "run/module_cache.h"
#include "run/module_files.h"
#include "run/path_task.h"
#include "run/round_traffic.h"
#include "run/run_compute_backend.h"
#include "run/run_layout.h"
#include "run/run_plan.h"
#include "run/run_results.h"
#include "run/shard_routing.h"
#include "util/atomic_file.h"
#include "util/human_units.h"
#include "util/sha256.h"

namespace dipaco {

namespace {

constexpr uint64_t kPushChunkBytes = 1 << 20;
constexpr int64_t kHeartbeatEveryMs = 2000;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// Shared between the driver and the worker threads.
struct RunShared {
  const GridSpec& grid;
  RunLayout layout;
  Coordinator* coordinator;
  int64_t run_id;
  BackendChoice backend;  // cpu_threads: threads per worker
  FILE* out;
  const std::atomic<bool>* stop;
  std::atomic<bool> finished{false};
  std::atomic<bool> failed{false};
  std::vector<int> gpus;  // this host's usable GPUs, over which local_worker_choice spreads workers
  int gpus_per_worker = 1;
  std::mutex mutex;  // guards error, last_train_loss, traffic, output lines
  Status error;
  std::map<uint32_t, double> last_train_loss;
  // Payload bytes the tasks of each outer step moved, counted before the push (so a step's
  // count is complete once its modules are aggregated); path-specific modules apart.
  struct StepTraffic {
    uint64_t up = 0, down = 0, path_local = 0;
  };
  std::map<uint64_t, StepTraffic> traffic;

  bool should_stop() const {
    return finished.load() || failed.load() || (stop != nullptr && stop->load());
  }
  void fail(Status s) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!failed.exchange(true)) error = std::move(s);
  }
};

Status push_gradient(Coordinator& c, int64_t lease,
                     const std::vector<OuterGradientPayload>& grads) {
  uint64_t sequence = 0;
  for (const OuterGradientPayload& g : grads) {
    const uint64_t total = g.payload.size();
    for (uint64_t off = 0; off < total || (total == 0 && off == 0); off += kPushChunkBytes) {
      PushChunk chunk;
      chunk.lease_id = lease;
      chunk.sequence = sequence++;
      chunk.module_id = g.module_id;
      chunk.offset_bytes = off;
      chunk.total_bytes = total;
      chunk.data = std::string_view(reinterpret_cast<const char*>(g.payload.data()) + off,
                                    std::min(kPushChunkBytes, total - off));
      DIPACO_ASSIGN_OR_RETURN(PushReply reply, c.accept_push(chunk));
      if (!reply.accepted) return unavailable("push refused: " + reply.reason);
      if (total == 0) break;
    }
  }
  return Status::ok();
}

void worker_main(RunShared* shared, int index) {
  const GridSpec& grid = shared->grid;
  Coordinator& c = *shared->coordinator;
  const std::string worker_id = "local-" + std::to_string(index);
  auto created = create_island(
      local_worker_choice(shared->backend, index, shared->gpus, shared->gpus_per_worker));
  if (!created.is_ok()) return shared->fail(created.status().with_context(worker_id));
  if (!created->note.empty() && index == 0) {
    std::lock_guard<std::mutex> lock(shared->mutex);
    std::fprintf(shared->out, "%s\n", created->note.c_str());
  }
  auto trainer = PathTrainer::create_island(created->replicas(), created->all_reduce.get(),
                                            grid.model, grid.inner);
  if (!trainer.is_ok()) return shared->fail(trainer.status().with_context(worker_id));
  ParamLayout layout(grid.model);
  ModuleCache modules(shared->layout, grid.downlink);
  auto reg = c.register_worker({worker_id, hostname(), created->name(), DIPACO_VERSION});
  if (!reg.is_ok()) return shared->fail(reg.status());
  // A drain outlives a worker's restarts, but local workers live and die with this run: one
  // drained in an earlier session of the run (the studio's dashboard) works again when resumed.
  if (reg->drain) {
    auto undrained = c.undrain(worker_id);
    if (!undrained.is_ok()) return shared->fail(undrained.status());
  }

  while (!shared->should_stop()) {
    auto reply = c.lease_task(worker_id);
    if (!reply.is_ok()) return shared->fail(reply.status());
    if (!reply->task) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::clamp<int64_t>(reply->wait_ms, 5, 200)));
      continue;
    }
    const TaskGrant& task = *reply->task;
    PathTaskSpec spec;
    spec.path_id = task.path_id;
    spec.shard_id = task.shard_id;
    spec.outer_step = task.outer_step;
    spec.inner_steps = task.inner_steps;
    spec.data_seed = grid.data_seed;
    std::vector<uint64_t> fetched_bytes;
    for (const ModuleRef& ref : task.modules) {
      TaskModule m;
      m.module_id = ref.module_id;
      m.range = grid.module_range(layout, static_cast<int>(ref.module_id));
      m.dtype = module_wire_dtype(grid, static_cast<int>(ref.module_id));
      m.send_params = module_pushes_params(grid, static_cast<int>(ref.module_id));
      m.error_feedback = grid.error_feedback;
      auto fetched = modules.fetch(ref, m.range.count);
      if (!fetched.is_ok()) return shared->fail(fetched.status());
      m.params = std::move(fetched->params);
      fetched_bytes.push_back(fetched->bytes);
      spec.modules.push_back(std::move(m));
    }
    const std::string state_file = shared->layout.task_state(task.path_id, task.shard_id);
    PathTaskState state;
    if (std::filesystem::exists(state_file)) {
      auto loaded = load_path_task_state(state_file, layout.total());
      if (!loaded.is_ok()) return shared->fail(loaded.status());
      state = std::move(loaded).value();
    }
    int64_t last_beat = now_ms();
    auto on_step = [&](int64_t inner_step, const StepStats&) {
      if (shared->should_stop()) return false;
      if (now_ms() - last_beat < kHeartbeatEveryMs) return true;
      last_beat = now_ms();
      auto beat = c.heartbeat(worker_id, task.lease_id, static_cast<uint64_t>(inner_step));
      return beat.is_ok() && beat->lease_valid;
    };
    auto result = (*trainer)->run(spec, shared->layout.shard(task.shard_id), &state, on_step);
    if (!result.is_ok()) {
      if (result.status().code() == StatusCode::kUnavailable) continue;  // lease lost / stop
      return shared->fail(result.status().with_context("path " + std::to_string(task.path_id) +
                                                       " outer step " +
                                                       std::to_string(task.outer_step)));
    }
    // The state first: a crash after the push but before the state write would replay the
    // task from the old state, which the coordinator refuses as already done; the other order
    // at worst repeats a task's data.
    if (Status s = save_path_task_state(state_file, state); !s) return shared->fail(s);
    double up = 0, down = 0;
    {
      std::lock_guard<std::mutex> lock(shared->mutex);
      RunShared::StepTraffic& t = shared->traffic[task.outer_step];
      for (size_t i = 0; i < spec.modules.size(); ++i) {
        const uint64_t sent = result->gradients[i].payload.size();
        const int level = grid.module_level(static_cast<int>(spec.modules[i].module_id));
        if (grid.levels[static_cast<size_t>(level)].path_specific) {
          t.path_local += fetched_bytes[i] + sent;
        } else {
          t.down += fetched_bytes[i];
          t.up += sent;
        }
        down += static_cast<double>(fetched_bytes[i]);
        up += static_cast<double>(sent);
      }
    }
    if (Status s = push_gradient(c, task.lease_id, result->gradients); !s) {
      if (s.code() == StatusCode::kUnavailable) continue;  // the lease died meanwhile
      return shared->fail(s);
    }
    const double tps = result->seconds > 0 ? result->tokens / result->seconds : 0.0;
    std::vector<MetricPoint> points = {
        {shared->run_id, task.path_id, task.outer_step,
         static_cast<uint64_t>(result->inner_steps_done), "train_loss", result->mean_loss, 0},
        {shared->run_id, task.path_id, task.outer_step,
         static_cast<uint64_t>(result->inner_steps_done), "tokens_per_second", tps, 0}};
    points.push_back({shared->run_id, task.path_id, task.outer_step, 0, "bytes_down", down, 0});
    points.push_back({shared->run_id, task.path_id, task.outer_step, 0, "bytes_up", up, 0});
    (void)c.report_metrics(points);
    std::lock_guard<std::mutex> lock(shared->mutex);
    shared->last_train_loss[task.path_id] = result->mean_loss;
    std::fprintf(shared->out,
                 "outer %llu | path %u shard %u | %s | loss %.4f -> %.4f | %.0f tok/s\n",
                 static_cast<unsigned long long>(task.outer_step), task.path_id, task.shard_id,
                 worker_id.c_str(), result->first_loss, result->last_loss, tps);
    std::fflush(shared->out);
  }
}

}  // namespace

Status check_local_run_gpus(const BackendChoice& choice, int workers, int gpus_per_worker,
                            const CudaRuntimeInfo& cuda) {
  const int usable = usable_gpu_count(cuda);
  const int visible = static_cast<int>(cuda.devices.size());
  const Status fits = check_local_islands(choice, workers, gpus_per_worker, usable);
  if (!fits.is_ok() && usable < visible) {
    return Status(fits.code(), fits.message() + " (only " + std::to_string(usable) + " of its " +
                                   std::to_string(visible) +
                                   " GPUs have compute capability 8.0 or newer, which the CUDA "
                                   "backend needs)");
  }
  DIPACO_RETURN_IF_ERROR(fits);
  if (choice.kind != BackendChoice::Kind::kCuda || choice.fallback_to_cpu) return Status::ok();
  if (usable == 0) {
    return unavailable(no_usable_gpu_reason(cuda) +
                       " (use --backend cpu, or auto to take a GPU only when there is one)");
  }
  if (!choice.device_pinned) return Status::ok();
  for (const CudaDeviceInfo& device : cuda.devices) {
    if (device.index != choice.device) continue;
    if (device.compute_major >= 8) return Status::ok();
    CudaRuntimeInfo only = cuda;
    only.devices = {device};
    return unavailable(no_usable_gpu_reason(only));
  }
  return invalid_argument("--backend cuda:" + std::to_string(choice.device) + ": this host has " +
                          std::to_string(visible) + " GPU" + (visible == 1 ? "" : "s") +
                          " (cuda:0 to cuda:" + std::to_string(visible - 1) + ")");
}

Result<LocalRunResult> run_local(const GridSpec& input, const LocalRunOptions& options) {
  FILE* out = options.out;
  auto started = std::chrono::steady_clock::now();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = input.threads > 0 ? input.threads : cores;
  // Where the workers go is checked before anything is written or trained (the base model
  // would otherwise train for minutes before the first worker finds no GPU).
  const CudaRuntimeInfo cuda =
      options.backend.kind == BackendChoice::Kind::kCpu ? CudaRuntimeInfo{} : probe_cuda();
  DIPACO_RETURN_IF_ERROR(
      check_local_run_gpus(options.backend, input.workers, options.gpus_per_worker, cuda));
  // A missing data.train is refused before the run directory is created.
  DIPACO_ASSIGN_OR_RETURN(const GridSpec resolved, resolve_grid_vocabulary(input));
  // Held until run_local returns: see run_dir_lock.h.
  DIPACO_ASSIGN_OR_RETURN(RunDirLock run_dir_lock, lock_run_dir(input.dir, "dipaco run"));
  // The base model, routing and evaluation run on worker 0's GPU when the workers train on GPUs
  // (run_compute_backend.h); outlives the evaluator below.
  const RunComputeBackend compute = create_run_compute_backend(
      resolved, options.backend, usable_gpu_indices(cuda), options.gpus_per_worker);
  if (!compute.line.empty()) {
    std::fprintf(out, "%s\n", compute.line.c_str());
    std::fflush(out);
  }
  DIPACO_ASSIGN_OR_RETURN(PlannedRun planned,
                          plan_grid_run(input, threads, out, run_dir_lock, compute.gpu.get()));
  const GridSpec& grid = planned.grid;
  const RunLayout& layout = planned.layout;
  const ShardPlan& plan = planned.shards;
  const RunSpec& spec = planned.spec;
  const int workers = grid.workers;
  const int per_worker = std::max(1, threads / workers);
  CoordinatorOptions copts;
  copts.db_path = layout.database();
  copts.payload_dir = layout.payload_dir();
  // The workers of a previous process are gone: `run_dir_lock` keeps out any other live one.
  copts.restart = RestartPolicy::kExpireLeases;
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator, Coordinator::open(copts));
  if (options.on_event) coordinator->set_event_sink(options.on_event);
  DIPACO_ASSIGN_OR_RETURN(int64_t run_id, coordinator->create_run(spec));
  if (options.on_started) options.on_started(coordinator.get(), run_id);

  PathEvaluator evaluator(grid, layout);
  DIPACO_RETURN_IF_ERROR(compute.gpu ? evaluator.init(compute.gpu.get()) : evaluator.init(1));
  std::unique_ptr<FILE, int (*)(FILE*)> metrics_file(std::fopen(layout.metrics().c_str(), "a"),
                                                     &std::fclose);
  FILE* metrics = metrics_file.get();

  ModuleAggregator aggregator(grid, layout, coordinator.get(), run_id);
  LocalRunResult result;
  uint64_t evaluated = 0;        // versions evaluated so far (version 0 is never evaluated)
  uint64_t completed_steps = 0;  // outer steps every module has completed
  auto min_version = [&](const RunStatus& st) {
    uint64_t v = UINT64_MAX;
    for (const auto& [id, version] : st.module_versions) v = std::min(v, version);
    return v == UINT64_MAX ? 0 : v;
  };
  {  // A resumed run logged its earlier outer steps already.
    DIPACO_ASSIGN_OR_RETURN(RunStatus st, coordinator->run_status(run_id));
    completed_steps = min_version(st);
  }
  BackendChoice backend = options.backend;
  backend.cpu_threads = per_worker;
  RunShared shared{grid, layout, coordinator.get(), run_id, backend, out, options.stop};
  shared.gpus_per_worker = options.gpus_per_worker;
  shared.gpus = usable_gpu_indices(cuda);
  const int gpu_count = static_cast<int>(shared.gpus.size());
  const int visible = static_cast<int>(cuda.devices.size());
  const std::string which_gpus = gpu_count == visible
                                     ? "this host's " + std::to_string(gpu_count) + " GPUs"
                                     : std::to_string(gpu_count) + " of this host's " +
                                           std::to_string(visible) +
                                           " GPUs (those of compute capability " + "8.0 or newer)";
  if (gpu_count > 0 && options.gpus_per_worker > 1) {
    std::fprintf(out, "local workers: %d, each an island of %d of %s\n", workers,
                 options.gpus_per_worker, which_gpus.c_str());
  } else if (gpu_count > 0 && !backend.device_pinned && (gpu_count > 1 || visible > 1)) {
    std::fprintf(out, "local workers: %d, spread over %s\n", workers, which_gpus.c_str());
  }
  if (gpu_count == 0 && backend.cpu_replicas > 1) {
    std::fprintf(out, "local workers: %d, each an island of %d CPU replicas\n", workers,
                 backend.cpu_replicas);
  }
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) pool.emplace_back(worker_main, &shared, w);

  Status driver_error;
  std::vector<double> losses;
  EvalSum routed;
  while (true) {
    if (options.stop != nullptr && options.stop->load()) {
      result.interrupted = true;
      break;
    }
    if (shared.failed.load()) break;
    auto pending = coordinator->pending_aggregations(run_id);
    if (!pending.is_ok()) {
      driver_error = pending.status();
      break;
    }
    for (const AggregationDecision& d : *pending) {
      auto outcome = aggregator.apply(d);
      if (!outcome.is_ok()) {
        driver_error = outcome.status();
        break;
      }
    }
    if (!driver_error.is_ok()) break;
    auto st = coordinator->run_status(run_id);
    if (!st.is_ok()) {
      driver_error = st.status();
      break;
    }
    const uint64_t version = min_version(*st);
    if (version > completed_steps && metrics != nullptr) {
      const RoundTraffic estimate = round_traffic(grid, ParamLayout(grid.model));
      for (uint64_t k = completed_steps + 1; k <= version; ++k) {
        RunShared::StepTraffic t;
        {
          std::lock_guard<std::mutex> lock(shared.mutex);
          t = shared.traffic[k - 1];  // version k is the end of outer step k − 1
        }
        std::fprintf(metrics,
                     "{\"outer_step\": %llu, \"bytes_up\": %llu, \"bytes_down\": %llu, "
                     "\"bytes_path_local\": %llu, \"data_parallel_bytes\": %llu}\n",
                     static_cast<unsigned long long>(k), static_cast<unsigned long long>(t.up),
                     static_cast<unsigned long long>(t.down),
                     static_cast<unsigned long long>(t.path_local),
                     static_cast<unsigned long long>(estimate.data_parallel));
      }
      std::fflush(metrics);
    }
    // Old module versions are no longer read by anyone once every module is two steps past
    // them (version 0, the initial weights, stays): bounded disk however long the run.
    for (uint64_t k = completed_steps > 1 ? completed_steps - 1 : 1; k + 1 < version; ++k) {
      for (int id = 0; id < grid.num_modules(); ++id) {
        std::error_code ignored;
        std::filesystem::remove(layout.module_version(static_cast<uint32_t>(id), k), ignored);
        std::filesystem::remove(layout.outer_state(static_cast<uint32_t>(id), k), ignored);
        std::filesystem::remove(layout.module_delta(static_cast<uint32_t>(id), k), ignored);
      }
    }
    completed_steps = version;
    const bool done = version >= grid.outer_steps;
    if (version > evaluated &&
        (done || (grid.eval_every > 0 && version % static_cast<uint64_t>(grid.eval_every) == 0))) {
      auto r = evaluator.evaluate(version, &losses);
      if (!r.is_ok()) {
        driver_error = r.status();
        break;
      }
      routed = *r;
      evaluated = version;
      std::string line = "eval after outer step " + std::to_string(version) + " |";
      std::vector<MetricPoint> points;
      for (size_t p = 0; p < losses.size(); ++p) {
        if (std::isnan(losses[p])) continue;
        line += " p" + std::to_string(p) + " " + format_double("%.4f", losses[p]);
        points.push_back({run_id, static_cast<uint32_t>(p), version, 0, "val_loss", losses[p], 0});
        if (metrics != nullptr)
          std::fprintf(metrics, "{\"outer_step\": %llu, \"path\": %zu, \"val_loss\": %.6f}\n",
                       static_cast<unsigned long long>(version), p, losses[p]);
      }
      if (routed.tokens > 0) {
        points.push_back({run_id, 0, version, 0, "routed_val_loss", routed.mean(), 0});
        line += " | routed " + format_double("%.4f", routed.mean()) + " (ppl " +
                format_double("%.2f", std::exp(routed.mean())) + ")";
        if (metrics != nullptr)
          std::fprintf(metrics, "{\"outer_step\": %llu, \"routed_val_loss\": %.6f}\n",
                       static_cast<unsigned long long>(version), routed.mean());
      }
      if (metrics != nullptr) std::fflush(metrics);
      (void)coordinator->report_metrics(points);
      std::lock_guard<std::mutex> lock(shared.mutex);
      std::fprintf(out, "%s\n", line.c_str());
      std::fflush(out);
    }
    if (done && st->state == "finished") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  shared.finished.store(true);
  for (std::thread& t : pool) t.join();
  if (shared.failed.load()) return shared.error;
  DIPACO_RETURN_IF_ERROR(driver_error);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (result.interrupted) {
    std::fprintf(out,
                 "interrupted after outer step %llu of %llu: rerun the same command to resume\n",
                 static_cast<unsigned long long>(completed_steps),
                 static_cast<unsigned long long>(grid.outer_steps));
    return result;
  }

  // A run this process saw whole counts its traffic as measured; a resumed one misses the tasks
  // of the earlier process and reports the estimate.
  MeasuredTraffic measured;
  for (const auto& [step, t] : shared.traffic) {
    measured.up += t.up;
    measured.down += t.down;
  }
  DIPACO_ASSIGN_OR_RETURN(
      LocalRunResult final_result,
      write_run_results(grid, layout, plan, evaluator, shared.last_train_loss, out, result.seconds,
                        planned.resumed ? nullptr : &measured));
  return final_result;
}

}  // namespace dipaco
