#include "coordinator/run_event.h"

#include <time.h>

#include <cstdio>

#include "coordinator/clock.h"

namespace dipaco {

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kLeaseGranted: return "lease_granted";
    case EventKind::kLeaseCompleted: return "lease_completed";
    case EventKind::kLeaseExpired: return "lease_expired";
    case EventKind::kLeasePreempted: return "lease_preempted";
    case EventKind::kLeaseCancelled: return "lease_cancelled";
    case EventKind::kPushRefused: return "push_refused";
    case EventKind::kAggregationReady: return "aggregation_ready";
    case EventKind::kModuleVersionCreated: return "module_version_created";
    case EventKind::kRunCreated: return "run_created";
    case EventKind::kRunPaused: return "run_paused";
    case EventKind::kRunResumed: return "run_resumed";
    case EventKind::kRunFinished: return "run_finished";
    case EventKind::kInnerStepsChanged: return "inner_steps_changed";
    case EventKind::kWorkerDraining: return "worker_draining";
    case EventKind::kWorkerUndrained: return "worker_undrained";
    case EventKind::kMetric: return "metric";
  }
  return "unknown";
}

std::string format_unix_ms(int64_t unix_ms) {
  time_t seconds = static_cast<time_t>(unix_ms / 1000);
  int millis = static_cast<int>(unix_ms % 1000);
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
  return text;
}

}  // namespace dipaco
