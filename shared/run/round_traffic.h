// What one outer step of a grid moves over the network, as `dipaco run` and the studio count
// it: every task (paths × shards_per_path) fetches its path's modules in fp32 and pushes each
// module's outer gradient in the run's wire dtype. Path-specific modules are counted apart
// (path_local): a worker that keeps its path would never move them. Data parallel for the same
// tokens exchanges an fp32 gradient both ways on every inner step of every task.
#pragma once

#include <cstdint>

#include "algo/grid_spec.h"
#include "model/param_layout.h"

namespace dipaco {

struct RoundTraffic {
  uint64_t up = 0;             // outer gradients, encoded
  uint64_t down = 0;           // module versions, fp32
  uint64_t path_local = 0;     // path-specific modules, both ways
  uint64_t data_parallel = 0;  // tasks · H · 2 · params_per_path · 4
  uint64_t tokens = 0;         // training tokens of the step's tasks
};

RoundTraffic round_traffic(const GridSpec& grid, const ParamLayout& layout);

}  // namespace dipaco
