// Small vectorizable float helpers for the CPU backend's loops.
//
// Written so that GCC vectorizes them without -ffast-math: reductions keep 16 independent
// partial sums (a fixed, documented summation order, hence deterministic), and exp uses a
// polynomial instead of a libm call.
#pragma once

#include <cstdint>
#include <cstring>

// Hot row kernels are compiled three times and picked at load time by the CPU's features
// (AVX-512, AVX2+FMA, baseline x86-64): packages are built for baseline x86-64, never with
// -march=native. Inline helpers below are inlined into each clone at its width.
// ThreadSanitizer builds go without clones: the ifunc resolvers run during relocation, before
// the TSan runtime is set up, and their instrumented code crashes the process at start-up.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define DIPACO_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DIPACO_CPU_CLONES
#endif

namespace dipaco::cpu {

constexpr int kLanes = 16;

// e^x to about 2e-7 relative error for x in [-87, 88]; clamps outside (no inf/denormals).
// exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor polynomial.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float t = x * 1.44269504088896341f + shifter;
  float n = t - shifter;
  float r = x - n * 0.693145751953125f;  // ln2 split in a high part exact in float...
  r = r - n * 1.428606765330187e-06f;    // ...and the low remainder
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  // t's low mantissa bits hold n + 2^22 (+ 2^23 from the shifter's leading one). Unsigned, so
  // a NaN input gives a NaN-propagating garbage scale instead of a signed-shift overflow.
  uint32_t scale_bits = (bits - 0x4B400000u + 127u) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

inline float max_of(const float* x, int n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -3.4e38f;
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = -3.4e38f;
  for (int j = 0; j < kLanes; ++j) m = acc[j] > m ? acc[j] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// sum of e^(x[i] - shift)
inline float sum_exp(const float* x, int n, float shift) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += exp_approx(x[i + j] - shift);
  float s = 0.0f;
  for (; i < n; ++i) s += exp_approx(x[i] - shift);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

inline float sum(const float* x, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += x[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

inline float dot(const float* a, const float* b, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// sum of a[i] * b[i] * c[i]
inline float dot3(const float* a, const float* b, const float* c, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j] * c[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i] * c[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

}  // namespace dipaco::cpu
