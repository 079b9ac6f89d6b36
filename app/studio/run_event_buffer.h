// RunEventBuffer: hands RunEvents from the threads that cause them (workers, the coordinator's
// sink) to the GUI thread. push() is cheap and never blocks for long (one mutex, one move);
// the GUI drains everything at once on its frame timer, so plots refresh per frame, never per
// event. Thread-safe; share it with std::shared_ptr.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "coordinator/run_event.h"

namespace dipaco::studio {

class RunEventBuffer {
 public:
  void push(const RunEvent& event);
  void push(std::vector<RunEvent> events);
  // Everything pushed since the last call, in push order.
  std::vector<RunEvent> take_all();
  // Events ever pushed (for tests and the status line).
  uint64_t pushed() const;

 private:
  mutable std::mutex mutex_;
  std::vector<RunEvent> queue_;
  uint64_t pushed_ = 0;
};

}  // namespace dipaco::studio
