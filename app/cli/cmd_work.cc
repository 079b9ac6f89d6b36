// dipaco work: a worker in the foreground. Same code as the dipaco-worker service
// (worker/worker_service.h); flags override the config file's keys. With --config, SIGHUP
// re-reads the file (flags still win).
#include <cstdio>

#include "cli/commands.h"
#include "path_task_runner.h"
#include "util/arg_parser.h"
#include "worker_config.h"
#include "worker_service.h"

namespace dipaco::cli {

int cmd_work(const Args& args) {
  std::string config_path, address, token_file, ca_file, cache_dir, worker_id, runner;
  int64_t fake_step_ms = -1, max_tasks = -1, threads = -1;
  bool insecure = false;
  ArgParser parser("dipaco work", "Run a worker in the foreground against a coordinator.");
  parser.add_option("--config", "FILE",
                    "worker config (TOML, as /etc/dipaco/worker.toml); SIGHUP reloads it",
                    &config_path);
  parser.add_option("--address", "HOST:PORT", "coordinator address", &address);
  parser.add_option("--token-file", "FILE", "worker bearer token", &token_file);
  parser.add_option("--ca-file", "FILE", "CA of the coordinator's certificate", &ca_file);
  parser.add_flag("--insecure", "plaintext (coordinator started with --insecure)", &insecure);
  parser.add_option("--cache-dir", "DIR", "module and shard cache", &cache_dir);
  parser.add_option(
      "--worker-id", "ID",
      "stable worker id (default: hostname; several workers on one host need one each, e.g. "
      "hostname-gpu0)",
      &worker_id);
  parser.add_choice("--runner", {"train", "fake"}, "train, or fake (protocol tests)", &runner);
  parser.add_option("--fake-step-ms", "MS", "fake runner: sleep per inner step", &fake_step_ms, 0,
                    3600000);
  parser.add_option("--threads", "N", "CPU threads for training (0 = all cores)", &threads, 0,
                    1024);
  parser.add_option("--max-tasks", "N", "stop after N tasks (0 = until stopped)", &max_tasks, 0,
                    INT64_MAX);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco work: %s\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  // Flags win over the file, on start and on every SIGHUP reload.
  auto apply_flags = [&](WorkerConfig config) {
    if (!address.empty()) config.coordinator_address = address;
    if (!token_file.empty()) config.token_file = token_file;
    if (!ca_file.empty()) config.ca_file = ca_file;
    if (insecure) config.tls = false;
    if (!cache_dir.empty()) config.cache_dir = cache_dir;
    if (!worker_id.empty()) config.worker_id = worker_id;
    if (!runner.empty()) config.runner = runner;
    if (fake_step_ms >= 0) config.fake_step_ms = fake_step_ms;
    if (max_tasks >= 0) config.max_tasks = max_tasks;
    if (threads >= 0) config.cpu_threads = static_cast<int>(threads);
    return config;
  };
  WorkerConfig config;
  WorkerConfigLoader reload;  // SIGHUP reloads only a worker started with --config
  if (!config_path.empty()) {
    auto loaded = load_worker_config(config_path);
    if (!loaded.is_ok()) {
      std::fprintf(stderr, "dipaco work: %s\n", loaded.status().message().c_str());
      return kExitFailure;
    }
    config = std::move(loaded).value();
    reload = [config_path, apply_flags]() -> Result<WorkerConfig> {
      DIPACO_ASSIGN_OR_RETURN(WorkerConfig reloaded, load_worker_config(config_path));
      return apply_flags(std::move(reloaded));
    };
  }
  install_path_task_runner();
  return run_worker_service(apply_flags(std::move(config)), "dipaco work", std::move(reload));
}

}  // namespace dipaco::cli
