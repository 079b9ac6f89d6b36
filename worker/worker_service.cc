#include "worker_service.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "fake_task_runner.h"
#include "rpc/address.h"
#include "rpc/channel.h"
#include "util/log.h"
#include "worker_client.h"
#include "worker_devices.h"
#include "worker_reload.h"

namespace dipaco {
namespace {

std::atomic<int> g_stop{0};
std::atomic<int> g_reload_requests{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need a lock-free atomic");

TaskRunnerFactory& train_factory() {
  static TaskRunnerFactory factory;
  return factory;
}

extern "C" void on_stop_signal(int) {
  g_stop.fetch_add(1);
}

extern "C" void on_reload_signal(int) {
  g_reload_requests.fetch_add(1);
}

void install_handler(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, nullptr);
}

// The signals the service handles: blocked in the thread that makes this (and so in every thread
// it starts from then on) until it goes, and unblocked only in the supervisor's thread, so that
// the kernel delivers them there rather than to whichever thread it picks. (Under TSan a
// handler runs only when its thread next enters an intercepted call, so a signal that landed in
// a busy library thread could wait indefinitely.)
class HandledSignalsBlocked {
 public:
  HandledSignalsBlocked() { pthread_sigmask(SIG_BLOCK, &handled(), &previous_); }
  ~HandledSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  HandledSignalsBlocked(const HandledSignalsBlocked&) = delete;
  HandledSignalsBlocked& operator=(const HandledSignalsBlocked&) = delete;

  static void unblock_in_this_thread() { pthread_sigmask(SIG_UNBLOCK, &handled(), nullptr); }

 private:
  static const sigset_t& handled() {
    static const sigset_t set = [] {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGTERM);
      sigaddset(&s, SIGINT);
      sigaddset(&s, SIGHUP);
      return s;
    }();
    return set;
  }
  sigset_t previous_;
};

// Raises `value` to at least `floor` (stop levels only ever go up while a client runs).
void raise_to(std::atomic<int>& value, int floor) {
  int current = value.load();
  while (current < floor && !value.compare_exchange_weak(current, floor)) {
  }
}

ChannelOptions channel_options(const WorkerConfig& config) {
  ChannelOptions channel;
  channel.address = config.coordinator_address;
  channel.insecure = !config.tls;
  channel.ca_file = config.ca_file;
  channel.client_cert_file = config.client_cert_file;
  channel.client_key_file = config.client_key_file;
  channel.server_name_override = config.server_name;
  return channel;
}

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// "90 s", "0.5 s".
std::string seconds_text(double seconds) {
  std::ostringstream text;
  text << seconds << " s";
  return text.str();
}

// `tasks_done` counts the tasks this process completed on earlier connections, so that
// max_tasks bounds the whole process, not one connection. `on_lease` follows the running lease.
// `reread_token` reads the token file again after the coordinator refused the token.
WorkerClientOptions client_options(const WorkerConfig& config, const WorkerCredentials& credentials,
                                   uint64_t tasks_done,
                                   std::function<void(const std::string&)> on_lease,
                                   std::function<Result<std::string>()> reread_token) {
  WorkerClientOptions options;
  options.channel = channel_options(config);
  options.token = credentials.token;
  options.host = host_name();
  options.worker_id = worker_id_or_default(config, options.host);
  options.devices = describe_worker_devices(config);
  options.cache_dir = config.cache_dir;
  options.backoff_initial_ms = config.backoff_initial_ms;
  options.backoff_max_ms = config.backoff_max_ms;
  // A refused token waits for a person (or a SIGHUP, which cuts the wait short): from about 5 s
  // up to backoff_max_ms or 60 s, whichever is longer.
  options.auth_backoff_initial_ms = 5000;
  options.auth_backoff_max_ms = std::max<int64_t>(60000, config.backoff_max_ms);
  options.reread_token = std::move(reread_token);
  options.rpc_timeout_ms = config.rpc_timeout_ms;
  options.max_tasks =
      config.max_tasks == 0 ? 0 : static_cast<uint64_t>(config.max_tasks) - tasks_done;
  options.stall_timeout_ms = std::llround(config.stall_timeout_s * 1000.0);
  options.on_lease = std::move(on_lease);
  return options;
}

bool max_tasks_reached(const WorkerConfig& config, uint64_t tasks_done) {
  return config.max_tasks != 0 && tasks_done >= static_cast<uint64_t>(config.max_tasks);
}

// Owns the stop level the running WorkerClient watches: it follows SIGTERM/SIGINT (the first
// asks the running task to finish; stop_grace_s later, or at a second signal, the level becomes 2
// and the lease is handed back), and a SIGHUP reload that needs a new connection raises it to 1
// (finish the running task, however long it takes, then return), after which the service
// connects again with the reloaded config (take_reconnect). Signals are polled from a thread
// every 20 ms: a handler may only touch lock-free atomics.
class ReloadSupervisor {
 public:
  ReloadSupervisor(const char* program, WorkerConfigLoader loader, const WorkerConfig& config,
                   const WorkerCredentials& credentials, LogLevel startup_level)
      : program_(program),
        loader_(std::move(loader)),
        startup_level_(startup_level),
        wanted_(config),
        wanted_credentials_(credentials),
        thread_([this] { watch(); }) {}

