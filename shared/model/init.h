// Deterministic random numbers for parameter initialization, the same on every platform
// (std::normal_distribution is not: its algorithm is up to the standard library).
#pragma once

#include <cstdint>
#include <string_view>

namespace dipaco {

// SplitMix64 generator with Box-Muller normals.
class InitRng {
 public:
  explicit InitRng(uint64_t seed) : state_(seed) {}
  // A stream for one named tensor: depends only on (seed, name).
  static InitRng for_tensor(uint64_t seed, std::string_view name);
  uint64_t next_u64();
  // Uniform in (0, 1).
  double uniform();
  double normal();

 private:
  uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace dipaco
