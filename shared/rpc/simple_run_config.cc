#include "rpc/simple_run_config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <memory>
#include <mutex>

#include "util/sha256.h"
#include "util/toml_table.h"

namespace dipaco {
namespace {

struct Reader {
  const std::string& source;

  template <typename T>
  Status get(const toml::table& table, const std::string& where, const char* key, T* out,
             bool required = false) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) {
      if (required) return invalid_argument(source + ": " + where + key + " is required");
      return Status::ok();
    }
    std::optional<T> value = node->value<T>();
    if (!value) return invalid_argument(source + ": " + where + key + " has the wrong type");
    *out = *value;
    return Status::ok();
  }

  Status get_u64(const toml::table& table, const std::string& where, const char* key, uint64_t* out,
                 bool required = false) const {
    int64_t value = static_cast<int64_t>(*out);
    DIPACO_RETURN_IF_ERROR(get(table, where, key, &value, required));
    if (value < 0) return invalid_argument(source + ": " + where + key + " must be >= 0");
    *out = static_cast<uint64_t>(value);
    return Status::ok();
  }

  Status get_u32(const toml::table& table, const std::string& where, const char* key, uint32_t* out,
                 bool required = false) const {
    uint64_t value = *out;
    DIPACO_RETURN_IF_ERROR(get_u64(table, where, key, &value, required));
    if (value > UINT32_MAX) return invalid_argument(source + ": " + where + key + " is too large");
    *out = static_cast<uint32_t>(value);
    return Status::ok();
  }
};

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

}  // namespace

Result<SimpleRun> parse_simple_run(const std::string& toml_text, const std::string& source_name,
                                   const std::string& base_dir) {
  DIPACO_ASSIGN_OR_RETURN(toml::table root, parse_toml(toml_text, source_name));
  Reader r{source_name};
  SimpleRun run;
  RunSpec& spec = run.spec;
  spec.config = toml_text;
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "name", &spec.name));
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "request_id", &spec.request_id));
  DIPACO_RETURN_IF_ERROR(r.get_u64(root, "", "outer_steps", &spec.outer_steps));
  DIPACO_RETURN_IF_ERROR(r.get_u32(root, "", "inner_steps", &spec.inner_steps));
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "lease_timeout_ms", &spec.lease_timeout_ms));
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "max_lease_ms", &spec.max_lease_ms));
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "partial_after_ms", &spec.partial.after_ms));
  DIPACO_RETURN_IF_ERROR(r.get(root, "", "partial_min_fraction", &spec.partial.min_fraction));

  TaskConfig& task = run.task;
  if (const toml::table* t = root["task"].as_table()) {
    const std::string w = "[task] ";
    DIPACO_RETURN_IF_ERROR(r.get_u32(*t, w, "batch_size", &task.batch_size));
    DIPACO_RETURN_IF_ERROR(r.get_u32(*t, w, "seq_len", &task.seq_len));
    DIPACO_RETURN_IF_ERROR(r.get_u64(*t, w, "data_seed", &task.data_seed));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "model_config", &task.model_config_toml));
    std::string dtype = wire_dtype_name(task.gradient_dtype);
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "gradient_dtype", &dtype));
    auto parsed = parse_wire_dtype(dtype);
    if (!parsed.is_ok())
      return parsed.status().with_context(source_name + ": [task] gradient_dtype");
    task.gradient_dtype = *parsed;
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "lr", &task.inner.lr));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "beta1", &task.inner.beta1));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "beta2", &task.inner.beta2));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "eps", &task.inner.eps));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "weight_decay", &task.inner.weight_decay));
    DIPACO_RETURN_IF_ERROR(r.get(*t, w, "grad_clip", &task.inner.grad_clip));
    DIPACO_RETURN_IF_ERROR(r.get_u32(*t, w, "warmup_steps", &task.inner.warmup_steps));
  }

  const toml::array* modules = root["modules"].as_array();
  if (modules == nullptr) return invalid_argument(source_name + ": no [[modules]]");
  for (size_t i = 0; i < modules->size(); ++i) {
    const toml::table* m = (*modules)[i].as_table();
    std::string w = "modules[" + std::to_string(i) + "].";
    if (m == nullptr) return invalid_argument(source_name + ": " + w + " is not a table");
    ModuleSpec module;
    ModuleLayout layout;
    DIPACO_RETURN_IF_ERROR(r.get_u32(*m, w, "id", &module.module_id, true));
    DIPACO_RETURN_IF_ERROR(r.get_u32(*m, w, "level", &module.level));
    DIPACO_RETURN_IF_ERROR(r.get_u32(*m, w, "index", &module.index));
    DIPACO_RETURN_IF_ERROR(r.get_u64(*m, w, "num_params", &layout.num_params, true));
    DIPACO_RETURN_IF_ERROR(r.get_u64(*m, w, "param_offset", &layout.param_offset));
    DIPACO_RETURN_IF_ERROR(r.get(*m, w, "checkpoint", &module.initial_checkpoint, true));
    module.initial_checkpoint = resolve(base_dir, module.initial_checkpoint);
    if (layout.num_params == 0)
      return invalid_argument(source_name + ": " + w + "num_params must be > 0");
    task.modules[module.module_id] = layout;
    spec.modules.push_back(std::move(module));
  }

  const toml::array* paths = root["paths"].as_array();
  if (paths == nullptr) return invalid_argument(source_name + ": no [[paths]]");
  for (size_t i = 0; i < paths->size(); ++i) {
    const toml::table* p = (*paths)[i].as_table();
    std::string w = "paths[" + std::to_string(i) + "].";
    if (p == nullptr) return invalid_argument(source_name + ": " + w + " is not a table");
    PathSpec path;
    DIPACO_RETURN_IF_ERROR(r.get_u32(*p, w, "id", &path.path_id, true));
    const toml::array* ids = (*p)["modules"].as_array();
    if (ids == nullptr) return invalid_argument(source_name + ": " + w + "modules is required");
    for (const toml::node& id : *ids) {
      std::optional<int64_t> value = id.value<int64_t>();
      if (!value || *value < 0)
        return invalid_argument(source_name + ": " + w + "modules must hold module ids");
      path.module_ids.push_back(static_cast<uint32_t>(*value));
    }
    const toml::array* shards = (*p)["shards"].as_array();
    if (shards == nullptr) return invalid_argument(source_name + ": " + w + "shards is required");
    for (size_t j = 0; j < shards->size(); ++j) {
      const toml::table* s = (*shards)[j].as_table();
      std::string ws = w + "shards[" + std::to_string(j) + "].";
      if (s == nullptr) return invalid_argument(source_name + ": " + ws + " is not a table");
      ShardSpec shard;
      std::string file;
      DIPACO_RETURN_IF_ERROR(r.get_u32(*s, ws, "id", &shard.shard_id, true));
      DIPACO_RETURN_IF_ERROR(r.get_u64(*s, ws, "tokens", &shard.tokens));
      DIPACO_RETURN_IF_ERROR(r.get(*s, ws, "file", &file));
      if (!file.empty()) run.shard_files[shard.shard_id] = resolve(base_dir, file);
      path.shards.push_back(shard);
    }
    spec.paths.push_back(std::move(path));
  }
  Status valid = validate_run_spec(spec);
  if (!valid.is_ok()) return valid.with_context(source_name);
  return run;
}

