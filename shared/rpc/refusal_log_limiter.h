// Rate limit of the coordinator's "refused a token" warnings: at most one per key (a peer's
// address and the role it asked for) per interval, so that a worker retrying on a rotated-out
// token is seen in the log without flooding it. The memory stays bounded: past `capacity` keys,
// the one logged longest ago is forgotten (it may then be logged again early).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace dipaco {

class RefusalLogLimiter {
 public:
  explicit RefusalLogLimiter(int64_t interval_ms = 60'000, size_t capacity = 1024)
      : interval_ms_(interval_ms), capacity_(capacity) {}

  // True when `key` was not logged in the last interval before `now_ms` (then it counts as
  // logged at now_ms). Thread-safe.
  bool should_log(const std::string& key, int64_t now_ms);

  size_t size() const;
  void clear();

 private:
  const int64_t interval_ms_;
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> last_logged_ms_;
};

// The limiter of authorize()'s refusal warnings (rpc/auth.h), one per process.
RefusalLogLimiter& token_refusal_log_limiter();

// The address part of a gRPC peer ("ipv4:10.0.0.7:53122" -> "ipv4:10.0.0.7"): a client's
// reconnects come from new ports.
std::string peer_without_port(const std::string& peer);

}  // namespace dipaco
