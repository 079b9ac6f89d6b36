// RetryBackoff: how long a worker waits before trying again — after a failed call to the
// coordinator, and after a task that failed on this worker (its runner or its inputs).
// Exponential with jitter: the n-th consecutive wait is drawn uniformly from [cap/2, cap] with
// cap = initial_ms * 2^(n-1), at most max_ms. reset() after a success starts again at initial_ms.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace dipaco {

class RetryBackoff {
 public:
  RetryBackoff(int64_t initial_ms, int64_t max_ms)
      : initial_ms_(std::max<int64_t>(1, initial_ms)), max_ms_(std::max(initial_ms_, max_ms)) {}

  // The next wait in milliseconds (and one step further for the wait after it).
  int64_t next_wait_ms(std::mt19937_64& random) {
    ++failures_;
    cap_ms_ = cap_ms_ == 0 ? initial_ms_ : std::min(max_ms_, cap_ms_ * 2);
    return std::uniform_int_distribution<int64_t>(cap_ms_ / 2, cap_ms_)(random);
  }

  void reset() {
    cap_ms_ = 0;
    failures_ = 0;
  }
  // Failures since the last reset (waits handed out).
  int64_t failures() const { return failures_; }

 private:
  int64_t initial_ms_;
  int64_t max_ms_;
  int64_t cap_ms_ = 0;  // 0 = no failure since the last reset
  int64_t failures_ = 0;
};

}  // namespace dipaco
