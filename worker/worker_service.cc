#include "worker_service.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "fake_task_runner.h"
#include "rpc/auth.h"
#include "util/log.h"
#include "worker_client.h"

namespace dipaco {
namespace {

std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal handler needs a lock-free atomic");

TaskRunnerFactory& train_factory() {
  static TaskRunnerFactory factory;
  return factory;
}

extern "C" void on_stop_signal(int) {
  g_stop.fetch_add(1);
}

}  // namespace

void set_train_runner_factory(TaskRunnerFactory factory) {
  train_factory() = std::move(factory);
}

int run_worker_service(const WorkerConfig& config, const char* program) {
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
  if (config.coordinator_address.empty()) {
    std::fprintf(stderr, "%s: no [coordinator] address in the config\n", program);
    return 1;
  }
  WorkerClientOptions options;
  options.channel.address = config.coordinator_address;
  options.channel.insecure = !config.tls;
  options.channel.ca_file = config.ca_file;
  options.channel.client_cert_file = config.client_cert_file;
  options.channel.client_key_file = config.client_key_file;
  options.channel.server_name_override = config.server_name;
  if (!config.token_file.empty()) {
    auto token = read_token_file(config.token_file);
    if (!token.is_ok()) {
      std::fprintf(stderr, "%s: %s\n", program, token.status().message().c_str());
      return 1;
    }
    options.token = *token;
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  options.host = host;
  options.worker_id = config.worker_id.empty() ? std::string(host) : config.worker_id;
  options.cache_dir = config.cache_dir;
  options.max_tasks = static_cast<uint64_t>(config.max_tasks);

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  WorkerClient client(options, *runner);
  Status status = client.run(g_stop);
  if (!status.is_ok()) {
    std::fprintf(stderr, "%s: %s\n", program, status.message().c_str());
    return 1;
  }
  const WorkerStats& stats = client.stats();
  DIPACO_LOG(kInfo) << program << ": " << stats.tasks_completed << " tasks completed, "
                    << stats.tasks_lost << " lost, " << stats.bytes_down << " bytes down, "
                    << stats.bytes_up << " bytes up";
  return 0;
}

}  // namespace dipaco
