#include "run/module_files.h"

#include <cstring>
#include <map>

#include "model/param_layout.h"
#include "tensor/safetensors.h"
#include "util/sha256.h"

namespace dipaco {

Result<std::string> write_module_version(const std::string& path, uint32_t module_id,
                                         uint64_t version, std::span<const float> params) {
  std::vector<SafetensorsWriteItem> items = {{"params",
                                              "F32",
                                              {static_cast<int64_t>(params.size())},
                                              params.data(),
                                              params.size() * sizeof(float)}};
  DIPACO_RETURN_IF_ERROR(write_safetensors(path, items,
                                           {{"format", "dipaco-module/1"},
                                            {"module_id", std::to_string(module_id)},
                                            {"version", std::to_string(version)},
                                            {"num_params", std::to_string(params.size())}}));
  return sha256_file_hex(path);
}

Result<std::vector<float>> read_module_version(const std::string& path, uint32_t module_id,
                                               size_t num_params,
                                               const std::string& expected_sha256) {
  if (!expected_sha256.empty()) {
    DIPACO_ASSIGN_OR_RETURN(std::string sha, sha256_file_hex(path));
    if (sha != expected_sha256) {
      return data_loss(path + ": sha256 " + sha + " differs from the recorded " + expected_sha256 +
                       " (the module file was changed or corrupted)");
    }
  }
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  DIPACO_ASSIGN_OR_RETURN(uint64_t id, f.metadata_uint("module_id"));
  if (id != module_id) {
    return data_loss(path + ": holds module " + std::to_string(id) + ", expected module " +
                     std::to_string(module_id));
  }
  const SafetensorsTensor* t = f.find("params");
  if (t == nullptr || t->dtype != "F32" || t->shape.size() != 1 ||
      static_cast<size_t>(t->shape[0]) != num_params) {
    return data_loss(path + ": tensor 'params' must be F32 [" + std::to_string(num_params) +
                     "] for module " + std::to_string(module_id));
  }
  std::vector<float> v(num_params);
  std::memcpy(v.data(), f.data(*t), num_params * sizeof(float));
  return v;
}

Status write_outer_state(const std::string& path, const OuterOptimizerState& state,
                         std::span<const float> downlink_residual) {
  std::vector<SafetensorsWriteItem> items;
  if (!downlink_residual.empty()) {
    items.push_back({"downlink_residual",
                     "F32",
                     {static_cast<int64_t>(downlink_residual.size())},
                     downlink_residual.data(),
                     downlink_residual.size() * sizeof(float)});
  }
  if (!state.values.empty()) {
    items.push_back({"state",
                     "F32",
                     {static_cast<int64_t>(state.values.size())},
                     state.values.data(),
                     state.values.size() * sizeof(float)});
  }
  return write_safetensors(path, items,
                           {{"format", "dipaco-outer-state/1"},
                            {"step", std::to_string(state.step)},
                            {"values", std::to_string(state.values.size())}});
}

Result<OuterOptimizerState> read_outer_state(const std::string& path,
                                             std::vector<float>* downlink_residual) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  if (downlink_residual != nullptr) {
    downlink_residual->clear();
    if (const SafetensorsTensor* r = f.find("downlink_residual")) {
      if (r->dtype != "F32" || r->bytes % sizeof(float) != 0)
        return data_loss(path + ": tensor 'downlink_residual' must be F32");
      downlink_residual->resize(r->bytes / sizeof(float));
      std::memcpy(downlink_residual->data(), f.data(*r), r->bytes);
    }
  }
  OuterOptimizerState state;
  DIPACO_ASSIGN_OR_RETURN(uint64_t step, f.metadata_uint("step"));
  DIPACO_ASSIGN_OR_RETURN(uint64_t values, f.metadata_uint("values"));
  state.step = static_cast<int64_t>(step);
  if (values == 0) return state;
  const SafetensorsTensor* t = f.find("state");
  if (t == nullptr || t->dtype != "F32" || t->bytes != values * sizeof(float))
    return data_loss(path + ": tensor 'state' must be F32 [" + std::to_string(values) + "]");
  state.values.resize(values);
  std::memcpy(state.values.data(), f.data(*t), t->bytes);
  return state;
}

Status write_path_model(const std::string& path, const ModelConfig& config, uint32_t path_id,
                        std::span<const float> params,
                        const std::map<std::string, std::string>& extra) {
  ParamLayout layout(config);
  if (params.size() != layout.total()) {
    return invalid_argument("path " + std::to_string(path_id) + ": " +
                            std::to_string(params.size()) + " parameters, the model has " +
                            std::to_string(layout.total()));
  }
  std::vector<SafetensorsWriteItem> items;
  for (const ParamTensor& t : layout.tensors()) {
    items.push_back({t.name, "F32", t.shape, params.data() + t.offset, t.numel * sizeof(float)});
  }
  std::map<std::string, std::string> metadata = extra;
  metadata["format"] = "dipaco-path/1";
  metadata["model_config"] = config.to_string();
  metadata["path_id"] = std::to_string(path_id);
  return write_safetensors(path, items, metadata);
}

Result<std::pair<ModelConfig, std::vector<float>>> read_path_model(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  auto it = f.metadata().find("model_config");
  if (it == f.metadata().end())
    return data_loss(path + ": metadata 'model_config' is missing (not a dipaco model file)");
  auto config = ModelConfig::parse(it->second);
  if (!config.is_ok()) return data_loss(path + ": model_config: " + config.status().message());
  ParamLayout layout(*config);
  std::vector<float> params(layout.total());
  for (const ParamTensor& t : layout.tensors()) {
    const SafetensorsTensor* st = f.find(t.name);
    if (st == nullptr) return data_loss(path + ": tensor '" + t.name + "' is missing");
    if (st->dtype != "F32" || st->shape != t.shape)
      return data_loss(path + ": tensor '" + t.name + "' has the wrong dtype or shape");
    std::memcpy(params.data() + t.offset, f.data(*st), t.numel * sizeof(float));
  }
  return std::make_pair(*config, std::move(params));
}

}  // namespace dipaco
