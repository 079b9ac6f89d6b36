// What one outer step of a grid moves over the network, as `dipaco run` and the studio estimate
// it: every task (paths × shards_per_path) fetches its path's modules and pushes each module's
// outer gradient in the run's wire dtype. A module version travels whole (fp32) to a worker
// without the previous version — every task of the first outer step — and as a quantized delta
// (grid.downlink, module_delta.h) to one that holds it: `down` is the first step, `down_delta`
// the steady state. Path-specific modules are counted apart (path_local): they travel as fp32
// both ways (run/module_wire.h), 8 bytes per parameter per task, and a worker that kept its path
// would never move them. Data parallel for the same tokens exchanges an fp32 gradient both
// ways on every inner step of every task. Payload bytes (the files' few-hundred-byte headers and
// gRPC framing are not counted, on either side).
#pragma once

#include <cstdint>

#include "algo/grid_spec.h"
#include "model/param_layout.h"

namespace dipaco {

struct RoundTraffic {
  uint64_t up = 0;             // outer gradients, encoded
  uint64_t down = 0;           // module versions in fp32 (first outer step, cache misses)
  uint64_t down_delta = 0;     // module versions to workers holding the previous one
  uint64_t path_local = 0;     // path-specific modules, both ways, fp32
  uint64_t data_parallel = 0;  // tasks · H · 2 · params_per_path · 4
  uint64_t tokens = 0;         // training tokens of the step's tasks
};

RoundTraffic round_traffic(const GridSpec& grid, const ParamLayout& layout);

// Estimated downlink of a whole run: the first step whole, the others as deltas.
inline uint64_t run_bytes_down(const RoundTraffic& t, uint64_t outer_steps) {
  return outer_steps == 0 ? 0 : t.down + (outer_steps - 1) * t.down_delta;
}

}  // namespace dipaco
