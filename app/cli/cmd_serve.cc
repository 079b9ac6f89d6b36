// dipaco serve: a headless coordinator. SQLite state (--db), gRPC on --address with TLS (or
// --insecure), bearer tokens per role, and an aggregation loop. Runs until SIGTERM/SIGINT;
// SIGHUP re-reads the token files (a token rotated without a restart).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "coordinator/coordinator.h"
#include "rpc/auth.h"
#include "rpc/copy_aggregator.h"
#include "rpc/server.h"
#include "rpc/simple_run_config.h"
#include "run/grid_run_hooks.h"
#include "run/run_plan.h"
#include "util/arg_parser.h"
#include "util/atomic_file.h"
#include "util/file_lock.h"
#include "util/log.h"
#include "util/sha256.h"

namespace dipaco::cli {
namespace {

// The handlers only count; the main loop does the work (a handler may touch lock-free atomics
// only).
std::atomic<int> g_serve_stop{0};
std::atomic<int> g_serve_reloads{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need a lock-free atomic");
extern "C" void on_serve_signal(int) {
  g_serve_stop.fetch_add(1);
}
extern "C" void on_serve_reload_signal(int) {
  g_serve_reloads.fetch_add(1);
}

// The counts and fingerprints (sha256 prefixes, never the tokens), which an operator compares
// with a worker's.
std::string describe_tokens(const AuthTokens& tokens) {
  return std::to_string(tokens.worker.size()) + " worker token(s), " +
         std::to_string(tokens.op.size()) + " operator token(s) (sha256 prefixes: worker " +
         token_fingerprints(tokens.worker) + "; operator " + token_fingerprints(tokens.op) + ")";
}

// SIGHUP: both token files read again and swapped in whole; connections and calls in flight are
// untouched. A file that cannot be read, holds no token, or a token listed for both roles
// keeps the running tokens.
void reload_tokens(RpcServer& server, const std::string& worker_token_file,
                   const std::string& operator_token_file) {
  auto tokens = read_auth_tokens(worker_token_file, operator_token_file);
  Status status = tokens.is_ok() ? server.set_tokens(*tokens) : tokens.status();
  if (!status.is_ok()) {
    DIPACO_LOG(kError) << "dipaco serve: SIGHUP: token reload failed, keeping the running tokens: "
                       << status.message();
    return;
  }
  DIPACO_LOG(kInfo) << "dipaco serve: SIGHUP: tokens reloaded: " << describe_tokens(*tokens);
}

int fail(const std::string& message) {
  std::fprintf(stderr, "dipaco serve: %s\n", message.c_str());
  return kExitFailure;
}

// What a start creates (the database, its WAL files, the payload and checkpoint directories)
// and did not exist before: removed again unless keep() is called once the server listens, so
// a start that fails late (the port is in use, a bad --grid) leaves nothing behind. Declared
// before the Coordinator, so that the database is closed before it is removed.
class CreatedOnStart {
 public:
  CreatedOnStart(const std::string& db, const std::vector<std::string>& dirs) {
    for (const std::string& path : {db, db + "-wal", db + "-shm", db + "-journal", db + ".lock"})
      add_if_missing(path);
    for (const std::string& dir : dirs) add_if_missing(dir);
  }
  ~CreatedOnStart() {
    std::error_code ec;
    for (const std::string& path : created_) std::filesystem::remove_all(path, ec);
  }
  CreatedOnStart(const CreatedOnStart&) = delete;
  CreatedOnStart& operator=(const CreatedOnStart&) = delete;
  void keep() { created_.clear(); }

 private:
  void add_if_missing(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
      created_.push_back(path);
  }
  std::vector<std::string> created_;
};

}  // namespace

int cmd_serve(const Args& args) {
  // First thing: a SIGHUP (a `systemctl reload`, a rotation script) during the start, which may
  // plan a grid for minutes, is counted and handled once the server runs, instead of ending the
  // process by its default action.
  struct sigaction reload_action {};
  reload_action.sa_handler = on_serve_reload_signal;
  sigemptyset(&reload_action.sa_mask);
  sigaction(SIGHUP, &reload_action, nullptr);
  std::string address = "127.0.0.1:7443";
  std::string db;
  std::string payload_dir;
  std::string checkpoint_dir;
  std::string worker_token_file;
  std::string operator_token_file;
  std::string tls_cert, tls_key, client_ca;
  std::string run_file;
  std::string grid_file;
  std::string aggregator = "auto";
  int64_t threads = 0;
  std::string port_file;
  bool insecure = false;
  bool expire_leases = false;
  // Three of the workers' longest polls (CoordinatorOptions::max_wait_ms, 5 s): an idle owner
  // asks again well within it.
  int64_t affinity_grace_ms = 15000;
  ArgParser parser("dipaco serve",
                   "Run a headless coordinator that remote workers connect to. A token file holds "
                   "one token per line ('#' comments, also after a token and a space); any listed "
                   "token is accepted for its "
                   "role. SIGHUP re-reads both token files without dropping a connection (a "
                   "file that does not read keeps the running tokens), so a token is rotated by "
                   "adding the new line, HUP, moving the clients over, removing the old line, "
                   "HUP.");
  parser.add_option("--address", "HOST:PORT",
                    "listen address (port 0 = any free port; unix:/path for a Unix socket), "
                    "default 127.0.0.1:7443",
                    &address);
  parser.add_option("--db", "FILE", "coordinator state (SQLite; created if missing)", &db);
  parser.add_option("--payload-dir", "DIR", "pushed outer-gradient chunks, default <db>.payload",
                    &payload_dir);
  parser.add_option("--checkpoint-dir", "DIR",
                    "module versions written by the copy aggregator (--run files, "
                    "--aggregator copy), default <db>.checkpoints; grid runs keep theirs in the "
                    "grid's run.dir (relative paths: from this process's working directory)",
                    &checkpoint_dir);
  parser.add_option("--worker-token-file", "FILE",
                    "bearer token(s) of the worker role, one per line; re-read on SIGHUP",
                    &worker_token_file);
  parser.add_option("--operator-token-file", "FILE",
                    "bearer token(s) of the operator role (every RPC), one per line; re-read on "
                    "SIGHUP",
                    &operator_token_file);
  parser.add_option("--tls-cert", "FILE", "PEM server certificate chain", &tls_cert);
  parser.add_option("--tls-key", "FILE", "PEM server private key", &tls_key);
  parser.add_option("--client-ca", "FILE", "PEM CA; require client certificates (mTLS)",
                    &client_ca);
  parser.add_flag("--insecure", "plaintext without TLS (loopback or Unix sockets only)", &insecure);
  parser.add_option("--run", "FILE",
                    "create this run at start unless it exists (simple run file, see "
                    "shared/rpc/simple_run_config.h)",
                    &run_file);
  parser.add_option("--grid", "FILE",
                    "create this DiPaCo/DiLoCo run at start unless it exists (a grid file as for "
                    "'dipaco run': routing, shards and module version 0 are prepared here)",
                    &grid_file);
  parser.add_option("--threads", "N",
                    "CPU threads for planning grids (base model, routing; always on the CPU, also "
                    "for grid runs whose workers train on GPUs)",
                    &threads, 0, 1024);
  parser.add_choice("--aggregator", {"auto", "copy", "none"},
                    "auto: the grid's outer optimizer for grid runs (CreateRun and --grid), copy "
                    "for --run files; copy: version s+1 = version s (protocol tests); none: leave "
                    "decisions pending",
                    &aggregator);
  parser.add_flag("--expire-leases",
                  "end every lease live at start (default: keep until their "
                  "deadline)",
                  &expire_leases);
  parser.add_option("--affinity-grace-ms", "MS",
                    "how long a task waits for the worker that trained its (path, shard) at the "
                    "previous outer step, where that pair's optimizer state is; 0 = no task "
                    "affinity (default 15000)",
                    &affinity_grace_ms, 0, 3'600'000);
  parser.add_option("--port-file", "FILE", "write the bound port here once listening", &port_file);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco serve: %s\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  if (db.empty()) {
    std::fprintf(stderr, "dipaco serve: --db is required\n%s", parser.usage().c_str());
    return kExitUsage;
  }
  if (worker_token_file.empty() || operator_token_file.empty()) {
    std::fprintf(stderr,
                 "dipaco serve: --worker-token-file and --operator-token-file are required\n");
    return kExitUsage;
  }
  if (!insecure && (tls_cert.empty() || tls_key.empty())) {
    std::fprintf(stderr,
                 "dipaco serve: TLS needs --tls-cert and --tls-key; pass --insecure for "
                 "plaintext on loopback\n");
    return kExitUsage;
  }
  if (!run_file.empty() && !grid_file.empty()) {
    std::fprintf(stderr, "dipaco serve: --run and --grid exclude each other\n");
    return kExitUsage;
  }
  // Everything that can be checked is checked before the database and its directories exist,
  // so that a failed start leaves nothing behind.
  if (Status s = check_listen_address(address, insecure); !s) {
    std::fprintf(stderr, "dipaco serve: %s\n", s.message().c_str());
    return kExitUsage;
  }
  if (!insecure) {
    for (const auto& [flag, file] :
         {std::pair{"--tls-cert", &tls_cert}, std::pair{"--tls-key", &tls_key},
          std::pair{"--client-ca", &client_ca}}) {
      if (file->empty()) continue;
      auto pem = read_file(*file);
      if (!pem.is_ok()) return fail(std::string(flag) + ": " + pem.status().message());
      if (pem->find("-----BEGIN ") == std::string::npos)
        return fail(std::string(flag) + ": " + *file + " is not a PEM file (no -----BEGIN line)");
    }
  }
  // A grid file is parsed and validated (not planned) before anything is created too; a bad
  // one is a usage error, as for 'dipaco run'.
  std::optional<GridSpec> grid;
  if (!grid_file.empty()) {
    auto loaded = load_grid_spec(grid_file);
    if (!loaded.is_ok()) {
      std::fprintf(stderr, "dipaco serve: %s\n", loaded.status().message().c_str());
      return loaded.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    }
    grid = std::move(*loaded);
  }
  ServerOptions options;
  options.address = address;
  options.insecure = insecure;
  options.tls_cert_file = tls_cert;
  options.tls_key_file = tls_key;
  options.client_ca_file = client_ca;
  auto tokens = read_auth_tokens(worker_token_file, operator_token_file);
  if (!tokens.is_ok()) return fail(tokens.status().message());
  DIPACO_LOG(kInfo) << "dipaco serve: tokens: " << describe_tokens(*tokens);
  options.service.tokens = std::move(*tokens);

  if (payload_dir.empty()) payload_dir = db + ".payload";
  if (checkpoint_dir.empty()) checkpoint_dir = db + ".checkpoints";
  CreatedOnStart created(db, {payload_dir, checkpoint_dir});
  // One coordinator per database: a second one would hand out the same tasks and aggregate
  // against the same state. Held until this process exits.
  auto db_lock = FileLock::try_lock(db + ".lock", "dipaco serve, pid " + std::to_string(getpid()));
  if (!db_lock.is_ok()) {
    if (db_lock.status().code() != StatusCode::kUnavailable)
      return fail(db_lock.status().message());
    const std::string holder = db_lock.status().message();
    return fail("--db " + db + " is in use by another coordinator (" +
                (holder.empty() ? std::string("starting") : holder) +
                "); stop it, or give this one another --db");
  }
  std::error_code ec;
  std::filesystem::create_directories(payload_dir, ec);
  std::filesystem::create_directories(checkpoint_dir, ec);

  // Grid files are the product's runs; --run files are explicit, model-free runs for protocol
  // tests and load benchmarks.
  const bool grid_runs = run_file.empty();
  std::string base_dir =
      run_file.empty() ? std::string() : std::filesystem::path(run_file).parent_path().string();
  // The run directories of the grid runs this process plans, locked until it exits.
  auto run_dirs = std::make_shared<RunDirLocks>("dipaco serve");
  options.service.hooks = grid_runs ? grid_run_hooks(static_cast<int>(threads), stderr, run_dirs)
                                    : simple_run_hooks(base_dir);
  if (aggregator == "copy" || (aggregator == "auto" && !grid_runs))
    options.aggregator = copy_aggregator(checkpoint_dir, options.service.hooks);
  else if (aggregator == "auto")
    options.aggregator = grid_aggregator();

  CoordinatorOptions coordinator_options;
  coordinator_options.db_path = db;
  coordinator_options.payload_dir = payload_dir;
  coordinator_options.restart =
      expire_leases ? RestartPolicy::kExpireLeases : RestartPolicy::kKeepLeases;
  coordinator_options.affinity_grace_ms = affinity_grace_ms;
  auto coordinator = Coordinator::open(coordinator_options);
  if (!coordinator.is_ok()) return fail(coordinator.status().message());
  if (grid_runs) {
    // The runs this database resumes are this process's from now on.
    if (Status locked = lock_served_run_dirs(**coordinator, *run_dirs); !locked)
      return fail(locked.message());
  }

  if (!run_file.empty()) {
    auto text = read_file(run_file);
    if (!text.is_ok()) return fail(text.status().message());
    auto run = plan_simple_run(*text, run_file, base_dir);
    if (!run.is_ok()) return fail(run.status().message());
    if (run->spec.request_id.empty()) run->spec.request_id = "run-file:" + to_hex(sha256(*text));
    auto id = (*coordinator)->create_run(run->spec);
    if (!id.is_ok()) return fail(id.status().message());
    std::fprintf(stderr, "dipaco serve: run %lld from %s\n", static_cast<long long>(*id),
                 run_file.c_str());
  }

  if (grid) {
    auto planned = run_dirs->with<PlannedRun>(grid->dir, [&](RunDirLock& run_dir_lock) {
      return plan_grid_run(*grid, static_cast<int>(threads), stderr, run_dir_lock);
    });
    if (!planned.is_ok()) return fail(planned.status().message());
    auto id = (*coordinator)->create_run(planned->spec);
    if (!id.is_ok()) return fail(id.status().message());
    std::fprintf(stderr, "dipaco serve: run %lld from %s (directory %s)\n",
                 static_cast<long long>(*id), grid_file.c_str(), planned->grid.dir.c_str());
  }

  // Before the port file exists: whoever waits for it may stop the server at once.
  struct sigaction action {};
  action.sa_handler = on_serve_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  auto server = RpcServer::start(**coordinator, options);
  if (!server.is_ok()) return fail(server.status().message());
  created.keep();
  std::fprintf(stderr, "dipaco serve: listening on %s (%s%s)\n",
               (*server)->listening_address().c_str(),
               insecure ? "plaintext" : (client_ca.empty() ? "TLS" : "mTLS"),
               (*server)->listens_on_every_interface() ? ", every interface" : "");
  if (!port_file.empty()) {
    Status written = write_file_atomically(port_file, std::to_string((*server)->port()) + "\n");
    if (!written.is_ok()) return fail(written.message());
  }
  int reloads_handled = 0;  // so a SIGHUP during the start is handled on the first pass
  while (g_serve_stop.load() == 0) {
    const int reloads = g_serve_reloads.load();
    if (reloads != reloads_handled) {
      reloads_handled = reloads;
      reload_tokens(**server, worker_token_file, operator_token_file);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "dipaco serve: stopping\n");
  (*server)->shutdown();
  return kExitOk;
}

}  // namespace dipaco::cli
