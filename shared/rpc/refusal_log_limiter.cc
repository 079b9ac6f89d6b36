#include "rpc/refusal_log_limiter.h"

#include <algorithm>

namespace dipaco {

bool RefusalLogLimiter::should_log(const std::string& key, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto found = last_logged_ms_.find(key);
  if (found != last_logged_ms_.end()) {
    if (now_ms - found->second < interval_ms_) return false;
    found->second = now_ms;
    return true;
  }
  if (last_logged_ms_.size() >= capacity_) {
    std::erase_if(last_logged_ms_,
                  [&](const auto& entry) { return now_ms - entry.second >= interval_ms_; });
  }
  if (last_logged_ms_.size() >= capacity_) {
    auto oldest =
        std::min_element(last_logged_ms_.begin(), last_logged_ms_.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    last_logged_ms_.erase(oldest);
  }
  last_logged_ms_.emplace(key, now_ms);
  return true;
}

size_t RefusalLogLimiter::size() const {
  std::lock_guard lock(mutex_);
  return last_logged_ms_.size();
}

void RefusalLogLimiter::clear() {
  std::lock_guard lock(mutex_);
  last_logged_ms_.clear();
}

RefusalLogLimiter& token_refusal_log_limiter() {
  static RefusalLogLimiter limiter;
  return limiter;
}

std::string peer_without_port(const std::string& peer) {
  if (!peer.starts_with("ipv4:") && !peer.starts_with("ipv6:")) return peer;
  size_t colon = peer.rfind(':');
  return colon <= 4 ? peer : peer.substr(0, colon);
}

}  // namespace dipaco
