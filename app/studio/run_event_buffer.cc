#include "run_event_buffer.h"

#include <iterator>
#include <utility>

namespace dipaco::studio {

void RunEventBuffer::push(const RunEvent& event) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.push_back(event);
  ++pushed_;
}

void RunEventBuffer::push(std::vector<RunEvent> events) {
  std::lock_guard<std::mutex> lock(mutex_);
  pushed_ += events.size();
  queue_.insert(queue_.end(), std::make_move_iterator(events.begin()),
                std::make_move_iterator(events.end()));
}

std::vector<RunEvent> RunEventBuffer::take_all() {
  std::vector<RunEvent> out;
  std::lock_guard<std::mutex> lock(mutex_);
  out.swap(queue_);
  return out;
}

uint64_t RunEventBuffer::pushed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pushed_;
}

}  // namespace dipaco::studio
