// bfloat16 <-> float32 conversions (bf16 = the top 16 bits of a float32).
#pragma once

#include <bit>
#include <cstdint>

namespace dipaco {

// Rounds to nearest, ties to even. NaN stays NaN (a quiet NaN with the input's sign) instead of
// rounding into infinity; finite values above the bf16 range round to ±infinity.
inline uint16_t float_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t round = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + round) >> 16);
}

inline float bf16_to_float(uint16_t h) {
  return std::bit_cast<float>(uint32_t{h} << 16);
}

}  // namespace dipaco
