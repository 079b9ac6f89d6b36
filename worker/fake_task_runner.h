// FakeTaskRunner: a TaskRunner that trains nothing. It sleeps `step_ms` per inner step
// (reporting progress, honouring cancel) and returns deterministic outer gradients of the right
// sizes: value i of module m is a fixed function of (path, shard, outer step, m, i), so two runs
// of the same task push identical bytes. For tests and the load benchmark.
#pragma once

#include "task_runner.h"

namespace dipaco {

class FakeTaskRunner : public TaskRunner {
 public:
  explicit FakeTaskRunner(int64_t step_ms = 0) : step_ms_(step_ms) {}
  Result<TaskResult> run(const TaskAssignment& task, TaskProgress& progress,
                         const std::atomic<bool>& cancel) override;

  // The gradient run() returns for one module (exposed for tests).
  static std::vector<float> fake_gradient(const TaskAssignment& task,
                                          const TaskAssignment::Module& module);

 private:
  int64_t step_ms_;
};

}  // namespace dipaco
