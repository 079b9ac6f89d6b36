// Coordinator: the DiPaCo task/lease/aggregation state machine over SQLite. No network here:
// the gRPC service is a thin adapter that maps each RPC onto one method.
//
// Model. A run has a grid of modules and paths; each path has shards; a task is (path, shard,
// outer step). Outer step s of a path is leasable once all its modules are at version s. A worker
// leases one task at a time; the lease lives until its deadline, which each heartbeat pushes to
// now + lease_timeout_ms (never past the run's max_lease_ms hard limit). A lease that dies
// (deadline, operator preemption, restart by policy) puts its task back in the queue; pushes for
// it are refused with the reason. A worker pushes each module's outer gradient in chunks keyed by
// (lease id, sequence): a retried chunk is acknowledged without being counted again. When every
// module of the task is in, the task is done. When every task feeding a module's outer step is
// resolved (done, or skipped by partial aggregation), the coordinator publishes an
// AggregationDecision; the caller runs the outer optimizer, writes the checkpoint atomically and
// calls complete_aggregation(), which records version s+1 and opens step s+1 for the paths
// whose modules are all at s+1.
//
// Durability. SQLite is the only state: every public call is one transaction (deadline sweep
// included), so a crash at any point leaves the state of some earlier call. Reopening the same
// database resumes the run. With synchronous=kFull (default) a call that changed durable state
// returns once its commit is on disk (group commit, see WalGroupSync); heartbeat times and lease
// deadlines alone may be lost on power loss (not on kill -9). Leases in flight at a restart are
// kept by default, with at least one lease timeout from the restart (never past a hard
// deadline), so the coordinator's own downtime does not count against them: a worker that
// keeps trying across a coordinator restart or upgrade loses nothing, and a lease whose worker
// went away meanwhile expires one lease timeout later. RestartPolicy::kExpireLeases ends them
// at open instead.
//
// Threads. Every public method takes one mutex (released before waiting for the disk); call
// from any thread. The event sink runs under
// that mutex after the transaction committed: it must not call back into the Coordinator.
// Time comes only from the injected clock; nothing sleeps or spawns threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/clock.h"
#include "coordinator/outer_gradient_files.h"
#include "coordinator/run_event.h"
#include "coordinator/run_spec.h"
#include "coordinator/wal_group_sync.h"
#include "store/sqlite_db.h"
#include "util/status.h"

