// The worker process: config -> WorkerClient with the configured TaskRunner, SIGTERM/SIGINT
// handling, exit code. Shared by `dipaco-worker --config` (the systemd service) and
// `dipaco work` (foreground).
//
// Signals: the first SIGTERM/SIGINT finishes the current task (push included) and exits 0; a
// second one cancels the task, hands the lease back and exits 0.
//
// Runners: [worker] runner = "fake" uses FakeTaskRunner (protocol tests, load runs). "train" is
// the DiPaCo path trainer, registered by the trainer layer with set_train_runner_factory();
// without it the worker refuses to start (exit 3) with a message saying so.
#pragma once

#include <functional>
#include <memory>

#include "task_runner.h"
#include "worker_config.h"

namespace dipaco {

using TaskRunnerFactory = std::function<Result<std::unique_ptr<TaskRunner>>(const WorkerConfig&)>;

// Installs the factory of the real trainer (call before run_worker_service).
void set_train_runner_factory(TaskRunnerFactory factory);

// Runs the worker until stopped; returns the process exit code (0 stopped or drained, 1 failed,
// 3 no trainer in this build). `program` prefixes messages.
int run_worker_service(const WorkerConfig& config, const char* program);

}  // namespace dipaco
