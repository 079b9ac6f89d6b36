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
#include "run/module_files.h"
#include "run/path_task.h"
#include "run/round_traffic.h"
#include "run/run_layout.h"
#include "run/run_plan.h"
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

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Shared between the driver and the worker threads.
struct RunShared {
  const GridSpec& grid;
  RunLayout layout;
  Coordinator* coordinator;
  int64_t run_id;
  int threads_per_worker;
  FILE* out;
  const std::atomic<bool>* stop;
  std::atomic<bool> finished{false};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards error, last_train_loss, output lines
  Status error;
  std::map<uint32_t, double> last_train_loss;

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
  CpuBackend backend(shared->threads_per_worker);
  auto trainer = PathTrainer::create(&backend, grid.model, grid.inner);
  if (!trainer.is_ok()) return shared->fail(trainer.status().with_context(worker_id));
  ParamLayout layout(grid.model);
  auto reg =
      c.register_worker({worker_id, hostname(), "cpu (" + backend.name() + ")", DIPACO_VERSION});
  if (!reg.is_ok()) return shared->fail(reg.status());

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
    for (const ModuleRef& ref : task.modules) {
      TaskModule m;
      m.module_id = ref.module_id;
      m.range = grid.module_range(layout, static_cast<int>(ref.module_id));
      m.dtype = module_wire_dtype(grid, static_cast<int>(ref.module_id));
      m.error_feedback = grid.error_feedback;
      auto params = read_module_version(ref.checkpoint, ref.module_id, m.range.count, ref.sha256);
      if (!params.is_ok()) return shared->fail(params.status());
      m.params = std::move(params).value();
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
    double up = 0, down = 0;
    for (size_t i = 0; i < spec.modules.size(); ++i) {
      down += static_cast<double>(spec.modules[i].params.size() * sizeof(float));
      up += static_cast<double>(result->gradients[i].payload.size());
    }
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

// The whole model of a path at `version` (all its modules at that version).
Result<std::vector<float>> assemble_path(const GridSpec& grid, const RunLayout& layout,
                                         const ParamLayout& pl, int path, uint64_t version) {
  std::vector<float> params(pl.total());
  for (int id : grid.path_modules(path)) {
    ParamRange r = grid.module_range(pl, id);
    DIPACO_ASSIGN_OR_RETURN(
        std::vector<float> m,
        read_module_version(layout.module_version(static_cast<uint32_t>(id), version),
                            static_cast<uint32_t>(id), r.count));
    std::copy(m.begin(), m.end(), params.begin() + static_cast<std::ptrdiff_t>(r.offset));
  }
  return params;
}

struct Evaluator {
  const GridSpec& grid;
  const RunLayout& layout;
  ParamLayout pl;
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<Model> model;
  std::vector<std::unique_ptr<TokenFile>> val;  // per path; null without validation documents
  std::vector<double> best;                     // per path
  std::vector<EvalSum> best_sum;                // per path: the kept model's validation sums
  std::vector<uint64_t> best_step;

  Evaluator(const GridSpec& g, const RunLayout& l) : grid(g), layout(l), pl(g.model) {}

  Status init(int threads) {
    backend = std::make_unique<CpuBackend>(threads);
    DIPACO_ASSIGN_OR_RETURN(model, Model::create(backend.get(), grid.model, 8, grid.inner.seq_len));
    for (int p = 0; p < grid.num_paths(); ++p) {
      const std::string file = layout.val_shard(static_cast<uint32_t>(p));
      if (!std::filesystem::exists(file)) {
        val.push_back(nullptr);
        continue;
      }
      DIPACO_ASSIGN_OR_RETURN(TokenFile f, TokenFile::open(file));
      val.push_back(std::make_unique<TokenFile>(std::move(f)));
    }
    best.assign(val.size(), NAN);
    best_sum.assign(val.size(), EvalSum{});
    best_step.assign(val.size(), 0);
    // A resumed run continues from the models it kept (and their validation results).
    for (size_t p = 0; p < val.size(); ++p) {
      const std::string file = layout.path_model(static_cast<uint32_t>(p));
      if (!std::filesystem::exists(file)) continue;
      auto meta = read_safetensors_metadata(file);
      if (!meta.is_ok() || !meta->count("val_tokens")) continue;
      best_sum[p].loss_sum = std::strtod(meta->at("val_loss_sum").c_str(), nullptr);
      best_sum[p].tokens = std::strtoull(meta->at("val_tokens").c_str(), nullptr, 10);
      best_step[p] = std::strtoull(meta->at("outer_step").c_str(), nullptr, 10);
      if (val[p] && best_sum[p].tokens > 0) best[p] = best_sum[p].mean();
    }
    return Status::ok();
  }

  // Evaluates every path at `version`; keeps each path's best model (or the latest).
  Result<EvalSum> evaluate(uint64_t version, std::vector<double>* losses) {
    EvalSum routed;
    losses->assign(val.size(), NAN);
    const auto max_tokens = static_cast<uint64_t>(grid.eval_max_tokens);
    for (size_t p = 0; p < val.size(); ++p) {
      DIPACO_ASSIGN_OR_RETURN(std::vector<float> params,
                              assemble_path(grid, layout, pl, static_cast<int>(p), version));
      bool keep = !grid.keep_best || !val[p];
      if (val[p]) {
        model->set_params(params);
        EvalSum s = evaluate_documents(*model, *val[p], max_tokens);
        routed += s;
        (*losses)[p] = s.mean();
        if (std::isnan(best[p]) || s.mean() < best[p] || !grid.keep_best) {
          best[p] = s.mean();
          best_sum[p] = s;
          best_step[p] = version;
          keep = true;
        }
      }
      if (keep) {
        if (!val[p]) best_step[p] = version;
        std::map<std::string, std::string> kept = {
            {"outer_step", std::to_string(best_step[p])},
            {"val_loss_sum", fmt("%.17g", best_sum[p].loss_sum)},
            {"val_tokens", std::to_string(best_sum[p].tokens)}};
        DIPACO_RETURN_IF_ERROR(write_path_model(layout.path_model(static_cast<uint32_t>(p)),
                                                grid.model, static_cast<uint32_t>(p), params,
                                                kept));
      }
    }
    return routed;
  }
};

}  // namespace

Result<LocalRunResult> run_local(const GridSpec& input, const LocalRunOptions& options) {
  FILE* out = options.out;
  auto started = std::chrono::steady_clock::now();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = input.threads > 0 ? input.threads : cores;
  DIPACO_ASSIGN_OR_RETURN(PlannedRun planned, plan_grid_run(input, threads, out));
  const GridSpec& grid = planned.grid;
  const RunLayout& layout = planned.layout;
  const ShardPlan& plan = planned.shards;
  const RunSpec& spec = planned.spec;
  const int workers = grid.workers;
  const int per_worker = std::max(1, threads / workers);
  ParamLayout pl(grid.model);
  const int P = grid.num_paths();
  CoordinatorOptions copts;
  copts.db_path = layout.database();
  copts.payload_dir = layout.payload_dir();
  copts.restart = RestartPolicy::kExpireLeases;  // the workers of a previous process are gone
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator, Coordinator::open(copts));
  if (options.on_event) coordinator->set_event_sink(options.on_event);
  DIPACO_ASSIGN_OR_RETURN(int64_t run_id, coordinator->create_run(spec));
  if (options.on_started) options.on_started(coordinator.get(), run_id);

