#include "fake_task_runner.h"

#include <chrono>
#include <cmath>
#include <thread>

namespace dipaco {

std::vector<float> FakeTaskRunner::fake_gradient(const TaskAssignment& task,
                                                 const TaskAssignment::Module& module) {
  std::vector<float> values(module.num_params);
  uint64_t seed = (uint64_t{task.path_id} * 1000003u) ^ (uint64_t{task.shard_id} * 7919u) ^
                  (task.outer_step * 104729u) ^ (uint64_t{module.module_id} * 31u);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = 0.01f * std::sin(static_cast<float>((seed + i) % 100000) * 0.001f);
  return values;
}

Result<TaskResult> FakeTaskRunner::run(const TaskAssignment& task, TaskProgress& progress,
                                       const std::atomic<bool>& cancel) {
  runs_.fetch_add(1);
  uint64_t fail_left = fail_left_.load();
  while (fail_left > 0 && !fail_left_.compare_exchange_weak(fail_left, fail_left - 1)) {
  }
  if (fail_left > 0) {
    return internal_error("fake runner: failing as asked (" + std::to_string(fail_left - 1) +
                          " more failures to go)");
  }
  if (hang_) {
    while (!cancel) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return unavailable("fake runner: cancelled while hanging");
  }
  for (uint32_t step = 0; step < task.inner_steps; ++step) {
    if (cancel) return unavailable("cancelled at inner step " + std::to_string(step));
    if (step_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_ms_));
    progress.inner_step = step + 1;
  }
  TaskResult result;
  for (const TaskAssignment::Module& module : task.modules)
    result.gradients.push_back({module.module_id, fake_gradient(task, module), {}});
  result.metrics.push_back({"train_loss", task.inner_steps, 1.0 / (1.0 + task.outer_step)});
  return result;
}

}  // namespace dipaco
