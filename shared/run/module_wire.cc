#include "run/module_wire.h"

namespace dipaco {

bool module_is_path_specific(const GridSpec& grid, int module_id) {
  return grid.levels[static_cast<size_t>(grid.module_level(module_id))].path_specific;
}

bool module_pushes_params(const GridSpec& grid, int module_id) {
  return module_is_path_specific(grid, module_id) && grid.dtype != WireDtype::kFp32;
}

WireDtype module_wire_dtype(const GridSpec& grid, int module_id) {
  return module_is_path_specific(grid, module_id) ? WireDtype::kFp32 : grid.dtype;
}

WireDtype module_downlink_dtype(const GridSpec& grid, int module_id) {
  return module_is_path_specific(grid, module_id) ? WireDtype::kFp32 : grid.downlink;
}

std::optional<ReportEncoding> report_encoding(const GridSpec& grid, int module_id,
                                              size_t num_params, size_t payload_bytes) {
  if (module_pushes_params(grid, module_id) &&
      payload_bytes == encoded_size(WireDtype::kFp32, num_params))
    return ReportEncoding{WireDtype::kFp32, true};
  if (payload_bytes == encoded_size(grid.dtype, num_params))
    return ReportEncoding{grid.dtype, false};
  return std::nullopt;
}

}  // namespace dipaco
