// TaskRunner: what a worker does with a leased task once its inputs are local. The worker
// client (worker_client.h) owns the protocol (lease, fetch, heartbeat, push); a TaskRunner owns
// the training. The real one (the DiPaCo path trainer) is plugged in by the trainer layer;
// FakeTaskRunner (fake_task_runner.h) serves tests and the load benchmark.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "compress/wire_dtype.h"
#include "rpc/task_config.h"
#include "util/status.h"

namespace dipaco {

// The leased task with its inputs already in the worker's cache.
struct TaskAssignment {
  struct Module {
    uint32_t module_id = 0;
    uint64_t version = 0;
    uint64_t num_params = 0;
    uint64_t param_offset = 0;    // in the path's flat parameter vector
    std::string checkpoint_file;  // local copy of this version (hash verified)
    // How its outer gradient travels: ModuleRef.gradient_dtype, or the task's gradient_dtype
    // from a coordinator that predates it (fp32 for a path-specific module).
    WireDtype gradient_dtype = WireDtype::kInt8;
    // ModuleRef.push_params: the runner returns the trained parameters (in gradient_dtype, fp32)
    // instead of the outer gradient; a path-specific module.
    bool push_params = false;
  };
  std::string lease_id;
  std::string run_id;
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint64_t outer_step = 0;
  uint32_t inner_steps = 0;  // H
  uint32_t batch_size = 0;
  uint32_t seq_len = 0;
  InnerOptimizerConfig inner;
  WireDtype gradient_dtype = WireDtype::kInt8;
  uint64_t data_seed = 0;
  std::string model_config_toml;
  std::string run_config;
  std::vector<Module> modules;  // the path's modules in level order
  std::string shard_file;       // local copy of the shard's token file (hash verified)
  int64_t deadline_unix_ms = 0;
};

// One module's outer gradient (version's parameters minus the trained ones, as the outer
// optimizer expects). Either `values` (the client encodes them in the module's gradient_dtype)
// or `encoded` (already encoded by the runner, e.g. with error feedback; must have
// encoded_size(module's gradient_dtype, num_params) bytes).
struct ModuleGradient {
  uint32_t module_id = 0;
  std::vector<float> values;
  std::string encoded;
};

struct TaskMetric {
  std::string name;  // "train_loss", "tokens_per_second"
  uint64_t inner_step = 0;
  double value = 0.0;
};

struct TaskResult {
  std::vector<ModuleGradient> gradients;  // one per module of the path
  std::vector<TaskMetric> metrics;        // reported after the push
};

// Live progress, read by the heartbeat thread and the worker's stall watchdog while run()
// works. The watchdog (WorkerClientOptions::stall_timeout_ms) cancels a run in which neither
// inner_step nor activity changed for that long, so a runner that does long work before its
// first inner step (building the trainer, loading state) bumps `activity` as it goes.
struct TaskProgress {
  std::atomic<uint64_t> inner_step{0};
  std::atomic<double> tokens_per_second{0.0};
  std::atomic<uint64_t> activity{0};

  void note_activity() { activity.fetch_add(1); }
};

class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  // Trains the path for task.inner_steps steps and returns its outer gradients. Must return
  // soon after `cancel` becomes true (the lease died or the worker is stopping); the result
  // is then discarded. Errors say what to fix; the lease is handed back and the worker waits
  // (backing off while failures repeat) before it leases again.
  virtual Result<TaskResult> run(const TaskAssignment& task, TaskProgress& progress,
                                 const std::atomic<bool>& cancel) = 0;
};

}  // namespace dipaco
