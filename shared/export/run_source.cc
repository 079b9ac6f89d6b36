#include "export/run_source.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "export/json_value.h"
#include "model/param_layout.h"
#include "tensor/safetensors.h"
#include "train/run_config.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace fs = std::filesystem;

const RunPath* RunSource::find_path(int id) const {
  for (const auto& p : paths)
    if (p.id == id) return &p;
  return nullptr;
}

namespace {

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// `name` against the run directory first, then as given (relative to the current directory).
// run.json records absolute tokenizer and data paths; those written before that hold
// them as the grid wrote them, relative to where `dipaco run` was started.
std::string resolve(const std::string& run_dir, const std::string& name) {
  if (name.empty() || fs::path(name).is_absolute()) return name;
  std::string in_run = (fs::path(run_dir) / name).string();
  if (file_exists(in_run) || !file_exists(name)) return in_run;
  return name;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Integer-valued JSON number, or an error naming `key`.
Result<int64_t> get_int(const JsonValue& v, const std::string& where) {
  if (!v.is_number() || v.as_number() != std::floor(v.as_number()))
    return invalid_argument(where + ": expected an integer");
  return static_cast<int64_t>(v.as_number());
}

Result<RunSource> open_dipaco_run(const std::string& dir, const std::string& manifest) {
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(manifest));
  auto parsed = parse_json(text);
  if (!parsed.is_ok()) return parsed.status().with_context(manifest);
  const JsonValue& root = *parsed;
  auto err = [&](const std::string& key, const std::string& what) {
    return invalid_argument(manifest + ": " + key + ": " + what);
  };
  if (!root.is_object()) return err("(top level)", "expected an object");
  RunSource run;
  run.kind = "dipaco-run";
  run.dir = dir;
  run.manifest = text;
  const JsonValue* format = root.find("format");
  if (format == nullptr || format->as_string() != kRunFormat)
    return err("format", std::string("expected \"") + kRunFormat + "\"");
  if (const JsonValue* v = root.find("name")) run.name = v->as_string();
  if (run.name.empty()) run.name = fs::path(dir).lexically_normal().filename().string();
  if (run.name.empty()) run.name = fs::absolute(dir).lexically_normal().parent_path().filename();
  const JsonValue* model = root.find("model");
  if (model == nullptr || !model->is_string()) return err("model", "expected a config string");
  auto config = ModelConfig::parse(model->as_string());
  if (!config.is_ok()) return config.status().with_context(manifest + ": model");
  run.model = *config;
  if (const JsonValue* v = root.find("tokenizer"); v != nullptr && v->is_string())
    run.tokenizer = resolve(dir, v->as_string());
  if (const JsonValue* data = root.find("data")) {
    if (const JsonValue* v = data->find("train")) run.train_data = resolve(dir, v->as_string());
    if (const JsonValue* v = data->find("val")) run.val_data = resolve(dir, v->as_string());
  }
  if (const JsonValue* v = root.find("dipaco_version")) run.dipaco_version = v->as_string();
  if (const JsonValue* v = root.find("grid"); v != nullptr && v->is_string())
    run.grid = resolve(dir, v->as_string());
  const JsonValue* paths = root.find("paths");
  if (paths == nullptr || !paths->is_array()) return err("paths", "expected an array");
  for (size_t i = 0; i < paths->items().size(); ++i) {
    const JsonValue& p = paths->items()[i];
    std::string where = "paths[" + std::to_string(i) + "]";
    if (!p.is_object()) return err(where, "expected an object");
    RunPath path;
    const JsonValue* id = p.find("id");
    if (id == nullptr) return err(where + ".id", "missing");
    DIPACO_ASSIGN_OR_RETURN(int64_t id_value, get_int(*id, manifest + ": " + where + ".id"));
    if (id_value < 0 || id_value > 1'000'000) return err(where + ".id", "out of range");
    path.id = static_cast<int>(id_value);
    if (run.find_path(path.id) != nullptr)
      return err(where + ".id", "path " + std::to_string(path.id) + " appears twice");
    if (const JsonValue* m = p.find("modules"); m != nullptr && m->is_array()) {
      for (const auto& item : m->items()) {
        DIPACO_ASSIGN_OR_RETURN(int64_t mod, get_int(item, manifest + ": " + where + ".modules"));
        path.modules.push_back(static_cast<int>(mod));
      }
    }
    if (const JsonValue* v = p.find("shard_documents"); v != nullptr && v->is_number())
      path.shard_documents = static_cast<int64_t>(v->as_number());
    if (const JsonValue* v = p.find("shard_tokens"); v != nullptr && v->is_number())
      path.shard_tokens = static_cast<int64_t>(v->as_number());
    if (const JsonValue* v = p.find("val_loss"); v != nullptr && v->is_number())
      path.val_loss = v->as_number();
    if (const JsonValue* v = p.find("checkpoint"); v != nullptr && v->is_string())
      path.checkpoint = resolve(dir, v->as_string());
    path.finished = !path.checkpoint.empty() && file_exists(path.checkpoint);
    run.paths.push_back(std::move(path));
  }
  if (const JsonValue* r = root.find("router"); r != nullptr && r->is_object()) {
    if (const JsonValue* v = r->find("kind"); v != nullptr && v->is_string())
      run.router.kind = v->as_string();
    if (const JsonValue* v = r->find("file"); v != nullptr && v->is_string())
      run.router.file = resolve(dir, v->as_string());
    if (const JsonValue* v = r->find("base_checkpoint"); v != nullptr && v->is_string())
      run.router.base_checkpoint = resolve(dir, v->as_string());
    if (const JsonValue* v = r->find("prefix_tokens"); v != nullptr && v->is_number())
      run.router.prefix_tokens = static_cast<int>(v->as_number());
    if (const JsonValue* v = r->find("reroute_every"); v != nullptr && v->is_number())
      run.router.reroute_every = static_cast<int>(v->as_number());
  }
  return run;
}

// The last "val_loss" logged in a `dipaco train` metrics.jsonl, if any.
std::optional<double> last_val_loss(const std::string& metrics) {
  auto text = read_file(metrics);
  if (!text.is_ok()) return std::nullopt;
  std::optional<double> last;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    auto line = parse_json(std::string_view(*text).substr(pos, end - pos));
    pos = end + 1;
    if (!line.is_ok()) continue;
    if (const JsonValue* v = line->find("val_loss"); v != nullptr && v->is_number())
      last = v->as_number();
  }
  return last;
}

