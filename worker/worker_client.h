// WorkerClient: the worker's side of the dipaco.v1 protocol (`dipaco-worker`, `dipaco work`,
// the rpc tests and the load benchmark).
//
// Loop: register -> lease -> fetch the path's module versions and the shard into the cache dir
// -> run the TaskRunner while a heartbeat thread keeps the lease alive -> encode and push the
// outer gradients in chunks -> report metrics -> lease again.
//   - Cache: modules at <cache>/modules/run-R.module-M.v-V, shards at <cache>/shards/run-R.shard-S;
//     a download goes to "<file>.part" and resumes from its size after a broken stream; the
//     whole file's sha256 is checked (against the task's ModuleRef.sha256 for modules) before
//     the rename, and a cached module is re-verified once per process.
//   - Push: chunks of at most push_chunk_bytes, numbered 0, 1, 2, ... across the task's modules,
//     on one stream whose deadline is rpc_timeout_ms + its bytes / push_min_bytes_per_second. A
//     broken stream is retried with the same numbers, sending only the chunks the coordinator
//     does not hold (PushProgress; all of them to a coordinator without it), with backoff, until
//     the task completes, the lease is refused or lost, or the lease's deadline (from the lease,
//     moved on by each heartbeat) has passed: a coordinator restart shorter than the lease
//     timeout loses no finished task.
//   - Cache cleanup: after a completed task, cached versions of its modules older than the ones
//     it used are deleted (a delta chain starts from the newest cached version and a later task
//     never needs an older one), so the cache holds about one version per module of each run.
//     The cache dir must be this worker's alone. Shards, runner state (<cache>/state/run-R) and
//     the modules of runs that ended are kept: the worker does not learn that a run ended.
//   - Errors: UNAVAILABLE / DEADLINE_EXCEEDED / network errors retry with exponential backoff and
//     full jitter (backoff_initial_ms doubling up to backoff_max_ms); NOT_FOUND on a worker RPC
//     means the coordinator forgot the session: register again.
//   - Refused token: UNAUTHENTICATED or PERMISSION_DENIED (a token rotated on the coordinator
//     before it reached this worker, or the other way round) never ends run(). It is logged as
//     an ERROR, the token is read again (reread_token) and the call retried after a long
//     backoff (auth_backoff_initial_ms doubling up to auth_backoff_max_ms, with jitter), for as
//     long as it takes. A refused download drops the task (its heartbeats are refused too); a
//     refused push is retried until the lease's last known deadline, as for a stopping worker
//     and an unreachable coordinator, then the task is dropped.
//   - Failed task: a runner error or inputs that cannot be fetched hand the lease back, log a
//     WARNING (reason, failures in a row) and wait before the next lease: the same backoff
//     (backoff_initial_ms doubling up to backoff_max_ms, with jitter), reset by a completed
//     task. The worker goes on: a broken GPU or a corrupt shard must not make it lease and hand
//     back hundreds of tasks a second, nor end the service.
//   - Stall watchdog: while the runner runs, a TaskProgress whose inner_step and activity stay
//     unchanged for stall_timeout_ms stops the lease's heartbeats, cancels the runner, logs an
//     ERROR and hands the lease back at once (a failed task, as above). Fetching inputs and
//     pushing are not counted; every inner step starts the count again. 0 = no watchdog. A
//     runner that has not returned another stall_timeout_ms after the cancel is logged again:
//     the worker then holds no lease but is stuck in it until restarted.
//   - Lease loss: a heartbeat answering lease_valid = false cancels the runner; the result is
//     dropped.
//   - Stop: when `stop` becomes 1 the worker finishes its current task (push included) and
//     returns; at 2 it cancels the runner, hands the lease back (ReleaseLease) and returns.
//     An operator drain (heartbeat or lease reply) is treated like stop = 1.
//   - Drained at Register (the operator's drain lasts across restarts): the worker logs it once,
//     stays registered and asks for work at the coordinator's wait interval without taking any,
//     until `dipaco ctl undrain <id>`; then it works again. Only `stop` ends it.
//   - Worker id in use (ALREADY_EXISTS at Register: another process with the same id is still
//     heard from): logged as an ERROR (at most once a minute, INFO in between) and retried with
//     backoff, so that a restarted worker registers once its crashed predecessor has gone
//     silent. A clean return from run() (stop, drain, max_tasks) sends Unregister first, so
//     that the next process with the id registers at once.
//   - Replaced (FAILED_PRECONDITION on a heartbeat or lease: a newer process registered with
//     this id while this one was silent, e.g. paused): the task is dropped without a push or a
//     release and the worker registers again (refused while the newer one is present). Only `stop`
//     ends it. How long a stop at 1 may take is the caller's to bound (worker_service.h raises it
//     to 2 after stop_grace_s).
// Logs go to stderr (util/log.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dipaco/v1/coordinator.grpc.pb.h"
#include "rpc/channel.h"
#include "task_runner.h"
#include "worker_devices.h"

