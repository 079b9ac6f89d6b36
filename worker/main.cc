// dipaco-worker: the worker as an OS service: reads its config, checks the host (--check) or
// leases tasks from the coordinator until SIGTERM; SIGHUP re-reads the config file
// (worker_service.h, worker_reload.h).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cpu/blas_runtime.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cuda_runtime.h"
#include "path_task_runner.h"
#include "rpc/auth.h"
#include "util/arg_parser.h"
#include "worker_config.h"
#include "worker_reload.h"
#include "worker_service.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/dipaco/worker.toml";

// The exit code of a config or usage error: the systemd unit's RestartPreventExitStatus=2 stops
// restarting a worker that no restart can fix.
constexpr int kConfigError = 2;

// Prints what this host and config give a worker; returns the process exit code: 0 usable,
// kConfigError when the config cannot work on any host, 1 when this host lacks what it asks for.
int run_check(const dipaco::WorkerConfig& config, const std::string& config_source) {
  int problems = 0;
  int config_problems = 0;
  std::printf("config: %s\n", config_source.c_str());
  std::printf("cpu: %s\n", dipaco::describe_cpu_features(dipaco::cpu_features()).c_str());
  std::printf("blas kernels: %s\n", dipaco::blas_core_name().c_str());
  dipaco::CudaRuntimeInfo cuda = dipaco::probe_cuda();
  std::printf("cuda: %zu device(s)%s%s\n", cuda.devices.size(), cuda.devices.empty() ? ": " : "",
              cuda.unavailable_reason.c_str());
  for (int index : config.devices) {
    if (index >= static_cast<int>(cuda.devices.size())) {
      std::printf("error: [worker] devices lists CUDA device %d, which this host does not have\n",
                  index);
      ++problems;
    }
  }
  // The backends the worker will train on, made as its trainer makes them (one GPU, or the
  // island of its devices with their NCCL all-reduce). backend = "cuda" without a usable GPU
  // fails the check also when fallback_to_cpu lets the worker itself run on the CPU: this check
  // is what health checks (Docker HEALTHCHECK, Slurm, and the service itself at start) see, and a
  // GPU host training ~100x slower on its CPU must show up there. "auto" landing on the CPU only
  // warns.
  auto created = dipaco::create_island(dipaco::backend_choice(config));
  if (!created.is_ok()) {
    std::printf("error: %s\n", created.status().message().c_str());
    ++problems;
  } else {
    if (!created->note.empty()) {
      std::printf("warning: %s\n", created->note.c_str());
      if (config.backend == "cuda") {
        std::printf(
            "error: [worker] backend = \"cuda\" but no GPU is usable, so the worker would train "
            "on the CPU (fallback_to_cpu = true); fix the GPU (driver, container started with "
            "--gpus, device plugin) or set backend = \"cpu\" on a CPU worker\n");
        ++problems;
      } else if (config.backend == "auto") {
        std::printf(
            "warning: backend = \"auto\" trains on the CPU here; on a GPU host set backend = "
            "\"cuda\" so that this check fails when its GPU is lost\n");
      }
    }
    std::printf("backend: %s\n", created->name().c_str());
  }
  if (config.coordinator_address.empty()) {
    std::printf(
        "error: no [coordinator] address in %s; set address = \"HOST:PORT\" of the dipaco "
        "serve to lease tasks from\n",
        config_source.c_str());
    ++config_problems;
  } else {
    std::printf("coordinator: %s (%s)\n", config.coordinator_address.c_str(),
                config.tls ? "TLS" : "plaintext");
  }
  if (config.token_file.empty()) {
    std::printf(
        "error: no [coordinator] token_file in %s; every coordinator requires the worker token "
        "(the file given to dipaco serve --worker-token-file)\n",
        config_source.c_str());
    ++config_problems;
  }
  // The token, CA and client certificate files, read as the worker reads them.
  if (auto credentials = dipaco::read_worker_credentials(config); !credentials.is_ok()) {
    std::printf("error: %s\n", credentials.status().message().c_str());
    ++config_problems;
  } else if (!credentials->token.empty()) {
    // Compared with the fingerprints dipaco serve logs; the token itself is never printed.
    std::printf("token: sha256 %s (from %s)\n",
                dipaco::token_fingerprint(credentials->token).c_str(), config.token_file.c_str());
  }
  std::printf("%s\n", problems + config_problems == 0 ? "check: ok" : "check: FAILED");
  if (config_problems > 0) return kConfigError;
  return problems == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  dipaco::ensure_fast_blas_kernels(argv);  // may exec this program again: handlers after it
  // Before anything slow (the start-time check creates GPU contexts): a `systemctl reload`
  // meanwhile is handled once the service runs rather than killing the worker.
  dipaco::install_reload_signal_handler();
  // The check report goes to stdout; a journal or `docker logs` must see it when printed (with
  // its warnings), not when a block buffer fills or the worker exits.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  dipaco::prepare_gpu_environment();
  bool check = false;
  bool version = false;
  std::string config_path;
  dipaco::ArgParser parser("dipaco-worker",
                           "Lease tasks from a dipaco coordinator and train paths.");
  parser.add_flag(
      "--check",
      "check the config, the token file and this host, then exit (0 when usable); offline: the "
      "coordinator is not contacted, so its outage does not fail a health check",
      &check);
  parser.add_flag("--version", "print the version and exit", &version);
  parser.add_option("--config", "FILE",
                    std::string("worker config (TOML), default ") + kDefaultConfig, &config_path);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (dipaco::Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco-worker: %s\n", s.message().c_str());
    return kConfigError;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return 0;
  }
  if (version) {
    std::printf("dipaco-worker %s\n", DIPACO_VERSION);
    return 0;
  }

  // An explicit --config must exist; the default may be absent (built-in defaults then).
  dipaco::WorkerConfig config;
  std::string source = "built-in defaults (no " + std::string(kDefaultConfig) + ")";
  std::string path = config_path.empty() ? kDefaultConfig : config_path;
  if (!config_path.empty() || std::filesystem::exists(path)) {
    auto loaded = dipaco::load_worker_config(path);
    if (!loaded.is_ok()) {
      std::fprintf(stderr, "dipaco-worker: %s\n", loaded.status().message().c_str());
      return kConfigError;
    }
    config = std::move(loaded).value();
    source = path;
  }
  if (check) return run_check(config, source);
  // The service makes every check --check makes, with the same exit codes (2: the config, which
  // the systemd unit does not restart; 1: this host, e.g. its GPU is gone, which it restarts),
  // before it leases anything: the unit needs no ExecStartPre, whose exit codes systemd's
  // RestartPreventExitStatus never sees.
  if (int problems = run_check(config, source); problems != 0) return problems;
  dipaco::install_path_task_runner();
  return dipaco::run_worker_service(config, "dipaco-worker",
                                    [path] { return dipaco::load_worker_config(path); });
}
