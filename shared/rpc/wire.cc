#include "rpc/wire.h"

#include <string>

namespace dipaco {

v1::DType to_proto_dtype(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32: return v1::DTYPE_F32;
    case WireDtype::kBf16: return v1::DTYPE_BF16;
    case WireDtype::kInt8: return v1::DTYPE_INT8;
    case WireDtype::kInt4: return v1::DTYPE_INT4;
  }
  return v1::DTYPE_UNSPECIFIED;
}

Result<WireDtype> from_proto_dtype(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32: return WireDtype::kFp32;
    case v1::DTYPE_BF16: return WireDtype::kBf16;
    case v1::DTYPE_INT8: return WireDtype::kInt8;
    case v1::DTYPE_INT4: return WireDtype::kInt4;
    default: break;
  }
  return invalid_argument("dtype " + std::to_string(static_cast<int>(dtype)) +
                          " is not one of F32, BF16, INT8, INT4");
}

bool to_proto_event(const RunEvent& event, v1::RunEvent* out) {
  out->set_unix_ms(static_cast<uint64_t>(event.time_ms));
  auto lease = [&](v1::LeaseEvent::Kind kind) {
    v1::LeaseEvent* e = out->mutable_lease();
    e->set_kind(kind);
    e->set_lease_id(std::to_string(event.lease_id));
    e->set_worker_id(event.worker_id);
    e->set_path_id(event.path_id);
    e->set_outer_step(event.outer_step);
  };
  switch (event.kind) {
    case EventKind::kLeaseGranted: lease(v1::LeaseEvent::KIND_GRANTED); return true;
    case EventKind::kLeaseCompleted: lease(v1::LeaseEvent::KIND_COMPLETED); return true;
    case EventKind::kLeaseExpired: lease(v1::LeaseEvent::KIND_EXPIRED); return true;
    case EventKind::kLeasePreempted: lease(v1::LeaseEvent::KIND_PREEMPTED); return true;
    case EventKind::kPushRefused: lease(v1::LeaseEvent::KIND_REFUSED_LATE_PUSH); return true;
    case EventKind::kMetric: {
      v1::MetricPoint* m = out->mutable_metric();
      m->set_run_id(std::to_string(event.run_id));
      m->set_path_id(event.path_id);
      m->set_outer_step(event.outer_step);
      m->set_inner_step(event.inner_step);
      m->set_name(event.metric_name);
      m->set_value(event.value);
      m->set_unix_ms(static_cast<uint64_t>(event.time_ms));
      return true;
    }
    default: break;
  }
  v1::CoordinatorEvent* other = out->mutable_other();
  other->set_kind(event_kind_name(event.kind));
  other->set_detail(event.detail);
  other->set_module_id(event.module_id);
  other->set_outer_step(event.outer_step);
  other->set_version(event.version);
  return true;
}

}  // namespace dipaco
