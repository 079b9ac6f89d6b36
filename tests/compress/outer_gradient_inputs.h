// Outer gradients for the encoder tests (tests/compress, tests/cuda): every chunk path of the
// codec in one vector. Chunk c (kQuantChunk values) holds, by c % 6:
//   0, 1, 4  normal values at scales from 1e-3 to 10, with exact zeros and -0.0 among them
//   2        all zeros in round 0 (a zero scale), small values later
//   3        values near 1e-39, so the int8/int4 scale is subnormal (the codec's double path)
//   5        a few values equal to the chunk's max, and halves of a step (rounding ties)
// and unencodable_cases(): values each dtype must refuse.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "compress/wire_dtype.h"

namespace dipaco::test {

inline std::vector<float> outer_gradient_round(size_t n, int round, uint32_t seed) {
  std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(round));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t chunk = i / kQuantChunk;
    const float g = normal(rng);
    switch (chunk % 6) {
      case 2: x[i] = round == 0 ? 0.0f : 1e-4f * g; break;
      case 3: x[i] = 1e-39f * g; break;
      case 5: x[i] = (i % 17 == 0) ? (g > 0 ? 0.5f : -0.5f) : std::round(g * 8.0f) / 16.0f; break;
      default: x[i] = std::pow(10.0f, static_cast<float>(chunk % 5) - 3.0f) * g; break;
    }
    if (i % 101 == 7) x[i] = 0.0f;
    if (i % 103 == 11) x[i] = -0.0f;
  }
  return x;
}

// Inputs the codec must refuse: `value` at `index` of an n-value outer gradient, one per dtype.
struct UnencodableCase {
  WireDtype dtype;
  size_t index;
  float value;
};

inline std::vector<UnencodableCase> unencodable_cases(size_t n) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {{WireDtype::kInt8, n / 2 + 17, nan},
          {WireDtype::kInt4, n - 1, -inf},
          {WireDtype::kBf16, 5, 3.4e38f},  // rounds to infinity in bf16
          {WireDtype::kFp32, 0, nan}};
}

}  // namespace dipaco::test
