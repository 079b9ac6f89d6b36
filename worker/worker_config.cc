#include "worker_config.h"

#include <toml++/toml.h>

#include <set>
#include <string_view>

#include "rpc/address.h"
#include "util/arg_parser.h"
#include "util/atomic_file.h"
#include "util/toml_table.h"

namespace dipaco {
namespace {

constexpr int64_t kMaxBackoffMs = 3600000;     // an hour between retries is already too long
constexpr int64_t kMinRpcTimeoutMs = 1000;     // below this a busy coordinator times out calls
constexpr int64_t kMaxRpcTimeoutMs = 3600000;  // a dead coordinator must be noticed in an hour
constexpr double kMaxSeconds = 7 * 24 * 3600;  // stall_timeout_s, stop_grace_s: a week at most

// Unknown keys are errors (a typo must not silently fall back to a default).
Status check_keys(const toml::table& table, const std::string& section,
                  const std::set<std::string>& known, const std::string& source) {
  for (const auto& [key, value] : table) {
    std::string name(key.str());
    if (known.count(name) != 0) continue;
    std::string hint;
    for (const auto& candidate : known) {
      if (edit_distance(name, candidate) <= 2) hint = " (did you mean '" + candidate + "'?)";
    }
    return invalid_argument(source + ": unknown key '" + section + name + "'" + hint);
  }
  return Status::ok();
}

template <typename T>
Status read_value(const toml::table& table, const std::string& section, const char* key,
                  const std::string& source, T* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::ok();
  std::optional<T> value = node->value<T>();
  if (!value) {
    return invalid_argument(source + ": [" + section + "] " + key + " has the wrong type");
  }
  *out = *value;
  return Status::ok();
}

}  // namespace

Result<WorkerConfig> parse_worker_config(const std::string& toml_text,
                                         const std::string& source_name) {
  DIPACO_ASSIGN_OR_RETURN(toml::table root, parse_toml(toml_text, source_name));
  DIPACO_RETURN_IF_ERROR(check_keys(root, "", {"coordinator", "worker"}, source_name));
  WorkerConfig config;
  if (const toml::table* c = root["coordinator"].as_table()) {
    DIPACO_RETURN_IF_ERROR(check_keys(
        *c, "coordinator.",
        {"address", "token_file", "tls", "ca_file", "client_cert_file", "client_key_file",
         "server_name", "backoff_initial_ms", "backoff_max_ms", "rpc_timeout_ms"},
        source_name));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "client_cert_file", source_name, &config.client_cert_file));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "client_key_file", source_name, &config.client_key_file));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "server_name", source_name, &config.server_name));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "address", source_name, &config.coordinator_address));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "token_file", source_name, &config.token_file));
    DIPACO_RETURN_IF_ERROR(read_value(*c, "coordinator", "tls", source_name, &config.tls));
    DIPACO_RETURN_IF_ERROR(read_value(*c, "coordinator", "ca_file", source_name, &config.ca_file));
    DIPACO_RETURN_IF_ERROR(read_value(*c, "coordinator", "backoff_initial_ms", source_name,
                                      &config.backoff_initial_ms));
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "backoff_max_ms", source_name, &config.backoff_max_ms));
    if (config.backoff_initial_ms < 1 || config.backoff_max_ms < config.backoff_initial_ms ||
        config.backoff_max_ms > kMaxBackoffMs) {
      return invalid_argument(
          source_name + ": [coordinator] needs 1 <= backoff_initial_ms <= backoff_max_ms <= " +
          std::to_string(kMaxBackoffMs) + ", got " + std::to_string(config.backoff_initial_ms) +
          " and " + std::to_string(config.backoff_max_ms));
    }
    DIPACO_RETURN_IF_ERROR(
        read_value(*c, "coordinator", "rpc_timeout_ms", source_name, &config.rpc_timeout_ms));
    if (config.rpc_timeout_ms < kMinRpcTimeoutMs || config.rpc_timeout_ms > kMaxRpcTimeoutMs) {
      return invalid_argument(source_name + ": [coordinator] rpc_timeout_ms must be between " +
                              std::to_string(kMinRpcTimeoutMs) + " and " +
                              std::to_string(kMaxRpcTimeoutMs) + " (milliseconds), got " +
                              std::to_string(config.rpc_timeout_ms));
    }
  }
  if (const toml::table* w = root["worker"].as_table()) {
    DIPACO_RETURN_IF_ERROR(
        check_keys(*w, "worker.",
                   {"id", "cache_dir", "backend", "devices", "cpu_threads", "fallback_to_cpu",
                    "max_memory_gib", "runner", "fake_step_ms", "max_tasks", "stall_timeout_s",
                    "stop_grace_s", "log_level"},
                   source_name));
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "id", source_name, &config.worker_id));
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "cache_dir", source_name, &config.cache_dir));
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "backend", source_name, &config.backend));
    int64_t threads = config.cpu_threads;
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "cpu_threads", source_name, &threads));
    DIPACO_RETURN_IF_ERROR(
        read_value(*w, "worker", "fallback_to_cpu", source_name, &config.fallback_to_cpu));
    DIPACO_RETURN_IF_ERROR(
        read_value(*w, "worker", "max_memory_gib", source_name, &config.max_memory_gib));
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "runner", source_name, &config.runner));
    DIPACO_RETURN_IF_ERROR(
        read_value(*w, "worker", "fake_step_ms", source_name, &config.fake_step_ms));
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "max_tasks", source_name, &config.max_tasks));
    DIPACO_RETURN_IF_ERROR(
        read_value(*w, "worker", "stall_timeout_s", source_name, &config.stall_timeout_s));
    DIPACO_RETURN_IF_ERROR(
        read_value(*w, "worker", "stop_grace_s", source_name, &config.stop_grace_s));
    for (auto [key, seconds] : {std::pair{"stall_timeout_s", config.stall_timeout_s},
                                std::pair{"stop_grace_s", config.stop_grace_s}}) {
      if (!(seconds >= 0 && seconds <= kMaxSeconds)) {
        return invalid_argument(source_name + ": [worker] " + key + " must be in [0, " +
                                std::to_string(static_cast<int64_t>(kMaxSeconds)) +
                                "] seconds, got " + std::to_string(seconds));
      }
    }
    DIPACO_RETURN_IF_ERROR(read_value(*w, "worker", "log_level", source_name, &config.log_level));
    if (!config.log_level.empty() && !worker_log_level(config.log_level)) {
      return invalid_argument(
          source_name + ": [worker] log_level must be one of debug|info|warning|error, got '" +
          config.log_level + "'");
    }
    if (config.runner != "train" && config.runner != "fake")
      return invalid_argument(source_name + ": [worker] runner must be train or fake, got '" +
                              config.runner + "'");
    if (config.fake_step_ms < 0 || config.max_tasks < 0)
      return invalid_argument(source_name + ": [worker] fake_step_ms and max_tasks must be >= 0");
    if (threads < 0 || threads > 4096) {
      return invalid_argument(source_name + ": [worker] cpu_threads must be in [0, 4096], got " +
                              std::to_string(threads));
    }
    config.cpu_threads = static_cast<int>(threads);
    if (const toml::node* devices = w->get("devices")) {
      const toml::array* list = devices->as_array();
      if (list == nullptr) {
        return invalid_argument(source_name + ": [worker] devices must be a list of integers");
      }
      for (const toml::node& item : *list) {
        std::optional<int64_t> index = item.value<int64_t>();
        if (!index || *index < 0 || *index > 1023) {
          return invalid_argument(source_name +
                                  ": [worker] devices must hold CUDA device indices (0, 1, ...)");
        }
        config.devices.push_back(static_cast<int>(*index));
      }
    }
  }
  if (config.backend != "auto" && config.backend != "cpu" && config.backend != "cuda") {
    return invalid_argument(source_name + ": [worker] backend must be one of auto|cpu|cuda, got '" +
                            config.backend + "'");
  }
  // Nothing limits the trainer's memory yet: a budget that would be silently ignored is refused
  // (0, the value configs written before this check carry, means no limit of our own).
  if (config.max_memory_gib != 0) {
    return invalid_argument(source_name +
                            ": [worker] max_memory_gib is not supported yet; remove it (the "
                            "worker does not limit its memory; use the container's or the "
                            "unit's limit, e.g. systemd MemoryMax= or a Kubernetes memory limit)");
  }
  if (!config.coordinator_address.empty()) {
    if (Status s = check_dial_address(config.coordinator_address); !s)
      return s.with_context(source_name + ": [coordinator] address");
  }
  return config;
}

std::optional<LogLevel> worker_log_level(const std::string& name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

Result<WorkerConfig> load_worker_config(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_worker_config(text, path);
}

BackendChoice backend_choice(const WorkerConfig& config) {
  BackendChoice choice;
  (void)parse_backend_name(config.backend, &choice);  // auto | cpu | cuda, checked on parse
  if (!config.devices.empty()) choice.device = config.devices.front();
  choice.island_devices = config.devices;
  choice.island_all_devices = config.devices.empty();
  choice.cpu_threads = config.cpu_threads;
  choice.fallback_to_cpu = config.fallback_to_cpu;
  return choice;
}

std::string worker_id_or_default(const WorkerConfig& config, const std::string& host) {
  return config.worker_id.empty() ? host : config.worker_id;
}

}  // namespace dipaco
