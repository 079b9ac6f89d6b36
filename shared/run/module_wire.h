// How each module of a grid travels between the coordinator and the workers.
//
// Shared modules use the grid's compression: outer gradients up in grid.dtype (with error
// feedback on the worker), versions down as grid.downlink deltas. A module of a path-specific
// level belongs to one path (DiPaCo keeps such modules local and exact), so it travels as fp32
// both ways and exactly: the worker sends its trained parameters θ_p (not θ − θ_p, whose float
// round trip θ − (θ − θ_p) is not always θ_p), the coordinator makes them the new version, and
// the worker fetches that version whole. No quantization noise on parameters no other path
// shares, no error-feedback residual on the worker, no downlink residual on the coordinator.
//
// Both sides make the same decision from the grid file; the coordinator also sends it per module
// in the task (ModuleRef.gradient_dtype, module_delta_dtype, push_params), and a worker follows
// the task. A worker that predates those fields sends every module's outer gradient in
// grid.dtype: the coordinator tells the two apart by payload size (report_encoding). With
// grid.dtype fp32 the sizes would coincide, so there a path-specific module sends its outer
// gradient in fp32 as before (exact up to one float rounding of θ − (θ − θ_p)), which keeps stored
// reports and older workers unambiguous.
#pragma once

#include <cstddef>
#include <optional>

#include "algo/grid_spec.h"
#include "compress/wire_dtype.h"

namespace dipaco {

// True when module `module_id` lies on a path-specific level (one module per path).
bool module_is_path_specific(const GridSpec& grid, int module_id);

// True when the worker pushes the module's trained parameters θ_p (ModuleRef.push_params): a
// path-specific module of a grid whose dtype is not fp32 (see above).
bool module_pushes_params(const GridSpec& grid, int module_id);

// How the module's task result travels up: fp32 (trained parameters) for a path-specific module,
// else grid.dtype (outer gradient).
WireDtype module_wire_dtype(const GridSpec& grid, int module_id);

// How the module's versions travel down to a worker holding the previous one: fp32 (whole
// versions) for a path-specific module, else grid.downlink.
WireDtype module_downlink_dtype(const GridSpec& grid, int module_id);

// What a received payload of `payload_bytes` for a module of `num_params` parameters holds.
struct ReportEncoding {
  WireDtype dtype = WireDtype::kFp32;
  bool params = false;  // θ_p (a path-specific module's fp32 payload), else an outer gradient
};
// A 4n-byte payload of a module that pushes its parameters (module_pushes_params) is θ_p; a
// payload of encoded_size(grid.dtype, n) bytes is an outer gradient (a shared module's, or an
// older worker's). nullopt: neither size. The two sizes never coincide for n >= 1, since fp32
// takes 4n bytes, every other layout fewer, and an fp32 grid pushes outer gradients only.
std::optional<ReportEncoding> report_encoding(const GridSpec& grid, int module_id,
                                              size_t num_params, size_t payload_bytes);

}  // namespace dipaco
