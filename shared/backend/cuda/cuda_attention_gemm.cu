// Attention on cuBLASLt batched products (tensor cores), the CUDA backend's default path:
//   S = scale Q K^T  ->  P = causal softmax(S) (into att)  ->  O = P V
// and backward
//   dP = dO V^T  ->  dS = P (dP - rowsum(P dP))  ->  dQ = scale dS K, dK = scale dS^T Q, dV = P^T
//   dO
// Each product is one cuBLASLt call per (batch b, head-in-group r), batched over the KVH kv
// heads: q head h = g * rep + r reads kv head g, so every operand has a uniform stride over g.
// dK and dV sum over a group's heads by accumulating r = 0, 1, ... in order (deterministic).
// The masked upper triangle is multiplied too (the softmax zeroes it): twice the minimum work
// for simple, large products. Products run in TF32 (fp32 when the backend is fp32). The kernel
// twin, cuda_attention.cu, computes the same without cuBLASLt.
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row of att

// Row (bh, t) of p[B * H, T, T] holds scaled scores: softmax over s <= t, zeros after.
__global__ void causal_softmax_kernel(float* p, int T, size_t rows) {
  size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / cuda::kWarp;
  if (row >= rows) return;
  const int lane = threadIdx.x % cuda::kWarp;
  const int t = static_cast<int>(row % T);
  float* x = p + row * T;
  float m = -INFINITY;
  for (int s = lane; s <= t; s += cuda::kWarp) m = fmaxf(m, x[s]);
  m = cuda::warp_max(m);
  float z = 0.0f;
  for (int s = lane; s <= t; s += cuda::kWarp) z += expf(x[s] - m);
  z = cuda::warp_sum(z);
  const float inv = 1.0f / z;
  for (int s = lane; s < T; s += cuda::kWarp) x[s] = s <= t ? expf(x[s] - m) * inv : 0.0f;
}

// dS = P (dP - sum_s P dP) in place of dP, zeros above the diagonal.
__global__ void causal_softmax_backward_kernel(float* dp, const float* p, int T, size_t rows) {
  size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / cuda::kWarp;
  if (row >= rows) return;
  const int lane = threadIdx.x % cuda::kWarp;
  const int t = static_cast<int>(row % T);
  float* d = dp + row * T;
  const float* x = p + row * T;
  float dot = 0.0f;
  for (int s = lane; s <= t; s += cuda::kWarp) dot += x[s] * d[s];
  dot = cuda::warp_sum(dot);
  for (int s = lane; s < T; s += cuda::kWarp) d[s] = s <= t ? x[s] * (d[s] - dot) : 0.0f;
}

}  // namespace

// The products read fp32 activations: TF32 tensor cores (no bf16 copies of the T x T matrices)
// unless the backend is the exact fp32 reference.
CudaMatmulPrecision CudaBackend::attention_precision() const {
  return precision_ == CudaMatmulPrecision::kFp32 ? CudaMatmulPrecision::kFp32
                                                  : CudaMatmulPrecision::kTf32;
}

void CudaBackend::attention_forward(float* out, float* saved, const float* qkv, int B, int T, int H,
                                    int KVH, int hd) {
  use_device();
  if (const CudnnAttention* plans = cudnn_attention(B, T, H, KVH, hd, /*backward=*/false)) {
    attention_forward_cudnn(*plans, out, saved, qkv, B, T, H, KVH, hd);
  } else if (attention_ == CudaAttention::kKernels) {
    attention_forward_kernels(out, saved, qkv, B, T, H, KVH, hd);
  } else {
    attention_forward_gemm(out, saved, qkv, B, T, H, KVH, hd);
  }
}

void CudaBackend::attention_backward(float* dqkv, float* workspace, const float* dout,
                                     const float* qkv, const float* out, const float* saved, int B,
                                     int T, int H, int KVH, int hd) {
  use_device();
  const float* att = saved;
  if (const CudnnAttention* plans = cudnn_attention(B, T, H, KVH, hd, /*backward=*/true)) {
    attention_backward_cudnn(*plans, dqkv, dout, qkv, out, saved, B, T, H, KVH, hd);
  } else if (attention_ == CudaAttention::kKernels) {
    attention_backward_kernels(dqkv, workspace, dout, qkv, att, B, T, H, KVH, hd);
  } else {
    attention_backward_gemm(dqkv, workspace, dout, qkv, att, B, T, H, KVH, hd);
  }
}

