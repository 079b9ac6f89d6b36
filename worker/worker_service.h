// The worker process: config -> WorkerClient with the configured TaskRunner, signal handling,
// exit code. Shared by `dipaco-worker --config` (the systemd service) and `dipaco work`
// (foreground).
//
// Signals: the first SIGTERM/SIGINT lets the current task finish (push included), logging
// "stopping: finishing lease N (grace S s)", and exits 0; when the task has not finished
// [worker] stop_grace_s later (0 = at once), or at a second SIGTERM/SIGINT, the task is cancelled,
// its lease handed back, and the worker exits 0. stop_grace_s must stay below the orchestrator's
// stop timeout (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds, Slurm
// --signal=B:TERM@N), which SIGKILLs a worker before it could hand its lease back. With a config
// loader, SIGHUP re-reads the config: a file that does not load (syntax, unknown key, unreadable
// token or certificate) is logged and the running config is kept; otherwise the changes apply as
// worker_reload.h decides (log level now; connection settings and max_tasks when the worker
// next connects, after the task it is running; the rest is logged as needing a restart). A
// running task is never interrupted by a reload. Without a loader SIGHUP keeps its default
// action (the process ends, as a terminal's hangup should end `dipaco work`).
//
// Refused token: the coordinator answering UNAUTHENTICATED / PERMISSION_DENIED (a token rotated
// on one side first) does not end the worker: it logs an ERROR, reads token_file again (as a
// reload does) and retries after a wait from about 5 s up to backoff_max_ms or 60 s, whichever
// is longer (worker_client.h), until the token is accepted or the worker is stopped; a SIGHUP
// after fixing the token file connects again at once.
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

// Loads the config again for a SIGHUP reload: the file, plus any command-line overrides.
using WorkerConfigLoader = std::function<Result<WorkerConfig>()>;

// Installs the factory of the real trainer (call before run_worker_service).
void set_train_runner_factory(TaskRunnerFactory factory);

// Counts SIGHUPs for run_worker_service's reload instead of letting one end the process; a
// program that reloads calls it first thing, so that a SIGHUP during its start-up checks (which
// may take seconds) is handled once the service runs.
void install_reload_signal_handler();

// Runs the worker until stopped; returns the process exit code (0 stopped or drained, 1 failed,
// 2 config error: no coordinator address, unreadable token or certificate, 3 no trainer in this
// build). `program` prefixes messages. `reload` (may be empty) enables
// SIGHUP reloads.
int run_worker_service(const WorkerConfig& config, const char* program,
                       WorkerConfigLoader reload = nullptr);

}  // namespace dipaco
