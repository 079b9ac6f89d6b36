#include "model/init.h"

#include <cmath>

namespace dipaco {

InitRng InitRng::for_tensor(uint64_t seed, std::string_view name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a of the name, mixed with the seed
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  InitRng rng(seed ^ h);
  rng.next_u64();
  return rng;
}

uint64_t InitRng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double InitRng::uniform() {
  return (static_cast<double>(next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double InitRng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double r = std::sqrt(-2.0 * std::log(uniform()));
  double a = 2.0 * M_PI * uniform();
  spare_ = r * std::sin(a);
  has_spare_ = true;
  return r * std::cos(a);
}

}  // namespace dipaco
