// Conversions between the coordinator's types and the dipaco.v1 proto messages.
#pragma once

#include "compress/wire_dtype.h"
#include "coordinator/run_event.h"
#include "dipaco/v1/coordinator.pb.h"
#include "util/status.h"

namespace dipaco {

v1::DType to_proto_dtype(WireDtype dtype);
// kInvalidArgument for DTYPE_UNSPECIFIED or an unknown value.
Result<WireDtype> from_proto_dtype(v1::DType dtype);

// Fills *out from a coordinator event (lease events as LeaseEvent, metrics as MetricPoint,
// everything else as CoordinatorEvent). Always true today; false would mean "skip it".
bool to_proto_event(const RunEvent& event, v1::RunEvent* out);

}  // namespace dipaco
