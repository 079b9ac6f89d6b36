// A trivial Aggregator for tests, the load benchmark and `dipaco serve --aggregator copy`: it
// reads and decodes every report (so corrupt payloads surface), then publishes version s+1 of the
// module as a byte copy of version s (no outer optimizer), written atomically into `dir`, and
// calls complete_aggregation(). The real aggregator (outer Nesterov over decoded reports) is
// the trainer's; it plugs into RpcServer the same way.
#pragma once

#include <string>

#include "rpc/task_config.h"

namespace dipaco {

// `dir` must exist; files are <dir>/run-<run>.module-<module>.v<version>.
Aggregator copy_aggregator(std::string dir, RunHooks hooks);

}  // namespace dipaco
