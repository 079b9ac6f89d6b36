#include "run/round_traffic.h"

#include "compress/wire_dtype.h"
#include "run/module_wire.h"

namespace dipaco {

RoundTraffic round_traffic(const GridSpec& grid, const ParamLayout& layout) {
  RoundTraffic t;
  const auto shards = static_cast<uint64_t>(grid.shards_per_path);
  for (int p = 0; p < grid.num_paths(); ++p) {
    for (int id : grid.path_modules(p)) {
      const uint64_t n = grid.module_range(layout, id).count;
      if (module_is_path_specific(grid, id)) {
        t.path_local += shards * (n * sizeof(float) + encoded_size(module_wire_dtype(grid, id), n));
      } else {
        t.down += shards * n * sizeof(float);
        t.down_delta +=
            shards * (grid.downlink == WireDtype::kFp32 ? n * sizeof(float)
                                                        : encoded_size(grid.downlink, n));
        t.up += shards * encoded_size(module_wire_dtype(grid, id), n);
      }
    }
    t.data_parallel += shards * grid.inner_steps * 2 * layout.total() * sizeof(float);
    t.tokens += shards * grid.inner_steps * static_cast<uint64_t>(grid.inner.batch_size) *
                static_cast<uint64_t>(grid.inner.seq_len) *
                static_cast<uint64_t>(grid.inner.grad_accum);
  }
  return t;
}

}  // namespace dipaco
