#include "cli/stop_signal.h"

#include <csignal>

namespace dipaco::cli {

namespace {
std::atomic<bool> g_stop{false};
void request_stop(int) {
  g_stop.store(true);
}
}  // namespace

const std::atomic<bool>* install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return &g_stop;
}

}  // namespace dipaco::cli