// Sizes are queried before the model allocates, so this is where a shape meets cuDNN first: the
// probe runs here (once per shape) and its verdict decides what is saved. The caches it fills
// are mutable state behind a const query, as a plan cache is.
size_t CudaBackend::attention_saved_floats(int B, int T, int H, int KVH, int hd) const {
  if (const_cast<CudaBackend*>(this)->sizes_for_statistics(B, T, H, KVH, hd)) {
    return static_cast<size_t>(B) * H * T;  // log-sum-exp per (b, h, t)
  }
  return static_cast<size_t>(B) * H * T * T;  // the probabilities
}

size_t CudaBackend::attention_workspace_floats(int B, int T, int H, int KVH, int hd) const {
  // cuDNN's buffers are backend scratch; the other paths need dS, the shape of att.
  if (const_cast<CudaBackend*>(this)->sizes_for_statistics(B, T, H, KVH, hd)) return 0;
  return static_cast<size_t>(B) * H * T * T;
}

bool CudaBackend::sizes_for_statistics(int B, int T, int H, int KVH, int hd) {
  use_device();
  const bool statistics = cudnn_plans_for(B, T, H, KVH, hd) != nullptr;
  AttentionSizing& sized = attention_sizing_[{H, KVH, hd}];
  if (statistics) {
    sized.stats_rows = std::max(sized.stats_rows, static_cast<size_t>(B) * T);
  } else {
    sized.prob_elements = std::max(sized.prob_elements, static_cast<size_t>(B) * T * T);
  }
  return statistics;
}

void CudaBackend::attention_forward_gemm(float* out, float* att, const float* qkv, int B, int T,
                                         int H, int KVH, int hd) {
  const int rep = H / KVH;
  const int row = (H + 2 * KVH) * hd;
  const int64_t TT = static_cast<int64_t>(T) * T;
  const CudaMatmulPrecision precision = attention_precision();
  for (int b = 0; b < B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * T * row;
    for (int r = 0; r < rep; ++r) {
      float* p = att + (static_cast<int64_t>(b) * H + r) * TT;
      // S[t][s] = scale sum_d Q[t, d] K[s, d]: column-major C(s, t) = K^T(s, :) . Q(:, t)
      GemmCall s;
      s.transpose_a = true;
      s.m = T, s.n = T, s.k = hd;
      s.A = base + static_cast<int64_t>(H) * hd, s.lda = row, s.stride_a = hd;
      s.B = base + static_cast<int64_t>(r) * hd, s.ldb = row, s.stride_b = int64_t{rep} * hd;
      s.C = p, s.ldc = T, s.stride_c = rep * TT;
      s.batch = KVH;
      s.alpha = 1.0f / std::sqrt(static_cast<float>(hd));
      gemm(s, precision);
    }
  }
  const size_t rows = static_cast<size_t>(B) * H * T;
  causal_softmax_kernel<<<cuda::grid_for(rows, kRowsPerBlock), kRowsPerBlock * cuda::kWarp, 0,
                          stream_>>>(att, T, rows);
  DIPACO_CUDA_CHECK_LAUNCH();
  for (int b = 0; b < B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * T * row;
    for (int r = 0; r < rep; ++r) {
      // O[t, d] = sum_s P[t][s] V[s, d]: column-major C(d, t) = V(d, :) . P(:, t)
      GemmCall o;
      o.m = hd, o.n = T, o.k = T;
      o.A = base + static_cast<int64_t>(H + KVH) * hd, o.lda = row, o.stride_a = hd;
      o.B = att + (static_cast<int64_t>(b) * H + r) * TT, o.ldb = T, o.stride_b = rep * TT;
      o.C = out + static_cast<int64_t>(b) * T * H * hd + static_cast<int64_t>(r) * hd;
      o.ldc = H * hd, o.stride_c = int64_t{rep} * hd;
      o.batch = KVH;
      gemm(o, precision);
    }
  }
}

