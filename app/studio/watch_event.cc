#include "watch_event.h"

#include <charconv>
#include <string>

namespace dipaco::studio {

namespace {

int64_t parse_lease_id(const std::string& text) {
  int64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id);
  return id;
}

std::optional<EventKind> lease_kind(v1::LeaseEvent::Kind kind) {
  switch (kind) {
    case v1::LeaseEvent::KIND_GRANTED: return EventKind::kLeaseGranted;
    case v1::LeaseEvent::KIND_COMPLETED: return EventKind::kLeaseCompleted;
    case v1::LeaseEvent::KIND_EXPIRED: return EventKind::kLeaseExpired;
    case v1::LeaseEvent::KIND_PREEMPTED: return EventKind::kLeasePreempted;
    case v1::LeaseEvent::KIND_REFUSED_LATE_PUSH: return EventKind::kPushRefused;
    default: return std::nullopt;
  }
}

std::optional<EventKind> kind_named(const std::string& name) {
  for (int k = 0; k <= static_cast<int>(EventKind::kMetric); ++k) {
    if (name == event_kind_name(static_cast<EventKind>(k))) return static_cast<EventKind>(k);
  }
  return std::nullopt;
}

}  // namespace

std::optional<RunEvent> from_watch_event(const v1::RunEvent& event, int64_t run_id) {
  RunEvent out;
  out.run_id = run_id;
  out.time_ms = static_cast<int64_t>(event.unix_ms());
  switch (event.event_case()) {
    case v1::RunEvent::kMetric: {
      const v1::MetricPoint& m = event.metric();
      out.kind = EventKind::kMetric;
      out.path_id = m.path_id();
      out.outer_step = m.outer_step();
      out.inner_step = m.inner_step();
      out.metric_name = m.name();
      out.value = m.value();
      if (m.unix_ms() != 0) out.time_ms = static_cast<int64_t>(m.unix_ms());
      return out;
    }
    case v1::RunEvent::kLease: {
      const v1::LeaseEvent& l = event.lease();
      std::optional<EventKind> kind = lease_kind(l.kind());
      if (!kind) return std::nullopt;
      out.kind = *kind;
      out.lease_id = parse_lease_id(l.lease_id());
      out.worker_id = l.worker_id();
      out.path_id = l.path_id();
      out.outer_step = l.outer_step();
      if (out.lease_id != 0) {
        out.detail = "lease " + l.lease_id() + " (worker " + l.worker_id() + ", path " +
                     std::to_string(l.path_id()) + ", outer step " +
                     std::to_string(l.outer_step()) + ")";
      }
      return out;
    }
    case v1::RunEvent::kTraffic: {
      // Traffic arrives as one byte metric per direction, as the dashboard counts it.
      out.kind = EventKind::kMetric;
      out.path_id = event.traffic().path_id();
      out.outer_step = event.traffic().outer_step();
      out.metric_name = "bytes_up";
      out.value = static_cast<double>(event.traffic().bytes_up() + event.traffic().bytes_down());
      return out;
    }
    case v1::RunEvent::kOther: {
      const v1::CoordinatorEvent& o = event.other();
      std::optional<EventKind> kind = kind_named(o.kind());
      if (!kind || *kind == EventKind::kMetric) return std::nullopt;
      out.kind = *kind;
      out.detail = o.detail();
      out.module_id = o.module_id();
      out.outer_step = o.outer_step();
      out.version = o.version();
      return out;
    }
    default: return std::nullopt;
  }
}

}  // namespace dipaco::studio