namespace dipaco {

enum class RestartPolicy {
  kKeepLeases,    // live leases stay live, at least one lease timeout from open() (default)
  kExpireLeases,  // every lease live at open() is expired and its task requeued
};

struct CoordinatorOptions {
  std::string db_path;      // SQLite database; created (and migrated) if missing
  std::string payload_dir;  // outer-gradient chunk files; must exist (unless gradient_store)
  // Where chunks go; null = OuterGradientFiles over payload_dir.
  std::shared_ptr<OuterGradientStore> gradient_store;
  Clock clock = system_unix_ms;
  RestartPolicy restart = RestartPolicy::kKeepLeases;
  // synchronous: kFull (default) = every acknowledged change durable, by group commit over a
  // NORMAL connection (WalGroupSync); kNormal and kOff as SQLite defines them, never waited for.
  SqliteOptions sqlite;
  int64_t heartbeat_interval_ms = 5000;  // told to workers at registration
  int64_t max_wait_ms = 5000;            // upper bound of a "wait" hint
  int64_t min_wait_ms = 50;              // lower bound of a "wait" hint
  uint64_t max_chunk_bytes = 1 << 20;    // largest accepted push chunk (the proto's bound)
  // Task affinity (dipaco serve turns it on; 0 = off: queued tasks go in lease order to whoever
  // asks). A worker is offered first the task that continues a (path, shard) it trained at the
  // previous outer step: its inner optimizer state and data position for that pair are on its
  // disk, and would otherwise start fresh on another worker. Another worker takes such a task
  // only when its owner cannot: it is draining, holds another lease, let a lease expire, has not
  // been heard from for two of max(max_wait_ms, heartbeat_interval_ms), or the task has waited
  // affinity_grace_ms (delay scheduling). The coordinator's own downtime counts neither as an
  // owner's silence nor as a task's wait: affinity holds across a coordinator restart.
  int64_t affinity_grace_ms = 0;
  // Test hook: runs inside every transaction just before COMMIT (tests _exit() there to
  // simulate a crash mid-transaction).
  std::function<void()> before_commit;
};

struct WorkerInfo {
  std::string worker_id;  // stable across restarts of the same worker
  std::string host;
  std::string devices;  // human description, e.g. "cuda:0 H100 80GB; cuda:1 H100 80GB"
  std::string version;
  // The worker process (random, made once per process). A different non-empty instance of a
  // worker id that is still present is refused (Registration::refusal). Empty: not checked.
  std::string instance_id;
};

struct Registration {
  // How often to heartbeat: the configured interval, shortened to a third of the shortest
  // lease timeout among unfinished runs so that one lost heartbeat does not kill a lease.
  int64_t heartbeat_interval_ms = 0;
  // Non-empty: the registration was refused, nothing changed, and this says why (another
  // process holds the worker id: which host, how long ago it was heard, and the fix).
  std::string refusal;
  // The operator drained this worker (drain() survives re-registering): it gets no task until
  // undrain(); it should stay connected and idle rather than exit.
  bool drain = false;
};

struct WorkerStatus {
  std::string worker_id;
  std::string host;
  std::string devices;
  std::string version;
  std::string state;  // "active", "draining"
  int64_t last_heartbeat_ms = 0;
  int64_t live_lease_id = 0;  // 0 when idle
};

struct ModuleRef {
  uint32_t module_id = 0;
  uint64_t version = 0;
  std::string checkpoint;  // file of that version's parameters
  std::string sha256;      // hex
};

struct TaskGrant {
  int64_t lease_id = 0;
  int64_t run_id = 0;
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint64_t outer_step = 0;
  uint32_t inner_steps = 0;        // H for this task
  std::vector<ModuleRef> modules;  // the path's modules in level order, at version outer_step
  int64_t deadline_ms = 0;         // unix ms; heartbeats move it
};

struct LeaseReply {
  std::optional<TaskGrant> task;  // empty: wait
  int64_t wait_ms = 0;            // with no task: ask again after this long
  std::string reason;             // with no task: why ("run 3 is paused")
  bool drain = false;             // the worker should finish and leave
};

struct HeartbeatReply {
  bool lease_valid = false;  // false: stop working on the lease, it is dead (reason says why)
  bool drain = false;
  int64_t lease_deadline_ms = 0;
  std::string reason;
};

struct OperatorReply {
  bool changed = false;
  std::string message;
};

// One chunk of one module's outer gradient. `sequence` numbers the chunks of the lease's whole
// push (all modules), 0, 1, 2, ...; a retry reuses the number.
struct PushChunk {
  int64_t lease_id = 0;
  uint64_t sequence = 0;
  uint32_t module_id = 0;
  uint64_t offset_bytes = 0;  // where `data` starts in the module's gradient payload
  uint64_t total_bytes = 0;   // size of the module's whole gradient payload
  std::string_view data;
};

struct PushReply {
  bool accepted = false;         // false: refused, `reason` says why (dead or unknown lease)
  bool duplicate = false;        // a retry of an accepted chunk; acknowledged, not counted again
  bool module_complete = false;  // this lease's gradient of the chunk's module is whole
  bool task_complete = false;    // every module of the task is in; the lease ended
  std::string reason;
};

// One lease's outer gradient of one module, as the aggregator reads it.
struct GradientReport {
  int64_t lease_id = 0;
  std::string worker_id;
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint64_t shard_tokens = 0;  // weight of this report
  uint64_t total_bytes = 0;
  std::vector<std::string> chunks;  // store references in offset order; see read_gradient()
};

// "Aggregate module M for outer step s with these reports": the caller applies the outer
// optimizer to version s and reports version s+1 through complete_aggregation().
struct AggregationDecision {
  int64_t run_id = 0;
  uint32_t module_id = 0;
  uint64_t outer_step = 0;   // the module is at version outer_step
  uint32_t paths_using = 0;  // paths that use the module (for DiPaCo's sqrt(#paths) rescaling)
  uint32_t tasks_expected = 0;
  bool partial = false;  // some tasks were skipped; reports.size() < tasks_expected
  std::vector<GradientReport> reports;
};

struct MetricPoint {
  int64_t run_id = 0;
  uint32_t path_id = 0;
  uint64_t outer_step = 0;
  uint64_t inner_step = 0;
  std::string name;  // "train_loss", "tokens_per_second"
  double value = 0.0;
  int64_t time_ms = 0;  // unix ms; 0 = the coordinator's now
};

struct RunStatus {
  int64_t run_id = 0;
  std::string name;
  std::string state;  // "running", "paused", "finished"
  uint32_t inner_steps = 0;
  uint64_t outer_steps = 0;
  std::map<uint32_t, uint64_t> module_versions;  // module id -> current version
  int64_t tasks_queued = 0, tasks_leased = 0, tasks_done = 0, tasks_skipped = 0;
  int64_t live_leases = 0;
};

// What the gRPC service needs to know about a lease to check a push against its run's shapes.
struct LeaseSummary {
  int64_t lease_id = 0;
  int64_t run_id = 0;
  std::string worker_id;
  std::string state;  // "live", "completed", "expired", "preempted", "cancelled"
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint64_t outer_step = 0;
  std::vector<uint32_t> module_ids;  // the path's modules in level order
};

// One accepted chunk of a lease's module gradient (push_chunks row).
struct StoredChunk {
  uint64_t sequence = 0;
  uint64_t offset_bytes = 0;
  uint64_t size_bytes = 0;
  uint64_t total_bytes = 0;
  std::string ref;  // in the gradient store
};

class Coordinator {
 public:
  // Opens or creates the database, migrates it, applies the restart policy.
  static Result<std::unique_ptr<Coordinator>> open(CoordinatorOptions options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Events and metrics, after their transaction commits. Replaces any earlier sink.
  void set_event_sink(std::function<void(const RunEvent&)> sink);

  // ---- operators --------------------------------------------------------------------------
  // Creates a run and opens outer step 0. A spec whose request_id names an existing run returns
  // that run's id and changes nothing.
  Result<int64_t> create_run(const RunSpec& spec);
  Result<OperatorReply> pause(int64_t run_id);
  Result<OperatorReply> resume(int64_t run_id);
  // H for tasks opened from now on (the next outer step); tasks already open keep theirs.
  Result<OperatorReply> set_inner_steps(int64_t run_id, uint32_t inner_steps);
  // Ends a live lease and requeues its task.
  Result<OperatorReply> preempt(int64_t lease_id);
  // The worker gets no new task; its current lease may finish. Lasts across the worker's
  // restarts (register_worker keeps it) until undrain().
  Result<OperatorReply> drain(const std::string& worker_id);
  // Lets a drained worker take tasks again.
  Result<OperatorReply> undrain(const std::string& worker_id);

  // ---- workers ----------------------------------------------------------------------------
  // Adds or updates the worker. Refused (Registration::refusal) when another instance of the
  // same worker id is present (heard from within presence_window_ms(), the coordinator's own
  // downtime not counted).
  Result<Registration> register_worker(const WorkerInfo& info);
  // A worker process that ends cleanly gives its id back: when `instance_id` is the worker's
  // current instance it is cleared, so that the next process registers at once. Leases and
  // the drain state are untouched. False when nothing changed (another instance, or unknown).
  Result<bool> unregister_worker(const std::string& worker_id, const std::string& instance_id);
  // The calls below take the caller's instance (from its session): a non-empty instance that
  // is not the worker's current one is refused (kFailedPrecondition: that process was replaced
  // by a newer registration of the id). Empty: not checked (older workers).
  // Keeps the worker (and its lease, if given and live) alive. lease_id 0 = idle.
  Result<HeartbeatReply> heartbeat(const std::string& worker_id, int64_t lease_id,
                                   uint64_t inner_step, const std::string& instance_id = {});
  // The worker's live lease if it has one (a retried call gets the same task), else a new one,
  // else a wait hint.
  Result<LeaseReply> lease_task(const std::string& worker_id, const std::string& instance_id = {});
  // The worker gives its live lease back (graceful stop, or it cannot run the task): ended as
  // preempted and requeued at once. kFailedPrecondition when the worker does not hold it.
  Result<OperatorReply> release_lease(int64_t lease_id, const std::string& worker_id,
                                      const std::string& why, const std::string& instance_id = {});
  // kFailedPrecondition when a non-empty `instance_id` is not worker `worker_id`'s current one
  // (for calls that name a lease, not the worker: PushProgress).
  Status check_current_instance(const std::string& worker_id, const std::string& instance_id);
  // Cheap check before receiving a chunk's payload; changes nothing, records nothing.
  Result<PushReply> begin_push(int64_t lease_id, uint32_t module_id, uint64_t sequence);
  // Stores and counts one chunk. Malformed chunks are errors (kInvalidArgument) and change
  // nothing; chunks for dead or unknown leases are refused (accepted = false) and recorded.
  Result<PushReply> accept_push(const PushChunk& chunk);
  Status report_metrics(const std::vector<MetricPoint>& points);

  // ---- aggregation ------------------------------------------------------------------------
  // Every module outer step that is ready and not yet completed, oldest first. Survives
  // restarts: a decision stays pending until complete_aggregation().
  Result<std::vector<AggregationDecision>> pending_aggregations(int64_t run_id);
  // Records version outer_step+1 of the module (its checkpoint already written atomically),
  // then opens the next outer step where possible. Repeating a completed call is a no-op.
  Status complete_aggregation(int64_t run_id, uint32_t module_id, uint64_t outer_step,
                              const std::string& checkpoint, const std::string& sha256);

  // The whole payload of one report, from the gradient store. Does not take the coordinator's
  // lock (a large read does not stall leases).
  Result<std::string> read_gradient(const GradientReport& report) const;

  // ---- lookups for the gRPC service (read-only; no deadline sweep) -------------------------
  // The lease, or nullopt when no lease has that id.
  Result<std::optional<LeaseSummary>> lease_summary(int64_t lease_id);
  // Chunks of `module_id` accepted for the lease so far, in offset order.
  Result<std::vector<StoredChunk>> stored_chunks(int64_t lease_id, uint32_t module_id);
  // Reads chunk payloads in the given order from the gradient store (no lock).
  Result<std::string> read_chunks(const std::vector<StoredChunk>& chunks) const;
  // Version `version` of the run's module, or nullopt when the run, module or version does not
  // exist (yet).
  Result<std::optional<ModuleRef>> module_version(int64_t run_id, uint32_t module_id,
                                                  uint64_t version);
  // The opaque RunSpec::config stored with the run; kNotFound for an unknown run.
  Result<std::string> run_config(int64_t run_id);
  // Ids of the runs that are not finished, oldest first.
  Result<std::vector<int64_t>> active_runs();

  // ---- inspection -------------------------------------------------------------------------
  // Applies deadlines now (lease expiry, partial aggregation). Every other call does it too.
  Status tick();
  Result<RunStatus> run_status(int64_t run_id);
  Result<std::vector<RunEvent>> events(int64_t run_id, int64_t after_event_id = 0);
  // The run's metric points (kMetric events; `id` is the metrics table's row, its own sequence)
  // after `after_metric_id`, oldest first, at most `limit` of them.
  Result<std::vector<RunEvent>> metrics(int64_t run_id, int64_t after_metric_id = 0,
                                        int limit = 10000);
  // Every registered worker, by id (the studio's worker table).
  Result<std::vector<WorkerStatus>> workers();
  // Group commit so far: calls that waited for the disk, and the fdatasyncs that served them
  // (both 0 unless synchronous is kFull on a file database).
  struct DurabilityStats {
    uint64_t durable_calls = 0;
    uint64_t syncs = 0;
  };
  DurabilityStats durability_stats() const;

 private:
  struct LeaseRow;
  explicit Coordinator(CoordinatorOptions options, SqliteDb db);

  // Runs body(now) inside one transaction after the deadline sweep; commits and delivers events
  // when it succeeds, rolls back and drops them otherwise. Caller holds mutex_. Leaves the
  // commit's durability ticket (0: nothing to make durable) in commit_ticket_ and the store
  // entries to remove once it is durable in committed_removals_.
  template <typename T, typename Body>
  Result<T> transact(Body body);
  // One public call: transact() under mutex_, then, without the mutex, waits until the commit is
  // on disk (group commit, see WalGroupSync) and removes the store entries it released.
  // *committed (if given) tells whether the transaction committed, even when the wait failed.
  template <typename T, typename Body>
  Result<T> call(Body body, bool* committed = nullptr);
  // For writes that may be lost on power loss (heartbeat times, lease deadlines): the rows the
  // last statement changed do not make the transaction wait for the disk.
  void changes_are_lossy() { lossy_changes_ += db_.changes(); }

  Status sweep(int64_t now);
  Status expire_leases_at_restart(int64_t now);
  Status apply_partial_aggregation(int64_t now);
  Status end_lease(const LeaseRow& lease, const std::string& state, const std::string& reason,
                   bool requeue, EventKind kind, int64_t now);
  Result<std::optional<LeaseRow>> find_lease(int64_t lease_id);
  Result<int64_t> worker_row(const std::string& worker_id);
  // Records that `worker` was heard from at `now`; returns whether it is draining.
  Result<bool> touch_worker(int64_t worker, int64_t now);
  Result<TaskGrant> grant_of(const LeaseRow& lease);
  // The task lease_task hands `worker` now, if any (CoordinatorOptions::affinity_grace_ms).
  struct QueuedTask {
    int64_t task = 0, lease_timeout_ms = 0, max_lease_ms = 0;
  };
  Result<std::optional<QueuedTask>> next_task_for(int64_t worker, int64_t now);
  Result<int64_t> wait_hint(int64_t now);
  // Inside a transaction: kFailedPrecondition when a non-empty instance is not the current one.
  Status check_instance(int64_t worker, const std::string& worker_id,
                        const std::string& instance_id);
  // A worker heard from within this long is present: two of its longest silences (an idle
  // worker asks at least every max_wait_ms, a busy one heartbeats).
  int64_t presence_window_ms() const {
    return 2 * std::max(options_.max_wait_ms, options_.heartbeat_interval_ms);
  }
  Result<PushReply> check_push(int64_t lease_id, uint32_t module_id, uint64_t sequence,
                               const PushChunk* chunk, int64_t now, bool record);
  Status complete_task(const LeaseRow& lease, int64_t now);
  Status note_resolved(int64_t module_row, uint64_t outer_step, int64_t now);
  Status check_ready(int64_t module_row, uint64_t outer_step, int64_t now);
  Status open_step(int64_t path_row, uint64_t outer_step, int64_t now);
  // Records an event (not metrics) in the events table and queues it for the sink.
  Status publish(RunEvent event);

  CoordinatorOptions options_;
  std::shared_ptr<OuterGradientStore> store_;
  std::mutex mutex_;
  SqliteDb db_;
  std::vector<RunEvent> pending_events_;
  std::vector<std::string> remove_after_commit_;
  std::function<void(const RunEvent&)> sink_;
  // Group commit of the WAL; null unless options.sqlite.synchronous is kFull on a file database.
  std::unique_ptr<WalGroupSync> wal_sync_;
  // The coordinator's own downtime before open(): from the latest time the database recorded
  // (a worker heard from, an event) to open(). Task affinity reads the times recorded before
  // open() (workers last heard, tasks opened) as if it had not passed, so that owners present
  // when the coordinator stopped are still present, and held tasks still held, after a restart.
  struct Downtime {
    int64_t until_ms = 0;   // open()'s time
    int64_t length_ms = 0;  // >= 0
    // When open() ended the leases in flight (RestartPolicy::kExpireLeases, or deadlines that
    // passed while it was down): those ends are not their workers' silence. -1: none.
    int64_t leases_ended_ms = -1;
  };
  Downtime downtime_;
  int64_t lossy_changes_ = 0;  // rows of the current transaction that need no fsync
  uint64_t commit_ticket_ = 0;
  std::vector<std::string> committed_removals_;
  // run id -> RunSpec::config (immutable once created); its own mutex, taken after mutex_ if both.
  std::mutex run_configs_mutex_;
  std::map<int64_t, std::shared_ptr<const std::string>> run_configs_;
};

}  // namespace dipaco
