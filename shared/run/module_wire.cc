#include "run/module_wire.h"

namespace dipaco {

bool module_is_path_specific(const GridSpec& grid, int module_id) {
  return grid.levels[static_cast<size_t>(grid.module_level(module_id))].path_specific;
}

WireDtype module_wire_dtype(const GridSpec& grid, int module_id) {
  return module_is_path_specific(grid, module_id) ? WireDtype::kFp32 : grid.dtype;
}

WireDtype module_downlink_dtype(const GridSpec& grid, int module_id) {
  return module_is_path_specific(grid, module_id) ? WireDtype::kFp32 : grid.downlink;
}

std::optional<WireDtype> report_wire_dtype(const GridSpec& grid, int module_id, size_t num_params,
                                           size_t payload_bytes) {
  const WireDtype own = module_wire_dtype(grid, module_id);
  if (payload_bytes == encoded_size(own, num_params)) return own;
  if (payload_bytes == encoded_size(grid.dtype, num_params)) return grid.dtype;
  return std::nullopt;
}

}  // namespace dipaco
