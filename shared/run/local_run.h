// `dipaco run GRID.toml` on one machine: an embedded coordinator (SQLite in the run
// directory) and local worker threads that lease tasks, train paths and push compressed outer
// gradients exactly as remote workers would (same Coordinator calls, same payloads), while the
// main thread aggregates modules, evaluates and logs.
//
// Stages: resolve the vocabulary from the data → routing into shards (shard_routing.h) →
// version 0 of every module (warm start from the base model, or random init) → the run in the
// coordinator → workers + aggregation until every outer step is done → final models of the
// paths (paths/), run.json (the export contract), summary.md.
//
// Crash safety: everything lives in the run directory. Rerunning the same grid resumes: the
// shards are reused, the coordinator reopens its database (leases of the dead process are
// expired and requeued), module versions, outer-optimizer states and each (path, shard)'s inner
// state are files written atomically. A different grid in the same directory is refused (the
// error names the keys that differ). One process at a time: run_local holds an flock() on
// <run.dir>/.lock while it runs (run_dir_lock.h); a second owner of the directory (another
// `dipaco run`, the studio, `dipaco serve` planning or serving it) fails at once, naming the
// holder and its pid, before it writes anything.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "algo/grid_spec.h"
#include "backend/backend_factory.h"
#include "coordinator/run_event.h"
#include "util/status.h"

namespace dipaco {

struct LocalRunOptions {
  FILE* out = stdout;
  // What each local worker trains on: "auto" takes the GPUs when this host has usable ones
  // (spread over the workers, local_worker_choice), else the CPU; cpu_threads is set per worker
  // from run.threads; cpu_replicas > 1 makes each worker on the CPU an island of that many
  // replicas. The run's own compute (base model, routing features, document scores, validation)
  // runs on worker 0's GPU when the workers train on GPUs, else on the CPU: run_compute_backend.h.
  BackendChoice backend;
  // GPUs per local worker: more than 1 makes each worker an island of that many GPUs (NCCL,
  // data parallel inside its path), e.g. 1 worker x 8 GPUs trains one path on a whole node.
  int gpus_per_worker = 1;
  // Set by a signal handler: workers abandon their tasks, the run stops; rerun to resume.
  const std::atomic<bool>* stop = nullptr;
  // Every coordinator event and metric (leases, versions, train_loss, val_loss,
  // routed_val_loss, tokens_per_second, bytes_up, bytes_down), called on the thread that caused
  // it, after its transaction committed; must not block for long nor call the coordinator.
  std::function<void(const RunEvent&)> on_event;
  // Called once the run exists, with the coordinator (thread-safe) for operator actions:
  // pause, resume, set_inner_steps, preempt, drain. The pointer dies when run_local returns.
  std::function<void(class Coordinator*, int64_t run_id)> on_started;
};

struct PathResult {
  uint32_t path_id = 0;
  std::vector<int> modules;
  uint64_t shard_documents = 0, shard_tokens = 0;
  uint64_t val_tokens = 0;
  double val_loss = 0;          // of the kept model (NaN without validation data)
  uint64_t val_outer_step = 0;  // version the kept model comes from
  double train_loss = 0;        // mean over the last task's inner steps
};

struct LocalRunResult {
  std::vector<PathResult> paths;
  double routed_val_loss = 0;  // every validation token scored by its routed path (kept models)
  uint64_t routed_val_tokens = 0;
  uint64_t outer_steps = 0;
  uint64_t bytes_up = 0;             // outer gradients, as encoded
  uint64_t bytes_down = 0;           // module versions fetched by tasks (fp32)
  uint64_t bytes_path_local = 0;     // path-specific modules (both ways; stay on a worker)
  uint64_t data_parallel_bytes = 0;  // fp32 gradient exchange of data parallel, same tokens
  uint64_t tokens = 0;               // training tokens of all tasks
  double seconds = 0;
  bool interrupted = false;
};

// Whether `workers` local workers can run on `choice` on this host (cuda: probe_cuda()), which
// run_local checks before it writes or trains anything: GPUs per worker that fit
// (check_local_islands), and a "cuda" choice with a usable GPU (compute capability 8.0 or
// newer), naming one this host has. The error says what to change; invalid_argument for a
// choice that cannot work on any host like this one, unavailable for a missing GPU.
Status check_local_run_gpus(const BackendChoice& choice, int workers, int gpus_per_worker,
                            const CudaRuntimeInfo& cuda);

Result<LocalRunResult> run_local(const GridSpec& grid, const LocalRunOptions& options);

}  // namespace dipaco