namespace dipaco {

struct WorkerClientOptions {
  ChannelOptions channel;
  std::string token;  // worker bearer token
  // Reads the token again after the coordinator refused it (the token file rotated in place);
  // may be empty (the token stays). Called from run()'s thread and the heartbeat thread.
  std::function<Result<std::string>()> reread_token;
  std::string worker_id;  // stable across restarts
  // This worker process, told apart from another process given the same worker_id (the
  // coordinator refuses the second while the first is present). Empty: process_instance_id().
  std::string instance_id;
  std::string host;
  // What the worker trains on, sent at Register (describe_worker_devices); empty = one "cpu".
  std::vector<WorkerDevice> devices;
  std::string version = DIPACO_VERSION;
  std::string cache_dir;  // must be writable; created if missing
  uint64_t push_chunk_bytes = 1 << 20;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
  // Waits after a refused token: a person has to act, so they start long.
  int64_t auth_backoff_initial_ms = 5000;
  int64_t auth_backoff_max_ms = 60000;
  int64_t rpc_timeout_ms = 30000;  // per unary call and download stream; push: see below
  // A push stream's deadline is rpc_timeout_ms plus its bytes at this rate (1 MiB/s: 1 GB in
  // ~17 min); a slower link still gets through, as each retry sends only what is missing.
  uint64_t push_min_bytes_per_second = 1 << 20;
  uint64_t max_tasks = 0;             // stop after this many completed tasks; 0 = no limit
  int64_t stall_timeout_ms = 600000;  // runner without progress this long: cancel; 0 = never
  // How often a LeaseTask names the runs with files in the cache, so that the coordinator can
  // say which are over and the worker deletes their files (the first lease always does). Each
  // such call costs the coordinator a lookup of its runs; 0 = every lease (tests).
  int64_t cached_runs_ask_interval_ms = 60000;
  // Called with the lease id when a task starts and with "" when it ends (from run()'s thread),
  // so that the service can name the lease it is waiting for. May be empty.
  std::function<void(const std::string& lease_id)> on_lease;
};

struct WorkerStats {
  uint64_t tasks_completed = 0;
  uint64_t tasks_lost = 0;    // lease died or was handed back before the push completed
  uint64_t tasks_failed = 0;  // of those lost: the runner or the inputs failed, or it stalled
  uint64_t bytes_down = 0;
  uint64_t bytes_up = 0;
  uint64_t push_chunks_sent = 0;     // outer-gradient chunks written to push streams
  uint64_t push_chunks_skipped = 0;  // not sent again on a retry: the coordinator held them
  uint64_t push_retries = 0;         // broken push attempts that were tried again
};

// Random 128-bit hex, the same for the life of this process (WorkerClientOptions::instance_id).
const std::string& process_instance_id();

class WorkerClient {
 public:
  WorkerClient(WorkerClientOptions options, TaskRunner& runner);
  ~WorkerClient();
  // Runs until `stop` (see above), max_tasks or a drain; errors only for a bad worker id or cache
  // dir, or a channel that cannot be made.
  Status run(const std::atomic<int>& stop);
  const WorkerStats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  WorkerStats stats_;
};

}  // namespace dipaco
