// What a SIGHUP config reload changes in a running worker (worker_service.h does the reload).
//
// The decision is a pure function of the running config and the re-read one, so it is tested
// without a process or a network. Each key takes effect at one of three times:
//   now              [worker] log_level, stop_grace_s (a stop already under way keeps its grace)
//   next connection  [coordinator] address, token_file (and the token file's contents), tls,
//                    ca_file, client_cert_file, client_key_file (and those files' contents),
//                    server_name, backoff_initial_ms, backoff_max_ms, rpc_timeout_ms;
//                    [worker] max_tasks, stall_timeout_s.
//                    The worker finishes and pushes the task it is running (never interrupted),
//                    then connects again with them; an idle or retrying worker does so at once.
//   needs restart    [worker] id, cache_dir, backend, devices, cpu_threads, fallback_to_cpu,
//                    max_memory_gib, runner, fake_step_ms: they shape the trainer and its caches,
//                    which live as long as the process. The running value is kept and a warning
//                    says so.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"
#include "worker_config.h"

namespace dipaco {

// The contents of the files a config names for connecting (token, CA, client certificate and
// key), read when the config is loaded, so that a token or certificate rotated in place counts
// as a change. "" for a file the config does not name.
struct WorkerCredentials {
  std::string token;
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;

  bool operator==(const WorkerCredentials&) const = default;
};

// Reads the files `config` names; errors name the file and the key.
Result<WorkerCredentials> read_worker_credentials(const WorkerConfig& config);

enum class ReloadTiming { kNow, kNextConnection, kNeedsRestart };

struct ReloadChange {
  std::string key;  // "[coordinator] address", "[coordinator] token_file contents"
  ReloadTiming timing = ReloadTiming::kNow;
  std::string running_value;  // shown in logs; "(secret)" for file contents
  std::string loaded_value;
};

struct ReloadPlan {
  std::vector<ReloadChange> changes;  // in the order of worker_config.h
  // What the worker runs with from now on: the loaded values, except the running ones for keys
  // that need a restart.
  WorkerConfig next_config;
  WorkerCredentials next_credentials;

  bool has(ReloadTiming timing) const;
  // True when the worker must connect again (after its running task) to apply the plan.
  bool reconnect() const { return has(ReloadTiming::kNextConnection); }
};

ReloadPlan plan_worker_reload(const WorkerConfig& running,
                              const WorkerCredentials& running_credentials,
                              const WorkerConfig& loaded,
                              const WorkerCredentials& loaded_credentials);

// One log line for a change, e.g.
//   "[worker] log_level: info -> debug (applied now)"
//   "[coordinator] address: a:1 -> b:2 (applies when the worker next connects, after its
//    running task)"
//   "[worker] cache_dir: /x -> /y (needs a restart; still using /x)"
std::string describe_reload_change(const ReloadChange& change);

}  // namespace dipaco