void CudaBackend::attention_backward_gemm(float* dqkv, float* workspace, const float* dout,
                                          const float* qkv, const float* att, int B, int T, int H,
                                          int KVH, int hd) {
  const int rep = H / KVH;
  const int row = (H + 2 * KVH) * hd;
  const int64_t TT = static_cast<int64_t>(T) * T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const CudaMatmulPrecision precision = attention_precision();
  for (int b = 0; b < B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * T * row;
    const float* dO = dout + static_cast<int64_t>(b) * T * H * hd;
    for (int r = 0; r < rep; ++r) {
      // dP[t][s] = sum_d dO[t, d] V[s, d]
      GemmCall g;
      g.transpose_a = true;
      g.m = T, g.n = T, g.k = hd;
      g.A = base + static_cast<int64_t>(H + KVH) * hd, g.lda = row, g.stride_a = hd;
      g.B = dO + static_cast<int64_t>(r) * hd, g.ldb = H * hd, g.stride_b = int64_t{rep} * hd;
      g.C = workspace + (static_cast<int64_t>(b) * H + r) * TT, g.ldc = T, g.stride_c = rep * TT;
      g.batch = KVH;
      gemm(g, precision);
    }
  }
  const size_t rows = static_cast<size_t>(B) * H * T;
  causal_softmax_backward_kernel<<<cuda::grid_for(rows, kRowsPerBlock), kRowsPerBlock * cuda::kWarp,
                                   0, stream_>>>(workspace, att, T, rows);
  DIPACO_CUDA_CHECK_LAUNCH();
  for (int b = 0; b < B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * T * row;
    float* dbase = dqkv + static_cast<int64_t>(b) * T * row;
    const float* dO = dout + static_cast<int64_t>(b) * T * H * hd;
    for (int r = 0; r < rep; ++r) {
      const float* ds = workspace + (static_cast<int64_t>(b) * H + r) * TT;
      const float* p = att + (static_cast<int64_t>(b) * H + r) * TT;
      // dQ[t, d] = scale sum_s dS[t][s] K[s, d]
      GemmCall q;
      q.m = hd, q.n = T, q.k = T;
      q.A = base + static_cast<int64_t>(H) * hd, q.lda = row, q.stride_a = hd;
      q.B = ds, q.ldb = T, q.stride_b = rep * TT;
      q.C = dbase + static_cast<int64_t>(r) * hd, q.ldc = row, q.stride_c = int64_t{rep} * hd;
      q.batch = KVH;
      q.alpha = scale;
      gemm(q, precision);
      // dK[s, d] (+)= scale sum_t Q[t, d] dS[t][s]
      GemmCall k;
      k.transpose_b = true;
      k.m = hd, k.n = T, k.k = T;
      k.A = base + static_cast<int64_t>(r) * hd, k.lda = row, k.stride_a = int64_t{rep} * hd;
      k.B = ds, k.ldb = T, k.stride_b = rep * TT;
      k.C = dbase + static_cast<int64_t>(H) * hd, k.ldc = row, k.stride_c = hd;
      k.batch = KVH;
      k.alpha = scale;
      k.beta = r == 0 ? 0.0f : 1.0f;
      gemm(k, precision);
      // dV[s, d] (+)= sum_t dO[t, d] P[t][s]
      GemmCall v;
      v.transpose_b = true;
      v.m = hd, v.n = T, v.k = T;
      v.A = dO + static_cast<int64_t>(r) * hd, v.lda = H * hd, v.stride_a = int64_t{rep} * hd;
      v.B = p, v.ldb = T, v.stride_b = rep * TT;
      v.C = dbase + static_cast<int64_t>(H + KVH) * hd, v.ldc = row, v.stride_c = hd;
      v.batch = KVH;
      v.beta = r == 0 ? 0.0f : 1.0f;
      gemm(v, precision);
    }
  }
}

}  // namespace dipaco
