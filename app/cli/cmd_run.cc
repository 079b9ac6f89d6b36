// dipaco run GRID.toml: a DiPaCo/DiLoCo run on this machine — embedded coordinator (SQLite in
// the run directory) and local worker threads. See shared/run/local_run.h.
#include <atomic>
#include <csignal>
#include <cstdio>

#include "algo/grid_spec.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "model/param_layout.h"
#include "run/local_run.h"
#include "run/run_plan.h"
#include "util/arg_parser.h"

namespace dipaco::cli {

namespace {

// `vocab_known`: model.vocab_size holds the data's vocabulary (resolve_grid_vocabulary).
void print_grid(const GridSpec& grid, bool vocab_known) {
  const bool vocab_guessed = grid.vocab_from_data && !vocab_known;
  ModelConfig model = grid.model;
  if (vocab_guessed) model.vocab_size = 8192;
  ParamLayout layout(model);
  std::printf("grid %s: %zu levels, %d modules, %d paths, %d shards per path\n", grid.name.c_str(),
              grid.levels.size(), grid.num_modules(), grid.num_paths(), grid.shards_per_path);
  for (int id = 0; id < grid.num_modules(); ++id) {
    ParamRange r = grid.module_range(layout, id);
    std::printf("  module %d: level %d index %d, %zu parameters, used by %d paths\n", id,
                grid.module_level(id), grid.module_index(id), r.count, grid.paths_using(id));
  }
  std::printf("path: %zu parameters%s\n", layout.total(),
              vocab_guessed ? " (with an 8192-token vocabulary; the data decides)" : "");
}
}  // namespace

int cmd_run(const Args& args) {
  ArgParser parser("dipaco run",
                   "Train a DiPaCo or DiLoCo grid on this machine: an embedded coordinator "
                   "(SQLite in run.dir) and local workers. Rerunning the same grid resumes.");
  std::string grid_path, dir;
  int64_t outer_steps = 0, inner_steps = 0, workers = 0, threads = 0, gpus_per_worker = 1;
  bool check = false;
  parser.add_positional("GRID", "grid file (TOML; see resources/runs/*.toml)", &grid_path);
  parser.add_option("--dir", "DIR", "override run.dir", &dir);
  parser.add_option("--outer-steps", "N",
                    "override run.outer_steps (a rerun resumes only with the value the run "
                    "started with: it sets the inner learning-rate schedule)",
                    &outer_steps, 1, int64_t{1} << 30);
  parser.add_option("--inner-steps", "H",
                    "override run.inner_steps (likewise fixed for a resumed run; --workers and "
                    "--threads may change)",
                    &inner_steps, 1, int64_t{1} << 30);
  parser.add_option("--workers", "N", "override run.workers", &workers, 1, 256);
  parser.add_option("--threads", "N", "override run.threads", &threads, 1, 1024);
  std::string backend = "auto";
  parser.add_option("--backend", "NAME",
                    "what the local workers train on: auto (a GPU when present), cpu, cuda, "
                    "cuda:N; on a GPU, the run's base model, routing features and evaluations "
                    "run on worker 0's GPU too (the CPU, with the reason, when they do not fit)",
                    &backend);
  parser.add_option("--gpus-per-worker", "N",
                    "train each local worker's path on N GPUs at once (an NCCL island, data "
                    "parallel inside the path); workers x N GPUs must exist",
                    &gpus_per_worker, 1, 64);
  parser.add_flag("--check",
                  "validate the grid, the backend and GPUs and the token files, and print its "
                  "modules and paths; train nothing",
                  &check);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco run: %s\n\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  auto grid = load_grid_spec(grid_path);
  if (!grid.is_ok()) {
    std::fprintf(stderr, "dipaco run: %s\n", grid.status().message().c_str());
    return grid.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  if (!dir.empty()) grid->dir = dir;
  if (outer_steps > 0) grid->outer_steps = static_cast<uint64_t>(outer_steps);
  if (inner_steps > 0) grid->inner_steps = static_cast<uint32_t>(inner_steps);
  if (workers > 0) grid->workers = static_cast<int>(workers);
  if (threads > 0) grid->threads = static_cast<int>(threads);
  grid->inner.steps = static_cast<int64_t>(grid->outer_steps) * grid->inner_steps;
  if (Status s = grid->validate(); !s) {
    std::fprintf(stderr, "dipaco run: %s: %s\n", grid_path.c_str(), s.message().c_str());
    return kExitUsage;
  }
  LocalRunOptions options;
  if (Status s = parse_backend_name(backend, &options.backend); !s) {
    std::fprintf(stderr, "dipaco run: --backend: %s\n", s.message().c_str());
    return kExitUsage;
  }
  options.gpus_per_worker = static_cast<int>(gpus_per_worker);
  auto cpu_replicas = cpu_island_replicas_from_environment();
  if (!cpu_replicas.is_ok()) {
    std::fprintf(stderr, "dipaco run: %s\n", cpu_replicas.status().message().c_str());
    return kExitUsage;
  }
  options.backend.cpu_replicas = *cpu_replicas;
  const CudaRuntimeInfo cuda =
      options.backend.kind == BackendChoice::Kind::kCpu ? CudaRuntimeInfo{} : probe_cuda();
  if (Status s =
          check_local_run_gpus(options.backend, grid->workers, options.gpus_per_worker, cuda);
      !s) {
    std::fprintf(stderr, "dipaco run: %s\n", s.message().c_str());
    return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  if (check) {
    // What the run would refuse at once is refused here too: the backend and GPUs above, the
    // token files (they exist, and their vocabulary fits) here.
    auto resolved = resolve_grid_vocabulary(*grid);
    print_grid(resolved.is_ok() ? *resolved : *grid, resolved.is_ok());
    if (!resolved.is_ok()) {
      std::fprintf(stderr, "dipaco run: %s\n", resolved.status().message().c_str());
      return resolved.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    }
    return kExitOk;
  }
  // Ctrl-C / SIGTERM: stop the workers, keep every finished outer step; a second Ctrl-C kills.
  options.stop = install_stop_signals();
  auto result = run_local(*grid, options);
  if (!result.is_ok()) {
    std::fprintf(stderr, "dipaco run: %s\n", result.status().message().c_str());
    return kExitFailure;
  }
  return result->interrupted ? 128 + SIGINT : kExitOk;
}

}  // namespace dipaco::cli