  Evaluator evaluator(grid, layout);
  DIPACO_RETURN_IF_ERROR(evaluator.init(1));
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
  RunShared shared{grid, layout, coordinator.get(), run_id, per_worker, out, options.stop};
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
      const RoundTraffic t = round_traffic(grid, pl);
      for (uint64_t k = completed_steps + 1; k <= version; ++k) {
        std::fprintf(metrics,
                     "{\"outer_step\": %llu, \"bytes_up\": %llu, \"bytes_down\": %llu, "
                     "\"bytes_path_local\": %llu, \"data_parallel_bytes\": %llu}\n",
                     static_cast<unsigned long long>(k), static_cast<unsigned long long>(t.up),
                     static_cast<unsigned long long>(t.down),
                     static_cast<unsigned long long>(t.path_local),
                     static_cast<unsigned long long>(t.data_parallel));
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
        line += " p" + std::to_string(p) + " " + fmt("%.4f", losses[p]);
        points.push_back({run_id, static_cast<uint32_t>(p), version, 0, "val_loss", losses[p], 0});
        if (metrics != nullptr)
          std::fprintf(metrics, "{\"outer_step\": %llu, \"path\": %zu, \"val_loss\": %.6f}\n",
                       static_cast<unsigned long long>(version), p, losses[p]);
      }
      if (routed.tokens > 0) {
        points.push_back({run_id, 0, version, 0, "routed_val_loss", routed.mean(), 0});
        line += " | routed " + fmt("%.4f", routed.mean()) + " (ppl " +
                fmt("%.2f", std::exp(routed.mean())) + ")";
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

  // Results: paths, traffic (of the completed tasks; derived from the grid, so a resumed run
  // reports the whole run), run.json, summary.md.
  result.outer_steps = grid.outer_steps;
  // The routed loss of the models the run keeps (each path's best version with keep_best):
  // what an export of paths/ scores on the same validation documents.
  EvalSum kept;
  for (const EvalSum& s : evaluator.best_sum) kept += s;
  result.routed_val_loss = kept.mean();
  result.routed_val_tokens = kept.tokens;
  const RoundTraffic per_round = round_traffic(grid, pl);
  result.bytes_up = per_round.up * grid.outer_steps;
  result.bytes_down = per_round.down * grid.outer_steps;
  result.bytes_path_local = per_round.path_local * grid.outer_steps;
  result.data_parallel_bytes = per_round.data_parallel * grid.outer_steps;
  result.tokens = per_round.tokens * grid.outer_steps;
  for (int p = 0; p < P; ++p) {
    PathResult r;
    r.path_id = static_cast<uint32_t>(p);
    r.modules = grid.path_modules(p);
    for (int s = 0; s < grid.shards_per_path; ++s) {
      r.shard_documents += plan.shard_documents[static_cast<size_t>(p * grid.shards_per_path + s)];
      r.shard_tokens += plan.shard_tokens[static_cast<size_t>(p * grid.shards_per_path + s)];
    }
    r.val_tokens = plan.val_tokens[static_cast<size_t>(p)];
    r.val_loss = evaluator.best[static_cast<size_t>(p)];
    r.val_outer_step = evaluator.best_step[static_cast<size_t>(p)];
    r.train_loss =
        shared.last_train_loss.count(r.path_id) ? shared.last_train_loss[r.path_id] : NAN;
    result.paths.push_back(std::move(r));
  }

  std::ostringstream j;
  auto num = [](double v) { return std::isnan(v) ? std::string("null") : fmt("%.6f", v); };
  j << "{\n  \"format\": \"dipaco-run/1\",\n  \"name\": " << json_quote(grid.name)
    << ",\n  \"model\": " << json_quote(grid.model.to_string())
    << ",\n  \"tokenizer\": " << json_quote(grid.tokenizer)
    << ",\n  \"data\": {\"train\": " << json_quote(grid.train_tokens)
    << ", \"val\": " << json_quote(grid.val_tokens)
    << "},\n  \"grid\": \"grid.toml\",\n  \"outer_steps\": " << grid.outer_steps
    << ",\n  \"routed_val_loss\": " << num(result.routed_val_loss) << ",\n  \"paths\": [";
  for (size_t p = 0; p < result.paths.size(); ++p) {
    const PathResult& r = result.paths[p];
    j << (p ? "," : "") << "\n    {\"id\": " << r.path_id << ", \"modules\": [";
    for (size_t i = 0; i < r.modules.size(); ++i) j << (i ? ", " : "") << r.modules[i];
    j << "], \"shard_documents\": " << r.shard_documents << ", \"shard_tokens\": " << r.shard_tokens
      << ", \"val_tokens\": " << r.val_tokens << ", \"val_loss\": " << num(r.val_loss)
      << ", \"val_outer_step\": " << r.val_outer_step << ", \"checkpoint\": \"paths/path-"
      << r.path_id << ".safetensors\"}";
  }
  const bool have_router = std::filesystem::exists(layout.router());
  j << "\n  ],\n  \"router\": {\"kind\": "
    << json_quote(have_router ? routing_method_name(grid.routing.method) : "none")
    << ", \"file\": " << (have_router ? "\"router.safetensors\"" : "null")
    << ", \"base_checkpoint\": " << (plan.have_base ? "\"base.safetensors\"" : "null")
    << ", \"prefix_tokens\": " << grid.routing.prefix_tokens
    << ", \"reroute_every\": " << grid.routing.reroute_every
    << "},\n  \"traffic\": {\"bytes_up\": " << result.bytes_up
    << ", \"bytes_down\": " << result.bytes_down
    << ", \"bytes_path_local\": " << result.bytes_path_local
    << ", \"data_parallel_bytes\": " << result.data_parallel_bytes
    << "},\n  \"tokens\": " << result.tokens << ",\n  \"dipaco_version\": \"" << DIPACO_VERSION
    << "\"\n}\n";
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.run_json(), j.str()));

  std::ostringstream md;
  md << "# " << grid.name << "\n\n| path | modules | shard docs | shard tokens | val tokens | "
     << "val loss | val ppl | best at outer step |\n|---|---|---|---|---|---|---|---|\n";
  for (const PathResult& r : result.paths) {
    std::string mods;
    for (int m : r.modules) mods += (mods.empty() ? "" : ",") + std::to_string(m);
    md << "| " << r.path_id << " | " << mods << " | " << r.shard_documents << " | "
       << r.shard_tokens << " | " << r.val_tokens << " | "
       << (std::isnan(r.val_loss) ? "-" : fmt("%.4f", r.val_loss)) << " | "
       << (std::isnan(r.val_loss) ? "-" : fmt("%.2f", std::exp(r.val_loss))) << " | "
       << r.val_outer_step << " |\n";
  }
  const uint64_t wire = result.bytes_up + result.bytes_down;
  md << "\nrouted validation loss " << fmt("%.4f", result.routed_val_loss) << " (perplexity "
     << fmt("%.2f", std::exp(result.routed_val_loss)) << ") over " << result.routed_val_tokens
     << " tokens\n\ntraffic: " << human_bytes(static_cast<double>(result.bytes_up)) << " up, "
     << human_bytes(static_cast<double>(result.bytes_down)) << " down; data parallel for the same "
     << result.tokens << " tokens: " << human_bytes(static_cast<double>(result.data_parallel_bytes))
     << " (" << fmt("%.0f", wire ? static_cast<double>(result.data_parallel_bytes) / wire : 0.0)
     << "x more)\n";
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.summary(), md.str()));
  std::fprintf(out, "\n%s\nwrote %s, %s and paths/ in %s (%.0f s)\n", md.str().c_str(),
               layout.summary().c_str(), layout.run_json().c_str(), grid.dir.c_str(),
               result.seconds);
  return result;
}

}  // namespace dipaco
