// Deterministic pseudo-random shuffles that give the same order on every platform and
// standard library (std::shuffle and std::uniform_int_distribution do not promise that).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace dipaco {

// SplitMix64: a small, fast generator; the stream is fixed by the seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), bound > 0 (rejection sampling: no modulo bias).
  uint64_t below(uint64_t bound) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
      x = next();
    } while (x >= limit);
    return x % bound;
  }

 private:
  uint64_t state_;
};

// Mixes two values into one seed (e.g. run seed and epoch).
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  SplitMix64 g(a ^ (b * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL));
  g.next();
  return g.next();
}

// Fisher-Yates shuffle driven by SplitMix64(seed).
template <typename T>
void deterministic_shuffle(std::vector<T>& items, uint64_t seed) {
  SplitMix64 g(seed);
  for (size_t i = items.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(g.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

}  // namespace dipaco
