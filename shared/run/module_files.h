// Files of a run's modules and paths, all safetensors written atomically (temp + fsync +
// rename), so a crash leaves either the old file or the new one.
//
//   module version   tensor "params" F32 [n]; metadata module_id, version, num_params
//   outer state      tensor "state" F32 [m] (m may be 0: no tensor); metadata step, kind;
//                    tensor "downlink_residual" F32 [n] when the downlink is quantized (the
//                    error feedback of module_delta.h), in the same file so that the optimizer
//                    state and the residual are always of the same step
//   path model       one tensor per ParamLayout tensor (Hugging Face Llama names), F32;
//                    metadata format "dipaco-path/1", model_config, path_id
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "algo/outer_optimizer.h"
#include "model/model_config.h"
#include "util/status.h"

namespace dipaco {

// Writes version `version` of module `module_id`; returns the file's sha256 (hex).
Result<std::string> write_module_version(const std::string& path, uint32_t module_id,
                                         uint64_t version, std::span<const float> params);
// Reads a module version; checks the module id, the parameter count and (when non-empty) the
// file's sha256 against what the coordinator recorded.
Result<std::vector<float>> read_module_version(const std::string& path, uint32_t module_id,
                                               size_t num_params,
                                               const std::string& expected_sha256 = "");

// `downlink_residual` empty: none stored (fp32 downlink).
Status write_outer_state(const std::string& path, const OuterOptimizerState& state,
                         std::span<const float> downlink_residual = {});
// *downlink_residual (when given) is cleared when the file stores none.
Result<OuterOptimizerState> read_outer_state(const std::string& path,
                                             std::vector<float>* downlink_residual = nullptr);

// A path's whole model, loadable by `dipaco export` and by Model::set_params. `extra` adds
// metadata (the runner records the validation result the model was kept for).
Status write_path_model(const std::string& path, const ModelConfig& config, uint32_t path_id,
                        std::span<const float> params,
                        const std::map<std::string, std::string>& extra = {});
// Reads a path model (or any file with the ParamLayout tensors and a model_config metadata);
// returns its config and parameters in buffer order.
Result<std::pair<ModelConfig, std::vector<float>>> read_path_model(const std::string& path);

}  // namespace dipaco
