// FakeTaskRunner: a TaskRunner that trains nothing. It sleeps `step_ms` per inner step
// (reporting progress, honouring cancel) and returns deterministic outer gradients of the right
// sizes: value i of module m is a fixed function of (path, shard, outer step, m, i), so two runs
// of the same task push identical bytes. For tests and the load benchmark.
//
// FakeRunnerFaults make it misbehave the ways a real trainer does, for the worker's tests: fail
// (a broken GPU, a corrupt shard) or hang (a stuck CUDA call) without reporting progress.
#pragma once

#include <atomic>

#include "task_runner.h"

namespace dipaco {

struct FakeRunnerFaults {
  uint64_t fail_tasks = 0;  // the first this many run() calls fail at once
  bool hang = false;        // every run() reports no progress and waits until cancelled
};

class FakeTaskRunner : public TaskRunner {
 public:
  explicit FakeTaskRunner(int64_t step_ms = 0, FakeRunnerFaults faults = {})
      : step_ms_(step_ms), fail_left_(faults.fail_tasks), hang_(faults.hang) {}
  // Safe to call from several workers' threads at once.
  Result<TaskResult> run(const TaskAssignment& task, TaskProgress& progress,
                         const std::atomic<bool>& cancel) override;

  // How many times run() was called (tests count leases the worker worked on with it).
  uint64_t runs() const { return runs_.load(); }

  // The gradient run() returns for one module (exposed for tests).
  static std::vector<float> fake_gradient(const TaskAssignment& task,
                                          const TaskAssignment::Module& module);

 private:
  int64_t step_ms_;
  std::atomic<uint64_t> fail_left_;
  bool hang_;
  std::atomic<uint64_t> runs_{0};
};

}  // namespace dipaco
