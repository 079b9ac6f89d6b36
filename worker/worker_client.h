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
//   - Push: chunks of at most push_chunk_bytes, numbered 0, 1, 2, ... across the task's modules;
//     a broken stream is retried with the same numbers (the coordinator acknowledges accepted
//     ones without counting them again) until the task completes or the lease is refused.
//   - Errors: UNAVAILABLE / DEADLINE_EXCEEDED / network errors retry with exponential backoff and
//     full jitter (backoff_initial_ms doubling up to backoff_max_ms); NOT_FOUND on a worker RPC
//     means the coordinator forgot the session: register again. UNAUTHENTICATED and
//     PERMISSION_DENIED end run() with an error (fix the token).
//   - Lease loss: a heartbeat answering lease_valid = false cancels the runner; the result is
//     dropped.
//   - Stop: when `stop` becomes 1 the worker finishes its current task (push included) and
//     returns; at 2 it cancels the runner, hands the lease back (ReleaseLease) and returns.
//     An operator drain (heartbeat or lease reply) is treated like stop = 1.
// Logs go to stderr (util/log.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dipaco/v1/coordinator.grpc.pb.h"
#include "rpc/channel.h"
#include "task_runner.h"

namespace dipaco {

struct WorkerClientOptions {
  ChannelOptions channel;
  std::string token;      // worker bearer token
  std::string worker_id;  // stable across restarts
  std::string host;
  std::string version = DIPACO_VERSION;
  std::string cache_dir;  // must be writable; created if missing
  uint64_t push_chunk_bytes = 1 << 20;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
  int64_t rpc_timeout_ms = 30000;  // per unary call and per stream
  uint64_t max_tasks = 0;          // stop after this many completed tasks; 0 = no limit
};

struct WorkerStats {
  uint64_t tasks_completed = 0;
  uint64_t tasks_lost = 0;  // lease died before the push completed
  uint64_t bytes_down = 0;
  uint64_t bytes_up = 0;
};

class WorkerClient {
 public:
  WorkerClient(WorkerClientOptions options, TaskRunner& runner);
  ~WorkerClient();
  // Runs until `stop` (see above), max_tasks, or an authorization error.
  Status run(const std::atomic<int>& stop);
  const WorkerStats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  WorkerStats stats_;
};

}  // namespace dipaco
