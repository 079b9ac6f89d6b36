// One event of the WatchRun stream (proto/dipaco/v1/coordinator.proto) as the RunEvent the
// dashboard folds, so an attached `dipaco serve` run feeds the same panel as a local run.
// Lease events carry their lease, worker, path and outer step; metrics their path, step, name
// and value; every other event its kind (by name) and sentence. A kind this build does not know
// becomes nullopt (skipped), so a newer server does not break an older studio.
#pragma once

#include <cstdint>
#include <optional>

#include "coordinator/run_event.h"
#include "dipaco/v1/coordinator.pb.h"

namespace dipaco::studio {

std::optional<RunEvent> from_watch_event(const v1::RunEvent& event, int64_t run_id);

}  // namespace dipaco::studio
