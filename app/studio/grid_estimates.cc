#include "grid_estimates.h"

#include <cstdio>

#include "model/param_layout.h"
#include "run/round_traffic.h"

namespace dipaco::studio {

GridEstimates estimate_grid(const GridSpec& grid) {
  GridEstimates e;
  const ModelConfig& m = grid.model;
  const ParamLayout layout(m);
  e.params_per_path = layout.total();
  for (int id = 0; id < grid.num_modules(); ++id)
    e.params_total += grid.module_range(layout, id).count;

  const uint64_t b = static_cast<uint64_t>(grid.inner.batch_size);
  const uint64_t t = static_cast<uint64_t>(grid.inner.seq_len);
  const uint64_t per_token =
      static_cast<uint64_t>(m.n_layers) *
          (10ULL * static_cast<uint64_t>(m.d_model) + 4ULL * static_cast<uint64_t>(m.d_ff) +
           2ULL * static_cast<uint64_t>(m.n_heads) * t) +
      2ULL * static_cast<uint64_t>(m.vocab_size);
  e.activation_bytes = 4 * b * t * per_token;
  e.worker_memory_bytes = e.params_per_path * (4 + 4 + 8) + e.activation_bytes;

  const RoundTraffic traffic = round_traffic(grid, layout);
  e.bytes_up_per_outer_step = traffic.up;
  e.bytes_down_per_outer_step = traffic.down;
  e.path_local_bytes_per_outer_step = traffic.path_local;
  e.bytes_down_delta_per_outer_step = traffic.down_delta;
  e.bytes_per_outer_step = traffic.up + traffic.down;
  e.bytes_steady_per_outer_step = traffic.up + traffic.down_delta;
  e.data_parallel_bytes_per_outer_step = traffic.data_parallel;
  return e;
}

}  // namespace dipaco::studio