Result<RunSource> open_dense_run(const std::string& dir, const std::string& checkpoint) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(checkpoint));
  auto it = file.metadata().find("model_config");
  if (it == file.metadata().end())
    return data_loss(checkpoint + ": metadata has no \"model_config\"; not a dipaco checkpoint");
  auto config = ModelConfig::parse(it->second);
  if (!config.is_ok()) return config.status().with_context(checkpoint + ": model_config");
  RunSource run;
  run.kind = "dense-checkpoint";
  run.dir = dir;
  run.name = fs::absolute(dir).lexically_normal().filename().string();
  if (run.name.empty()) run.name = fs::absolute(dir).lexically_normal().parent_path().filename();
  run.model = *config;
  std::string toml = (fs::path(dir) / "config.toml").string();
  if (file_exists(toml)) {
    auto rc = load_run_config(toml);
    if (rc.is_ok()) {
      run.train_data = rc->train_tokens;
      run.val_data = rc->val_tokens;
      std::string next_to_data = (fs::path(rc->train_tokens).parent_path() / "tokenizer.model");
      run.tokenizer = resolve(dir, next_to_data);
    }
  }
  RunPath path;
  path.id = 0;
  path.checkpoint = checkpoint;
  path.finished = true;
  path.val_loss = last_val_loss((fs::path(dir) / "metrics.jsonl").string());
  run.paths.push_back(path);
  return run;
}

}  // namespace

Result<RunSource> open_run(const std::string& run_dir, const std::string& tokenizer_override) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    return not_found(run_dir +
                     ": not a directory (expected a run directory with run.json, or a "
                     "'dipaco train' checkpoint directory)");
  std::string manifest = (fs::path(run_dir) / "run.json").string();
  std::string dense = (fs::path(run_dir) / "checkpoint.safetensors").string();
  if (!file_exists(manifest) && file_exists((fs::path(run_dir) / "grid.toml").string()))
    return failed_precondition(run_dir +
                               ": no run.json yet, so the run has no finished paths; export "
                               "after 'dipaco run' has finished");
  Result<RunSource> run =
      file_exists(manifest) ? open_dipaco_run(run_dir, manifest)
      : file_exists(dense)
          ? open_dense_run(run_dir, dense)
          : Result<RunSource>(not_found(run_dir + ": neither run.json nor checkpoint.safetensors "
                                                  "found; is this a run directory?"));
  if (!run.is_ok()) return run;
  if (!tokenizer_override.empty()) run->tokenizer = tokenizer_override;
  return run;
}

Result<std::vector<float>> read_path_params(const std::string& file, const ModelConfig& config) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::open(file));
  if (auto it = st.metadata().find("model_config"); it != st.metadata().end()) {
    auto stored = ModelConfig::parse(it->second);
    if (!stored.is_ok()) return stored.status().with_context(file + ": model_config");
    if (!(*stored == config))
      return invalid_argument(file + ": parameters are for a different model (file vs run: " +
                              stored->difference(config) + ")");
  }
  ParamLayout layout(config);
  std::vector<float> params(layout.total());
  for (const ParamTensor& t : layout.tensors()) {
    const SafetensorsTensor* s = st.find(t.name);
    if (s == nullptr) return data_loss(file + ": tensor '" + t.name + "' is missing");
    if (s->dtype != "F32")
      return data_loss(file + ": tensor '" + t.name + "' has dtype " + s->dtype + ", expected F32");
    if (s->shape != t.shape)
      return data_loss(file + ": tensor '" + t.name + "' has shape " + shape_string(s->shape) +
                       ", expected " + shape_string(t.shape));
    std::memcpy(params.data() + t.offset, st.data(*s), s->bytes);
    for (size_t i = 0; i < t.numel; ++i) {
      if (!std::isfinite(params[t.offset + i]))
        return data_loss(file + ": tensor '" + t.name + "' holds a non-finite value at index " +
                         std::to_string(i) + "; the checkpoint is corrupt or training diverged");
    }
  }
  return params;
}

}  // namespace dipaco
