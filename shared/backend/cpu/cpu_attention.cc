// Causal multi-head attention with grouped-query heads, on sgemm per (batch, head).
//
// Work is done in blocks of kRowBlock query rows: block [r0, r1) only sees keys [0, r1), so
// the sgemms skip most of the masked upper triangle (about half the flops of a full T x T).
#include <cblas.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace dipaco {

namespace {
constexpr int kRowBlock = 64;

struct Heads {
  int T, H, KVH, hd;
  int64_t row;  // floats per qkv row: (H + 2 * KVH) * hd
  // Offsets of head h's q, kv head g's k and v within a qkv row.
  int64_t q(int h) const { return static_cast<int64_t>(h) * hd; }
  int64_t k(int g) const { return static_cast<int64_t>(H + g) * hd; }
  int64_t v(int g) const { return static_cast<int64_t>(H + KVH + g) * hd; }
};

// Rows [r0, r1) of p[T, T] hold scores for keys [0, r1): softmax over keys 0..i of row i, zeros
// after (the whole rest of the row, so att is fully defined).
DIPACO_CPU_CLONES void causal_softmax_rows(float* p, int r0, int r1, int T) {
  for (int i = r0; i < r1; ++i) {
    float* row = p + static_cast<int64_t>(i) * T;
    float m = cpu::max_of(row, i + 1);
    for (int j = 0; j <= i; ++j) row[j] = cpu::exp_approx(row[j] - m);
    float inv = 1.0f / cpu::sum(row, i + 1);
    for (int j = 0; j <= i; ++j) row[j] *= inv;
    std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
  }
}

// dS = P * (dP - rowsum(P * dP)) in place of dP, rows [r0, r1) (dp row i - r0, stride T).
DIPACO_CPU_CLONES void softmax_backward_rows(float* dp, const float* p, int r0, int r1, int T) {
  for (int i = r0; i < r1; ++i) {
    const float* prow = p + static_cast<int64_t>(i) * T;
    float* drow = dp + static_cast<int64_t>(i - r0) * T;
    float s = cpu::dot(prow, drow, i + 1);
    for (int j = 0; j <= i; ++j) drow[j] = prow[j] * (drow[j] - s);
    for (int j = i + 1; j < r1; ++j) drow[j] = 0.0f;
  }
}
}  // namespace

// out[B, T, H * hd], att[B, H, T, T]; qkv[B, T, (H + 2 * KVH) * hd]
void CpuBackend::attention_forward(float* out, float* att, const float* qkv, int B, int T, int H,
                                   int KVH, int hd) {
  const Heads hs{T, H, KVH, hd, static_cast<int64_t>(H + 2 * KVH) * hd};
  const int group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t out_row = static_cast<int64_t>(H) * hd;
  pool_.parallel_for(
      static_cast<int64_t>(B) * H, int64_t{2} * T * T * hd, [&](int64_t begin, int64_t end) {
        for (int64_t bh = begin; bh < end; ++bh) {
          int64_t b = bh / H;
          int h = static_cast<int>(bh % H);
          int g = h / group;
          const float* base = qkv + b * T * hs.row;
          const float* q = base + hs.q(h);
          const float* k = base + hs.k(g);
          const float* v = base + hs.v(g);
          float* p = att + bh * T * T;
          float* o = out + b * T * out_row + static_cast<int64_t>(h) * hd;
          for (int r0 = 0; r0 < T; r0 += kRowBlock) {
            int r1 = r0 + kRowBlock < T ? r0 + kRowBlock : T;
            // S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, hd, scale,
                        q + r0 * hs.row, static_cast<int>(hs.row), k, static_cast<int>(hs.row),
                        0.0f, p + static_cast<int64_t>(r0) * T, T);
            causal_softmax_rows(p, r0, r1, T);
            // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, hd, r1, 1.0f,
                        p + static_cast<int64_t>(r0) * T, T, v, static_cast<int>(hs.row), 0.0f,
                        o + r0 * out_row, static_cast<int>(out_row));
          }
        }
      });
}

