// The first Ctrl-C / SIGTERM asks a long command to stop at a safe point (the flag returned here
// becomes true); the handler then resets, so a second one kills the process.
#pragma once

#include <atomic>

namespace dipaco::cli {

const std::atomic<bool>* install_stop_signals();

}  // namespace dipaco::cli
