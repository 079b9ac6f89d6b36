// RunEvent: what the coordinator tells watchers (the studio's WatchRun stream) and records in
// the events table. Metrics travel the same way but are stored in the metrics table.
#pragma once

#include <cstdint>
#include <string>

namespace dipaco {

enum class EventKind {
  kLeaseGranted,
  kLeaseCompleted,    // every module's outer gradient of the lease is in
  kLeaseExpired,      // deadline or missed heartbeats (or a restart, by policy); requeued
  kLeasePreempted,    // by an operator; requeued
  kLeaseCancelled,    // its task was skipped by a partial aggregation; not requeued
  kPushRefused,       // a chunk for a dead or unknown lease
  kAggregationReady,  // a module's outer step has all its reports (or a partial quorum)
  kModuleVersionCreated,
  kRunCreated,
  kRunPaused,
  kRunResumed,
  kRunFinished,
  kInnerStepsChanged,
  kWorkerDraining,
  kWorkerUndrained,  // an operator let a drained worker take tasks again
  kMetric,
};

const char* event_kind_name(EventKind kind);

struct RunEvent {
  int64_t id = 0;      // row in the events table; 0 for metrics
  int64_t run_id = 0;  // 0 when the event concerns no run
  int64_t time_ms = 0;
  EventKind kind = EventKind::kLeaseGranted;
  int64_t lease_id = 0;
  std::string worker_id;
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint32_t module_id = 0;
  uint64_t outer_step = 0;
  uint64_t version = 0;  // module version for kModuleVersionCreated; H for kInnerStepsChanged
  std::string detail;    // the human sentence ("lease 17 expired at ...; task requeued")
  // kMetric only:
  uint64_t inner_step = 0;
  std::string metric_name;
  double value = 0.0;
};

}  // namespace dipaco
