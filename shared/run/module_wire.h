// How each module of a grid travels between the coordinator and the workers.
//
// Shared modules use the grid's compression: outer gradients up in grid.dtype (with error
// feedback on the worker), versions down as grid.downlink deltas. A module of a path-specific
// level belongs to one path (DiPaCo keeps such modules local and exact), so it travels as fp32
// both ways: no quantization noise on parameters no other path shares, no error-feedback
// residual on the worker, no downlink residual on the coordinator.
//
// Both sides make the same decision from the grid file; the coordinator also sends it per module
// in the task (ModuleRef.gradient_dtype, ModuleRef.module_delta_dtype), and a worker follows the
// task. Peers that predate the per-module fields send the grid's dtype for every module: the
// coordinator accepts either and tells them apart by payload size (report_wire_dtype).
#pragma once

#include <cstddef>
#include <optional>

#include "algo/grid_spec.h"
#include "compress/wire_dtype.h"

namespace dipaco {

// True when module `module_id` lies on a path-specific level (one module per path).
bool module_is_path_specific(const GridSpec& grid, int module_id);

// How the module's outer gradients travel up: fp32 for a path-specific module, else grid.dtype.
WireDtype module_wire_dtype(const GridSpec& grid, int module_id);

// How the module's versions travel down to a worker holding the previous one: fp32 (whole
// versions) for a path-specific module, else grid.downlink.
WireDtype module_downlink_dtype(const GridSpec& grid, int module_id);

// The dtype a received outer-gradient payload of `payload_bytes` for a module of `num_params`
// parameters was encoded in: module_wire_dtype, or grid.dtype (a worker that predates per-module
// dtypes). nullopt when the size fits neither. The two sizes never coincide for n >= 1 unless
// the dtypes do (fp32 takes 4n bytes, every other layout fewer).
std::optional<WireDtype> report_wire_dtype(const GridSpec& grid, int module_id, size_t num_params,
                                           size_t payload_bytes);

}  // namespace dipaco
