// The coordinator's notion of time: unix milliseconds from an injectable source, so that tests
// drive deadlines without sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace dipaco {

// Returns unix time in milliseconds.
using Clock = std::function<int64_t()>;

inline int64_t system_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-11-25T12:00:03.250Z": how times appear in messages to users.
std::string format_unix_ms(int64_t unix_ms);

}  // namespace dipaco
