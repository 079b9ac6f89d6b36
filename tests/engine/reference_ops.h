// Double-precision reference implementations of the engine's ops: plain loops, no
// optimization, written from the definitions in tensor/backend.h. The tests differentiate
// these by finite differences and compare the backend's forward and backward against them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dipaco::reference {

using Vec = std::vector<double>;

// out[N, OC] = inp[N, C] @ w[OC, C]^T
inline Vec matmul(const Vec& inp, const Vec& w, int N, int C, int OC) {
  Vec out(static_cast<size_t>(N) * OC, 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = 0;
      for (int c = 0; c < C; ++c) s += inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

inline Vec embedding(const std::vector<int32_t>& tokens, const Vec& wte, int C) {
  Vec out(tokens.size() * C);
  for (size_t n = 0; n < tokens.size(); ++n)
    for (int c = 0; c < C; ++c) out[n * C + c] = wte[tokens[n] * C + c];
  return out;
}

inline Vec rmsnorm(const Vec& inp, const Vec& w, int N, int C, double eps) {
  Vec out(inp.size());
  for (int n = 0; n < N; ++n) {
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += inp[n * C + c] * inp[n * C + c];
    double r = 1.0 / std::sqrt(ss / C + eps);
    for (int c = 0; c < C; ++c) out[n * C + c] = inp[n * C + c] * r * w[c];
  }
  return out;
}

// HF rotate_half RoPE on the first n_heads * hd floats of each row of x[N, row_stride].
inline Vec rope(Vec x, int N, int T, int n_heads, int hd, int row_stride, double theta) {
  int half = hd / 2;
  for (int n = 0; n < N; ++n) {
    int t = n % T;
    for (int h = 0; h < n_heads; ++h) {
      double* v = x.data() + n * row_stride + h * hd;
      for (int i = 0; i < half; ++i) {
        double a = t * std::pow(theta, -2.0 * i / hd);
        double lo = v[i], hi = v[i + half];
        v[i] = lo * std::cos(a) - hi * std::sin(a);
        v[i + half] = hi * std::cos(a) + lo * std::sin(a);
      }
    }
  }
  return x;
}

// out[B, T, H * hd] from qkv[B, T, (H + 2 KVH) * hd], causal, GQA.
inline Vec attention(const Vec& qkv, int B, int T, int H, int KVH, int hd) {
  int row = (H + 2 * KVH) * hd;
  Vec out(static_cast<size_t>(B) * T * H * hd, 0.0);
  double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> p(T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      int g = h / (H / KVH);
      for (int i = 0; i < T; ++i) {
        const double* q = &qkv[(b * T + i) * row + h * hd];
        double m = -1e300;
        for (int j = 0; j <= i; ++j) {
          const double* k = &qkv[(b * T + j) * row + (H + g) * hd];
          double s = 0;
          for (int d = 0; d < hd; ++d) s += q[d] * k[d];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        double z = 0;
        for (int j = 0; j <= i; ++j) z += (p[j] = std::exp(p[j] - m));
        double* o = &out[(b * T + i) * H * hd + h * hd];
        for (int j = 0; j <= i; ++j) {
          const double* v = &qkv[(b * T + j) * row + (H + KVH + g) * hd];
          for (int d = 0; d < hd; ++d) o[d] += p[j] / z * v[d];
        }
      }
    }
  return out;
}

// out[N, F] = silu(gate) * up, h13[N, 2F] = [gate | up]
inline Vec swiglu(const Vec& h13, int N, int F) {
  Vec out(static_cast<size_t>(N) * F);
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < F; ++i) {
      double g = h13[n * 2 * F + i], u = h13[n * 2 * F + F + i];
      out[n * F + i] = g / (1.0 + std::exp(-g)) * u;
    }
  return out;
}

// losses[N] of logits[N, V]; target -1 gives 0.
inline Vec crossentropy(const Vec& logits, const std::vector<int32_t>& targets, int N, int V) {
  Vec losses(N, 0.0);
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    double m = -1e300;
    for (int i = 0; i < V; ++i) m = std::max(m, logits[n * V + i]);
    double z = 0;
    for (int i = 0; i < V; ++i) z += std::exp(logits[n * V + i] - m);
    losses[n] = m + std::log(z) - logits[n * V + targets[n]];
  }
  return losses;
}

}  // namespace dipaco::reference