size_t CpuBackend::attention_workspace_floats(int, int T, int, int, int) const {
  return static_cast<size_t>(pool_.size()) * T * T;
}

// Per (b, kv head g), over the q heads h of g's group, row block [r0, r1):
//   dV[0:r1] += P^T dO[r0:r1];  dP = dO[r0:r1] V[0:r1]^T;  dS = P * (dP - rowsum(P * dP))
//   dQ[r0:r1] = scale * dS K[0:r1];  dK[0:r1] += scale * dS^T Q[r0:r1]
// One task owns dK and dV of its kv head, so the group's sums need no synchronization.
void CpuBackend::attention_backward(float* dqkv, float* workspace, const float* dout,
                                    const float* qkv, const float* /*out*/, const float* att, int B,
                                    int T, int H, int KVH, int hd) {
  const Heads hs{T, H, KVH, hd, static_cast<int64_t>(H + 2 * KVH) * hd};
  const int group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t out_row = static_cast<int64_t>(H) * hd;
  const int ld = static_cast<int>(hs.row);
  const int64_t tasks = static_cast<int64_t>(B) * KVH;
  int parts = pool_.threads_for(tasks * 4 * T * T * hd * (H / KVH));
  if (parts > tasks) parts = static_cast<int>(tasks);
  auto chunk = [&](int t) {
    int64_t begin = tasks * t / parts;
    int64_t end = tasks * (t + 1) / parts;
    float* dp = workspace + static_cast<int64_t>(t) * T * T;
    for (int64_t bg = begin; bg < end; ++bg) {
      int64_t b = bg / KVH;
      int g = static_cast<int>(bg % KVH);
      const float* base = qkv + b * T * hs.row;
      float* dbase = dqkv + b * T * hs.row;
      const float* k = base + hs.k(g);
      const float* v = base + hs.v(g);
      float* dk = dbase + hs.k(g);
      float* dv = dbase + hs.v(g);
      for (int i = 0; i < T; ++i) {
        std::memset(dk + i * hs.row, 0, sizeof(float) * hd);
        std::memset(dv + i * hs.row, 0, sizeof(float) * hd);
      }
      for (int h = g * group; h < (g + 1) * group; ++h) {
        const float* q = base + hs.q(h);
        float* dq = dbase + hs.q(h);
        const float* p = att + (b * H + h) * T * T;
        const float* dO = dout + b * T * out_row + static_cast<int64_t>(h) * hd;
        for (int r0 = 0; r0 < T; r0 += kRowBlock) {
          int r1 = r0 + kRowBlock < T ? r0 + kRowBlock : T;
          int rows = r1 - r0;
          const float* pb = p + static_cast<int64_t>(r0) * T;
          // dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1]
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hd, rows, 1.0f, pb, T,
                      dO + r0 * out_row, static_cast<int>(out_row), 1.0f, dv, ld);
          // dP[rows, 0:r1] = dO[r0:r1] V[0:r1]^T  (dp holds the block at row stride T)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hd, 1.0f,
                      dO + r0 * out_row, static_cast<int>(out_row), v, ld, 0.0f, dp, T);
          softmax_backward_rows(dp, p, r0, r1, T);
          // dQ[r0:r1] = scale * dS K[0:r1]
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, r1, scale, dp, T, k, ld,
                      0.0f, dq + r0 * hs.row, ld);
          // dK[0:r1] += scale * dS^T Q[r0:r1]
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hd, rows, scale, dp, T,
                      q + r0 * hs.row, ld, 1.0f, dk, ld);
        }
      }
    }
  };
  if (parts == 1) {
    chunk(0);
  } else {
    pool_.run([&](int t) {
      if (t < parts) chunk(t);
    });
  }
}

}  // namespace dipaco
