// Estimates the grid designer shows, computed from a GridSpec alone (no data, no Qt).
//
// Contracts:
//   params_per_path   ParamLayout(model).total(): every path is a whole model.
//   params_total      sum of module_range(id).count over all modules (what the grid stores).
//   activation_bytes  rough fp32 activation memory of one micro-batch B×T:
//                     4 · B · T · (n_layers · (10·d_model + 4·d_ff + 2·n_heads·T) + 2·vocab)
//   worker_memory     params_per_path · (4 weights + 4 grads + 8 AdamW) + activation_bytes
//                     (a worker trains one path at a time).
//   bytes_*_per_outer_step, path_local_*, data_parallel_*: round_traffic() of
//                     shared/run/round_traffic.h, the numbers `dipaco run` reports.
#pragma once

#include <cstdint>

#include "algo/grid_spec.h"
#include "util/human_units.h"

namespace dipaco::studio {

struct GridEstimates {
  uint64_t params_per_path = 0;
  uint64_t params_total = 0;
  uint64_t activation_bytes = 0;
  uint64_t worker_memory_bytes = 0;
  uint64_t bytes_up_per_outer_step = 0;
  uint64_t bytes_down_per_outer_step = 0;        // whole fp32 versions (the first step)
  uint64_t bytes_down_delta_per_outer_step = 0;  // quantized deltas ([compression] downlink)
  uint64_t bytes_per_outer_step = 0;             // up + down (the first step)
  uint64_t bytes_steady_per_outer_step = 0;      // up + down as deltas (every later step)
  uint64_t path_local_bytes_per_outer_step = 0;
  uint64_t data_parallel_bytes_per_outer_step = 0;
};

// Requires grid.validate() to pass (the shape must be consistent); uses model.vocab_size as
// given even when the vocabulary comes from the data.
GridEstimates estimate_grid(const GridSpec& grid);

using ::dipaco::human_bytes;  // util/human_units.h
using ::dipaco::human_count;

}  // namespace dipaco::studio
