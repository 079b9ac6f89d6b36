// WorkerConfig: the worker's TOML config file (/etc/dipaco/worker.toml by default).
//
//   [coordinator]
//   address = "coordinator.example:7443"   # host:port of `dipaco serve` (or [v6]:port,
//                                           #   unix:/path: check_dial_address, rpc/address.h)
//   token_file = "/etc/dipaco/worker.token" # bearer token of the worker role
//   tls = true                              # false only for loopback
//   ca_file = ""                            # extra CA bundle for the coordinator's cert
//   client_cert_file = ""                   # PEM client certificate when the coordinator
//   client_key_file = ""                    #   requires mTLS, and its key
//   server_name = ""                        # TLS name to verify instead of the address host
//   backoff_initial_ms = 100                # retry after a failed call: first wait, doubling
//   backoff_max_ms = 5000                   #   up to this (with full jitter)
//   rpc_timeout_ms = 30000                  # deadline of each call and download stream;
//                                           #   a push stream gets this plus 1 s per MiB
//   [worker]
//   id = ""                                 # stable worker id; default: hostname (set one
//                                           #   per process, e.g. "hostname-gpu0", when a
//                                           #   host runs several workers)
//   cache_dir = "/var/cache/dipaco"     # module and shard cache
//   backend = "auto"                        # auto | cpu | cuda
//   devices = []                            # CUDA device indices; empty = all usable. Several GPUs
//                                           #   train each path together as one island (NCCL
//                                           #   all-reduce, data parallel inside the path)
//   cpu_threads = 0                         # 0 = all cores
//   fallback_to_cpu = false                 # run on CPU when CUDA is unusable
//   max_memory_gib = 0                      # not supported yet: only 0 (no limit) is accepted
//   runner = "train"                        # train (the path trainer) | fake (protocol tests)
//   fake_step_ms = 0                        # fake runner: sleep per inner step
//   max_tasks = 0                           # stop after this many tasks; 0 = run until stopped
//   stall_timeout_s = 600                   # a task whose trainer makes no progress (no inner
//                                           #   step) this long is cancelled and its lease handed
//                                           #   back; counted only while training, from the last
//                                           #   inner step. 0 = never. Fractions allowed.
//   stop_grace_s = 90                       # after the first SIGTERM/SIGINT the running task
//                                           #   has this long to finish and push; then its lease
//                                           #   is handed back and the worker exits. Must stay
//                                           #   below the orchestrator's stop timeout (systemd
//                                           #   TimeoutStopSec, Kubernetes
//                                           #   terminationGracePeriodSeconds, Slurm --signal).
//                                           #   0 = hand it back at once.
//   log_level = ""                          # debug | info | warning | error; "" = as
//                                           #   DIPACO_LOG_LEVEL says (info when unset)
//
// Defaults are written once, here and in worker_config.cc; errors name the key and the file.
// Which keys a SIGHUP reload changes in a running worker is decided in worker_reload.cc: a new
// key must be classified there too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend_factory.h"
#include "util/log.h"
#include "util/status.h"

namespace dipaco {

struct WorkerConfig {
  std::string coordinator_address;
  std::string token_file;
  bool tls = true;
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
  std::string server_name;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
  int64_t rpc_timeout_ms = 30000;
  std::string worker_id;
  std::string cache_dir = "/var/cache/dipaco";
  std::string backend = "auto";
  std::vector<int> devices;
  int cpu_threads = 0;
  bool fallback_to_cpu = false;
  double max_memory_gib = 0.0;
  std::string runner = "train";
  int64_t fake_step_ms = 0;
  int64_t max_tasks = 0;
  double stall_timeout_s = 600.0;
  double stop_grace_s = 90.0;
  std::string log_level;
};

// Parses TOML text; `source_name` names the file in errors ("worker.toml: [worker] backend
// must be one of auto|cpu|cuda, got 'gpu'").
Result<WorkerConfig> parse_worker_config(const std::string& toml_text,
                                         const std::string& source_name);
Result<WorkerConfig> load_worker_config(const std::string& path);

// What the worker trains on: backend, devices (the first for create_backend, all of them for
// create_island; none = every usable GPU, place_on_usable_gpus), cpu_threads and fallback_to_cpu
// (backend/backend_factory.h). The backend name was validated by the parser.
BackendChoice backend_choice(const WorkerConfig& config);

// DIPACO_CPU_ISLAND_REPLICAS (cpu_island_replicas_from_environment, backend_factory.h), for
// tests and demos of islands without GPUs: a worker that trains on the CPU (asked for or fallen
// back to) trains each path on this many CPU replicas in one island. Not in the config file: an
// island of CPU replicas is only useful to watch the island code run.

// The id this worker registers with: [worker] id, else `host`. Not derived from [worker] devices:
// an upgrade must not rename a fleet's workers (drains and task affinity are kept by id). Several
// worker processes on one host each set their own id (e.g. "gpu7-gpu0"); the coordinator refuses
// a second process with an id it still hears from, and its message says so.
std::string worker_id_or_default(const WorkerConfig& config, const std::string& host);

// The level a [worker] log_level names; nullopt for "" (not set) and for unknown names.
std::optional<LogLevel> worker_log_level(const std::string& name);

}  // namespace dipaco