  ~ReloadSupervisor() {
    done_ = true;
    thread_.join();
  }

  ReloadSupervisor(const ReloadSupervisor&) = delete;
  ReloadSupervisor& operator=(const ReloadSupervisor&) = delete;

  const std::atomic<int>& client_stop() const { return client_stop_; }

  // The running client's lease ("" between tasks), for the stop messages.
  void set_lease(const std::string& lease_id) {
    std::lock_guard lock(mutex_);
    lease_ = lease_id;
  }

  // The token file of the config the next connection uses, read again (read_worker_credentials,
  // as a SIGHUP reload does) after the coordinator refused the token; the token read becomes
  // that connection's, so a later reload does not count it as a change.
  Result<std::string> reread_token() {
    std::lock_guard lock(mutex_);
    DIPACO_ASSIGN_OR_RETURN(WorkerCredentials credentials, read_worker_credentials(wanted_));
    wanted_credentials_.token = credentials.token;
    return credentials.token;
  }

  // After a WorkerClient returned: true (and the config to connect with) when it returned for a
  // reload rather than a stop, a drain or max_tasks.
  bool take_reconnect(WorkerConfig* config, WorkerCredentials* credentials) {
    std::lock_guard lock(mutex_);
    if (!reconnect_pending_ || g_stop.load() != 0) return false;
    reconnect_pending_ = false;
    *config = wanted_;
    *credentials = wanted_credentials_;
    client_stop_.store(g_stop.load());
    return true;
  }

