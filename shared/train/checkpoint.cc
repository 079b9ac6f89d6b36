#include "train/checkpoint.h"

#include <cstring>

#include "tensor/safetensors.h"

namespace dipaco {

namespace {
std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

Status write_checkpoint(const std::string& path, const ParamLayout& layout,
                        const CheckpointState& state) {
  const size_t n = layout.total();
  if (state.params.size() != n || state.m.size() != n || state.v.size() != n)
    return internal_error("checkpoint state does not match the parameter layout");
  std::vector<SafetensorsWriteItem> items;
  const std::pair<const char*, const std::vector<float>*> groups[] = {
      {"", &state.params}, {"optimizer.m.", &state.m}, {"optimizer.v.", &state.v}};
  for (const auto& [prefix, values] : groups) {
    for (const ParamTensor& t : layout.tensors()) {
      items.push_back(
          {prefix + t.name, "F32", t.shape, values->data() + t.offset, t.numel * sizeof(float)});
    }
  }
  std::map<std::string, std::string> meta = {
      {"format", kCheckpointFormat},
      {"model_config", state.config.to_string()},
      {"step", std::to_string(state.step)},
      {"data_position", state.data_position},
      {"optimizer", "adamw"},
  };
  return write_safetensors(path, items, meta);
}

Result<CheckpointState> read_checkpoint(const std::string& path, const ModelConfig& expected) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(path));
  const auto& meta = file.metadata();
  auto get = [&](const char* key) -> std::string {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  if (get("format") != kCheckpointFormat) {
    return invalid_argument(path + ": not a dipaco training checkpoint (metadata format '" +
                            get("format") + "', expected '" + kCheckpointFormat + "')");
  }
  auto config = ModelConfig::parse(get("model_config"));
  if (!config.is_ok()) return config.status().with_context(path);
  if (!(*config == expected)) {
    return invalid_argument(path +
                            ": checkpoint is for a different model (checkpoint vs this run: " +
                            config->difference(expected) + ")");
  }
  CheckpointState state;
  state.config = *config;
  try {
    state.step = std::stoll(get("step"));
  } catch (...) {
    return data_loss(path + ": metadata 'step' is not an integer: '" + get("step") + "'");
  }
  state.data_position = get("data_position");
  ParamLayout layout(expected);
  const size_t n = layout.total();
  state.params.resize(n);
  state.m.resize(n);
  state.v.resize(n);
  const std::pair<const char*, std::vector<float>*> groups[] = {
      {"", &state.params}, {"optimizer.m.", &state.m}, {"optimizer.v.", &state.v}};
  for (const auto& [prefix, values] : groups) {
    for (const ParamTensor& t : layout.tensors()) {
      std::string name = prefix + t.name;
      const SafetensorsTensor* st = file.find(name);
      if (st == nullptr) return invalid_argument(path + ": tensor '" + name + "' is missing");
      if (st->dtype != "F32") {
        return invalid_argument(path + ": tensor '" + name + "' has dtype " + st->dtype +
                                ", expected F32");
      }
      if (st->shape != t.shape) {
        return invalid_argument(path + ": tensor '" + name + "' has shape " +
                                shape_string(st->shape) + ", expected " + shape_string(t.shape));
      }
      std::memcpy(values->data() + t.offset, file.data(*st), st->bytes);
    }
  }
  return state;
}

}  // namespace dipaco
