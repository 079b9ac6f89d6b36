#include "worker_reload.h"

#include <sstream>

#include "rpc/auth.h"
#include "util/atomic_file.h"

namespace dipaco {
namespace {

std::string shown(const std::string& value) {
  return "\"" + value + "\"";
}
std::string shown(bool value) {
  return value ? "true" : "false";
}
std::string shown(int value) {
  return std::to_string(value);
}
std::string shown(int64_t value) {
  return std::to_string(value);
}
std::string shown(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}
std::string shown(const std::vector<int>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
  return text + "]";
}

// Compares one key; a key that needs a restart keeps its running value in the next config.
class Planner {
 public:
  Planner(const WorkerConfig& running, const WorkerConfig& loaded, ReloadPlan* plan)
      : running_(running), loaded_(loaded), plan_(plan) {
    plan_->next_config = loaded;
  }

  template <typename T>
  void key(const char* name, ReloadTiming timing, T WorkerConfig::*field) {
    if (running_.*field == loaded_.*field) return;
    plan_->changes.push_back({name, timing, shown(running_.*field), shown(loaded_.*field)});
    if (timing == ReloadTiming::kNeedsRestart) plan_->next_config.*field = running_.*field;
  }

 private:
  const WorkerConfig& running_;
  const WorkerConfig& loaded_;
  ReloadPlan* plan_;
};

Result<std::string> read_named_file(const std::string& path, const char* key) {
  if (path.empty()) return std::string();
  auto text = read_file(path);
  if (!text.is_ok()) {
    return Status(text.status().code(),
                  std::string("[coordinator] ") + key + ": " + text.status().message());
  }
  return text;
}

}  // namespace

Result<WorkerCredentials> read_worker_credentials(const WorkerConfig& config) {
  WorkerCredentials credentials;
  if (!config.token_file.empty()) {
    auto token = read_token_file(config.token_file);
    if (!token.is_ok()) {
      return Status(token.status().code(), "[coordinator] token_file: " + token.status().message());
    }
    credentials.token = std::move(token).value();
  }
  DIPACO_ASSIGN_OR_RETURN(credentials.ca_pem, read_named_file(config.ca_file, "ca_file"));
  DIPACO_ASSIGN_OR_RETURN(credentials.client_cert_pem,
                          read_named_file(config.client_cert_file, "client_cert_file"));
  DIPACO_ASSIGN_OR_RETURN(credentials.client_key_pem,
                          read_named_file(config.client_key_file, "client_key_file"));
  return credentials;
}

bool ReloadPlan::has(ReloadTiming timing) const {
  for (const ReloadChange& change : changes) {
    if (change.timing == timing) return true;
  }
  return false;
}

ReloadPlan plan_worker_reload(const WorkerConfig& running,
                              const WorkerCredentials& running_credentials,
                              const WorkerConfig& loaded,
                              const WorkerCredentials& loaded_credentials) {
  using enum ReloadTiming;
  ReloadPlan plan;
  Planner p(running, loaded, &plan);
  p.key("[coordinator] address", kNextConnection, &WorkerConfig::coordinator_address);
  p.key("[coordinator] token_file", kNextConnection, &WorkerConfig::token_file);
  p.key("[coordinator] tls", kNextConnection, &WorkerConfig::tls);
  p.key("[coordinator] ca_file", kNextConnection, &WorkerConfig::ca_file);
  p.key("[coordinator] client_cert_file", kNextConnection, &WorkerConfig::client_cert_file);
  p.key("[coordinator] client_key_file", kNextConnection, &WorkerConfig::client_key_file);
  p.key("[coordinator] server_name", kNextConnection, &WorkerConfig::server_name);
  p.key("[coordinator] backoff_initial_ms", kNextConnection, &WorkerConfig::backoff_initial_ms);
  p.key("[coordinator] backoff_max_ms", kNextConnection, &WorkerConfig::backoff_max_ms);
  p.key("[coordinator] rpc_timeout_ms", kNextConnection, &WorkerConfig::rpc_timeout_ms);
  p.key("[worker] id", kNeedsRestart, &WorkerConfig::worker_id);
  p.key("[worker] cache_dir", kNeedsRestart, &WorkerConfig::cache_dir);
  p.key("[worker] backend", kNeedsRestart, &WorkerConfig::backend);
  p.key("[worker] devices", kNeedsRestart, &WorkerConfig::devices);
  p.key("[worker] cpu_threads", kNeedsRestart, &WorkerConfig::cpu_threads);
  p.key("[worker] fallback_to_cpu", kNeedsRestart, &WorkerConfig::fallback_to_cpu);
  p.key("[worker] max_memory_gib", kNeedsRestart, &WorkerConfig::max_memory_gib);
  p.key("[worker] runner", kNeedsRestart, &WorkerConfig::runner);
  p.key("[worker] fake_step_ms", kNeedsRestart, &WorkerConfig::fake_step_ms);
  p.key("[worker] max_tasks", kNextConnection, &WorkerConfig::max_tasks);
  p.key("[worker] stall_timeout_s", kNextConnection, &WorkerConfig::stall_timeout_s);
  p.key("[worker] stop_grace_s", kNow, &WorkerConfig::stop_grace_s);
  p.key("[worker] log_level", kNow, &WorkerConfig::log_level);

  // The same paths with new contents (a token or certificate rotated in place).
  auto contents = [&](const char* key, std::string WorkerCredentials::*field) {
    if (running_credentials.*field == loaded_credentials.*field) return;
    plan.changes.push_back({key, kNextConnection, "(old)", "(new)"});
  };
  contents("[coordinator] token_file contents", &WorkerCredentials::token);
  contents("[coordinator] ca_file contents", &WorkerCredentials::ca_pem);
  contents("[coordinator] client_cert_file contents", &WorkerCredentials::client_cert_pem);
  contents("[coordinator] client_key_file contents", &WorkerCredentials::client_key_pem);
  plan.next_credentials = loaded_credentials;
  return plan;
}

std::string describe_reload_change(const ReloadChange& change) {
  std::string text = change.key + ": " + change.running_value + " -> " + change.loaded_value;
  switch (change.timing) {
    case ReloadTiming::kNow: return text + " (applied now)";
    case ReloadTiming::kNextConnection:
      return text + " (applies when the worker next connects, after its running task)";
    case ReloadTiming::kNeedsRestart:
      return text + " (needs a restart; still using " + change.running_value + ")";
  }
  return text;
}

}  // namespace dipaco