Result<SimpleRun> plan_simple_run(const std::string& toml_text, const std::string& source_name,
                                  const std::string& base_dir) {
  DIPACO_ASSIGN_OR_RETURN(SimpleRun run, parse_simple_run(toml_text, source_name, base_dir));
  for (ModuleSpec& module : run.spec.modules) {
    auto digest = sha256_file(module.initial_checkpoint);
    if (!digest.is_ok())
      return digest.status().with_context(source_name + ": module " +
                                          std::to_string(module.module_id) + " checkpoint");
    module.initial_sha256 = to_hex(*digest);
  }
  return run;
}

RunHooks simple_run_hooks(const std::string& base_dir) {
  struct Cache {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<const SimpleRun>> runs;  // by config text
  };
  auto cache = std::make_shared<Cache>();
  auto parsed = [cache, base_dir](
                    int64_t run_id,
                    const std::string& config) -> Result<std::shared_ptr<const SimpleRun>> {
    std::lock_guard lock(cache->mutex);
    auto found = cache->runs.find(config);
    if (found != cache->runs.end()) return found->second;
    auto run = parse_simple_run(config, "run " + std::to_string(run_id) + " config", base_dir);
    if (!run.is_ok()) return run.status();
    auto shared = std::make_shared<const SimpleRun>(std::move(run).value());
    cache->runs[config] = shared;
    return shared;
  };
  RunHooks hooks;
  hooks.plan_run = [base_dir](const std::string& grid_toml) -> Result<RunSpec> {
    DIPACO_ASSIGN_OR_RETURN(SimpleRun run, plan_simple_run(grid_toml, "CreateRun grid", base_dir));
    return run.spec;
  };
  hooks.task_config = [parsed](int64_t run_id, const std::string& config) -> Result<TaskConfig> {
    DIPACO_ASSIGN_OR_RETURN(auto run, parsed(run_id, config));
    return run->task;
  };
  hooks.shard_file = [parsed](int64_t run_id, const std::string& config,
                              uint32_t shard_id) -> Result<std::string> {
    DIPACO_ASSIGN_OR_RETURN(auto run, parsed(run_id, config));
    auto found = run->shard_files.find(shard_id);
    if (found == run->shard_files.end())
      return not_found("run " + std::to_string(run_id) + " has no file for shard " +
                       std::to_string(shard_id));
    return found->second;
  };
  return hooks;
}

}  // namespace dipaco