 private:
  void watch() {
    HandledSignalsBlocked::unblock_in_this_thread();
    int handled = 0;  // a SIGHUP counted before the service started is handled now
    while (!done_) {
      follow_stop_signals();
      int requested = g_reload_requests.load();
      if (requested != handled) {
        handled = requested;
        reload();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Raises the client's stop level as the signals and the grace say, and says what it does.
  void follow_stop_signals() {
    const int signals = g_stop.load();
    if (signals == 0) return;
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    const std::string what = lease_.empty() ? std::string() : "lease " + lease_;
    if (!stop_since_) {
      stop_since_ = now;
      stop_grace_s_ = wanted_.stop_grace_s;
      if (what.empty()) {
        DIPACO_LOG(kInfo) << program_ << ": stopping: no task running";
      } else if (signals == 1 && stop_grace_s_ > 0) {
        DIPACO_LOG(kInfo) << program_ << ": stopping: finishing " << what << " (grace "
                          << seconds_text(stop_grace_s_)
                          << "; a second SIGTERM/SIGINT hands it back at once)";
      }
    }
    int level = signals;
    if (level == 1 && now - *stop_since_ >= std::chrono::duration<double>(stop_grace_s_)) {
      level = 2;
    }
    if (level >= 2 && client_stop_.load() < 2 && !what.empty()) {
      if (signals >= 2) {
        DIPACO_LOG(kWarning) << program_ << ": stopping at once: handing " << what << " back";
      } else if (stop_grace_s_ > 0) {
        DIPACO_LOG(kWarning) << program_ << ": stopping: " << what << " did not finish within the "
                             << seconds_text(stop_grace_s_)
                             << " grace (stop_grace_s); handing it back";
      } else {
        DIPACO_LOG(kInfo) << program_ << ": stopping: handing " << what
                          << " back (stop_grace_s = 0)";
      }
    }
    raise_to(client_stop_, level);
  }

  Status load(WorkerConfig* config, WorkerCredentials* credentials) {
    if (!loader_) return failed_precondition("this worker has no config file to reload");
    DIPACO_ASSIGN_OR_RETURN(*config, loader_());
    if (config->coordinator_address.empty())
      return invalid_argument("no [coordinator] address in the config");
    DIPACO_ASSIGN_OR_RETURN(*credentials, read_worker_credentials(*config));
    // The checks the next connection will make (e.g. mTLS needs both certificate and key).
    auto channel = make_channel(channel_options(*config));
    if (!channel.is_ok()) return channel.status();
    return Status::ok();
  }

  void reload() {
    DIPACO_LOG(kInfo) << program_ << ": SIGHUP: reloading the config";
    WorkerConfig loaded;
    WorkerCredentials credentials;
    if (Status status = load(&loaded, &credentials); !status.is_ok()) {
      DIPACO_LOG(kError) << program_ << ": config reload failed, keeping the running config: "
                         << status.message();
      return;
    }
    std::lock_guard lock(mutex_);
    ReloadPlan plan = plan_worker_reload(wanted_, wanted_credentials_, loaded, credentials);
    if (plan.changes.empty()) {
      DIPACO_LOG(kInfo) << program_ << ": config reloaded: no changes";
      return;
    }
    for (const ReloadChange& change : plan.changes) {
      if (change.timing == ReloadTiming::kNeedsRestart) {
        DIPACO_LOG(kWarning) << program_ << ": config reloaded: " << describe_reload_change(change);
      } else {
        DIPACO_LOG(kInfo) << program_ << ": config reloaded: " << describe_reload_change(change);
      }
    }
    // After the lines above, so that a quieter level does not hide its own change.
    if (plan.has(ReloadTiming::kNow)) {
      set_log_threshold(worker_log_level(plan.next_config.log_level).value_or(startup_level_));
    }
    wanted_ = plan.next_config;
    wanted_credentials_ = plan.next_credentials;
    if (plan.reconnect()) {
      reconnect_pending_ = true;
      raise_to(client_stop_, 1);
      DIPACO_LOG(kInfo) << program_
                        << ": connecting again with the new settings once the running task (if "
                           "any) is pushed";
    }
  }

  const char* program_;
  WorkerConfigLoader loader_;
  LogLevel startup_level_;
  std::atomic<int> client_stop_{0};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  WorkerConfig wanted_;  // the config the next connection uses
  WorkerCredentials wanted_credentials_;
  bool reconnect_pending_ = false;
  std::string lease_;  // the running client's lease, "" = none
  std::optional<std::chrono::steady_clock::time_point> stop_since_;  // the first stop signal
  double stop_grace_s_ = 0;  // stop_grace_s when that signal came
  std::thread thread_;       // last: starts once the members above exist
};

void add_stats(const WorkerStats& from, WorkerStats* to) {
  to->tasks_completed += from.tasks_completed;
  to->tasks_lost += from.tasks_lost;
  to->bytes_down += from.bytes_down;
  to->bytes_up += from.bytes_up;
}

}  // namespace

void set_train_runner_factory(TaskRunnerFactory factory) {
  train_factory() = std::move(factory);
}

void install_reload_signal_handler() {
  install_handler(SIGHUP, on_reload_signal);
}

int run_worker_service(const WorkerConfig& config, const char* program, WorkerConfigLoader reload) {
  LogLevel startup_level = log_threshold();
  set_log_threshold(worker_log_level(config.log_level).value_or(startup_level));
  std::unique_ptr<TaskRunner> runner;
  if (config.runner == "fake") {
    runner = std::make_unique<FakeTaskRunner>(config.fake_step_ms);
  } else if (train_factory()) {
    auto made = train_factory()(config);
    if (!made.is_ok()) {
      std::fprintf(stderr, "%s: %s\n", program, made.status().message().c_str());
      return 1;
    }
    runner = std::move(made).value();
  } else {
    std::fprintf(stderr,
                 "%s: the path trainer is not in this build of the worker; set [worker] runner = "
                 "\"fake\" to exercise the protocol\n",
                 program);
    return 3;
  }
  // Config errors exit 2: the systemd unit's RestartPreventExitStatus=2 does not restart them.
  if (config.coordinator_address.empty()) {
    std::fprintf(stderr, "%s: no [coordinator] address in the config\n", program);
    return 2;
  }
  // `dipaco work --address` bypasses the config file's check.
  if (Status s = check_dial_address(config.coordinator_address); !s) {
    std::fprintf(stderr, "%s: coordinator address: %s\n", program, s.message().c_str());
    return 2;
  }
  auto credentials = read_worker_credentials(config);
  if (!credentials.is_ok()) {
    std::fprintf(stderr, "%s: %s\n", program, credentials.status().message().c_str());
    return 2;
  }

  bool reloads = static_cast<bool>(reload);
  install_handler(SIGTERM, on_stop_signal);
  install_handler(SIGINT, on_stop_signal);
  if (reloads) install_handler(SIGHUP, on_reload_signal);
  HandledSignalsBlocked blocked;  // before the supervisor and the client start their threads
  ReloadSupervisor supervisor(program, std::move(reload), config, *credentials, startup_level);
  DIPACO_LOG(kInfo) << program << ": started (pid " << getpid() << ") for coordinator "
                    << config.coordinator_address << (reloads ? "; SIGHUP reloads the config" : "");

  WorkerConfig running = config;
  WorkerCredentials running_credentials = *credentials;
  WorkerStats total;
  int exit_code = 0;
  while (true) {
    WorkerClient client(
        client_options(
            running, running_credentials, total.tasks_completed,
            [&supervisor](const std::string& lease) { supervisor.set_lease(lease); },
            [&supervisor] { return supervisor.reread_token(); }),
        *runner);
    Status status = client.run(supervisor.client_stop());
    add_stats(client.stats(), &total);
    if (!status.is_ok()) {
      std::fprintf(stderr, "%s: %s\n", program, status.message().c_str());
      exit_code = 1;
      break;
    }
    if (!supervisor.take_reconnect(&running, &running_credentials)) break;
    if (max_tasks_reached(running, total.tasks_completed)) {
      DIPACO_LOG(kInfo) << program << ": max_tasks = " << running.max_tasks
                        << " reached with the reloaded config; stopping";
      break;
    }
    DIPACO_LOG(kInfo) << program << ": connecting to " << running.coordinator_address
                      << " with the reloaded config";
  }
  DIPACO_LOG(kInfo) << program << ": " << total.tasks_completed << " tasks completed, "
                    << total.tasks_lost << " lost, " << total.bytes_down << " bytes down, "
                    << total.bytes_up << " bytes up";
  return exit_code;
}

}  // namespace dipaco
