// Causal multi-head attention with grouped-query heads (CPU twin: cpu_attention.cc), with the
// probabilities materialized in att[B, H, T, T] as the Backend contract asks.
//
// Forward: one block per (query row t, batch b, head h). Each warp takes keys s <= t in turn and
// reduces q.k across its lanes; the block then does the softmax in shared memory and sums p v
// with threads over the head dimension. Backward: one block per query row computes dS and dQ
// (dS kept in the workspace), then one block per (key row s, batch b, kv head g) sums dK and dV
// over the group's heads and the rows t >= s. No atomics: every sum has a fixed order.
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kThreads = 128;

struct Shape {
  int T, H, KVH, hd;
  size_t row;  // floats per qkv row, (H + 2 KVH) hd
  __device__ size_t q(int b, int t, int h) const {
    return (static_cast<size_t>(b) * T + t) * row + static_cast<size_t>(h) * hd;
  }
  __device__ size_t k(int b, int s, int g) const {
    return (static_cast<size_t>(b) * T + s) * row + static_cast<size_t>(H + g) * hd;
  }
  __device__ size_t v(int b, int s, int g) const {
    return (static_cast<size_t>(b) * T + s) * row + static_cast<size_t>(H + KVH + g) * hd;
  }
  __device__ size_t out(int b, int t, int h) const {
    return (static_cast<size_t>(b) * T + t) * H * hd + static_cast<size_t>(h) * hd;
  }
  __device__ size_t att(int b, int h, int t) const {
    return ((static_cast<size_t>(b) * H + h) * T + t) * T;
  }
};

// sum over s in [0, count) of w[s] * m[s * row + d], for every d < hd, with the block's threads
// split into parts over s; part sums are added in part order. Result in result[d] (shared).
__device__ void weighted_rows(float* result, float* part_sums, const float* w, const float* m,
                              size_t row, int count, int hd) {
  const int parts = blockDim.x >= hd ? blockDim.x / hd : 1;
  const int part = threadIdx.x / hd;
  for (int d0 = 0; d0 < hd; d0 += blockDim.x) {
    int d = d0 + static_cast<int>(threadIdx.x % hd);
    bool active = part < parts && (parts > 1 || d0 + static_cast<int>(threadIdx.x) < hd);
    float acc = 0.0f;
    if (active) {
      for (int s = part; s < count; s += parts) acc += w[s] * m[s * row + d];
    }
    __syncthreads();
    if (active) part_sums[part * hd + (d - d0)] = acc;
    __syncthreads();
    if (threadIdx.x < static_cast<unsigned>(min(hd - d0, static_cast<int>(blockDim.x)))) {
      float total = 0.0f;
      int limit = parts;
      for (int p = 0; p < limit; ++p) total += part_sums[p * hd + threadIdx.x];
      result[d0 + threadIdx.x] = total;
    }
    __syncthreads();
  }
}

// Dot products of a shared vector x[hd] with rows m[s * row], s in [0, count), one warp per s.
__device__ void row_dots(float* dots, const float* x, const float* m, size_t row, int count, int hd,
                         float scale) {
  const int lane = threadIdx.x % cuda::kWarp;
  const int warp = threadIdx.x / cuda::kWarp;
  const int warps = blockDim.x / cuda::kWarp;
  for (int s = warp; s < count; s += warps) {
    const float* r = m + s * row;
    float acc = 0.0f;
    for (int d = lane; d < hd; d += cuda::kWarp) acc += x[d] * r[d];
    acc = cuda::warp_sum(acc);
    if (lane == 0) dots[s] = acc * scale;
  }
}

// Shared memory of the per-query-row kernels: vec[hd] | dots[T] | result[hd] |
// part_sums[kThreads] | reduce[32].
size_t forward_shared_bytes(int T, int hd) {
  return sizeof(float) * (2 * static_cast<size_t>(hd) + T + kThreads + cuda::kWarp);
}

// The same layout, carved; the current (t, b, h) and its kv head g.
struct RowBlock {
  float *vec, *dots, *result, *part_sums, *reduce;
  int t, b, h, g;
  __device__ RowBlock(float* smem, const Shape& sh)
      : vec(smem),
        dots(vec + sh.hd),
        result(dots + sh.T),
        part_sums(result + sh.hd),
        reduce(part_sums + kThreads),
        t(blockIdx.x),
        b(blockIdx.y / sh.H),
        h(blockIdx.y % sh.H),
        g(h / (sh.H / sh.KVH)) {}
};

__global__ void attention_forward_kernel(float* out, float* att, const float* qkv, Shape sh,
                                         float scale) {
  extern __shared__ float smem[];
  const RowBlock rb(smem, sh);
  float *vec = rb.vec, *dots = rb.dots, *result = rb.result, *part_sums = rb.part_sums,
        *reduce = rb.reduce;
  const int t = rb.t, b = rb.b, h = rb.h, g = rb.g;
  const int count = t + 1;

  for (int d = threadIdx.x; d < sh.hd; d += blockDim.x) vec[d] = qkv[sh.q(b, t, h) + d];
  __syncthreads();
  row_dots(dots, vec, qkv + sh.k(b, 0, g), sh.row, count, sh.hd, scale);
  __syncthreads();
  float m = -INFINITY;
  for (int s = threadIdx.x; s < count; s += blockDim.x) m = fmaxf(m, dots[s]);
  m = cuda::block_max(m, reduce);
  float z = 0.0f;
  for (int s = threadIdx.x; s < count; s += blockDim.x) {
    float e = expf(dots[s] - m);
    dots[s] = e;
    z += e;
  }
  z = cuda::block_sum(z, reduce);
  const float inv = 1.0f / z;
  float* p = att + sh.att(b, h, t);
  for (int s = threadIdx.x; s < sh.T; s += blockDim.x) {
    float value = s < count ? dots[s] * inv : 0.0f;
    if (s < count) dots[s] = value;
    p[s] = value;
  }
  __syncthreads();
  weighted_rows(result, part_sums, dots, qkv + sh.v(b, 0, g), sh.row, count, sh.hd);
  for (int d = threadIdx.x; d < sh.hd; d += blockDim.x) out[sh.out(b, t, h) + d] = result[d];
}

// Per query row: dP[s] = dO.v[s], dS = P (dP - sum P dP) (to the workspace), dQ = scale dS K.
__global__ void attention_backward_query_kernel(float* dqkv, float* ds_out, const float* dout,
                                                const float* qkv, const float* att, Shape sh,
                                                float scale) {
  extern __shared__ float smem[];
  const RowBlock rb(smem, sh);
  float *vec = rb.vec, *dots = rb.dots, *result = rb.result, *part_sums = rb.part_sums,
        *reduce = rb.reduce;
  const int t = rb.t, b = rb.b, h = rb.h, g = rb.g;
  const int count = t + 1;
  const float* p = att + sh.att(b, h, t);
  float* ds = ds_out + sh.att(b, h, t);

  for (int d = threadIdx.x; d < sh.hd; d += blockDim.x) vec[d] = dout[sh.out(b, t, h) + d];
  __syncthreads();
  row_dots(dots, vec, qkv + sh.v(b, 0, g), sh.row, count, sh.hd, 1.0f);
  __syncthreads();
  float pdp = 0.0f;
  for (int s = threadIdx.x; s < count; s += blockDim.x) pdp += p[s] * dots[s];
  pdp = cuda::block_sum(pdp, reduce);
  for (int s = threadIdx.x; s < sh.T; s += blockDim.x) {
    float value = s < count ? p[s] * (dots[s] - pdp) : 0.0f;
    if (s < count) dots[s] = value;
    ds[s] = value;
  }
  __syncthreads();
  weighted_rows(result, part_sums, dots, qkv + sh.k(b, 0, g), sh.row, count, sh.hd);
  for (int d = threadIdx.x; d < sh.hd; d += blockDim.x) dqkv[sh.q(b, t, h) + d] = scale * result[d];
}

// Per key row s of kv head g: dK[s] = scale sum_h sum_{t>=s} dS[h, t, s] q[h, t];
// dV[s] = sum_h sum_{t>=s} P[h, t, s] dO[h, t]. Threads over d, parts over t.
__global__ void attention_backward_key_kernel(float* dqkv, const float* ds, const float* dout,
                                              const float* qkv, const float* att, Shape sh,
                                              float scale) {
  extern __shared__ float smem[];
  float* part_k = smem;               // [parts, hd]
  float* part_v = part_k + kThreads;  // [parts, hd] (parts * hd <= kThreads)
  const int s = blockIdx.x;
  const int b = blockIdx.y / sh.KVH;
  const int g = blockIdx.y % sh.KVH;
  const int group = sh.H / sh.KVH;
  const int parts = blockDim.x >= sh.hd ? blockDim.x / sh.hd : 1;
  const int part = threadIdx.x / sh.hd;
  for (int d0 = 0; d0 < sh.hd; d0 += blockDim.x) {
    int d = d0 + static_cast<int>(threadIdx.x % sh.hd);
    bool active = part < parts && (parts > 1 || d0 + static_cast<int>(threadIdx.x) < sh.hd);
    float dk = 0.0f, dv = 0.0f;
    if (active) {
      for (int h = g * group; h < (g + 1) * group; ++h) {
        for (int t = s + part; t < sh.T; t += parts) {
          size_t a = sh.att(b, h, t) + s;
          dk += ds[a] * qkv[sh.q(b, t, h) + d];
          dv += att[a] * dout[sh.out(b, t, h) + d];
        }
      }
    }
    __syncthreads();
    if (active) {
      part_k[part * sh.hd + (d - d0)] = dk;
      part_v[part * sh.hd + (d - d0)] = dv;
    }
    __syncthreads();
    if (threadIdx.x < static_cast<unsigned>(min(sh.hd - d0, static_cast<int>(blockDim.x)))) {
      float sum_k = 0.0f, sum_v = 0.0f;
      for (int p = 0; p < parts; ++p) {
        sum_k += part_k[p * sh.hd + threadIdx.x];
        sum_v += part_v[p * sh.hd + threadIdx.x];
      }
      dqkv[sh.k(b, s, g) + d0 + threadIdx.x] = scale * sum_k;
      dqkv[sh.v(b, s, g) + d0 + threadIdx.x] = sum_v;
    }
    __syncthreads();
  }
}

template <typename Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  constexpr size_t kDefaultLimit = 48 << 10;
  if (bytes > kDefaultLimit) {
    DIPACO_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
  }
}

}  // namespace

void CudaBackend::attention_forward_kernels(float* out, float* att, const float* qkv, int B, int T,
                                            int H, int KVH, int hd) {
  Shape sh{T, H, KVH, hd, static_cast<size_t>(H + 2 * KVH) * hd};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  size_t shared = forward_shared_bytes(T, hd);
  allow_shared(attention_forward_kernel, shared);
  attention_forward_kernel<<<dim3(T, B * H), kThreads, shared, stream_>>>(out, att, qkv, sh, scale);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::attention_backward_kernels(float* dqkv, float* workspace, const float* dout,
                                             const float* qkv, const float* att, int B, int T,
                                             int H, int KVH, int hd) {
  Shape sh{T, H, KVH, hd, static_cast<size_t>(H + 2 * KVH) * hd};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  size_t shared = forward_shared_bytes(T, hd);
  allow_shared(attention_backward_query_kernel, shared);
  attention_backward_query_kernel<<<dim3(T, B * H), kThreads, shared, stream_>>>(
      dqkv, workspace, dout, qkv, att, sh, scale);
  DIPACO_CUDA_CHECK_LAUNCH();
  attention_backward_key_kernel<<<dim3(T, B * KVH), kThreads, 2 * kThreads * sizeof(float),
                                  stream_>>>(dqkv, workspace, dout, qkv, att, sh, scale);
  DIPACO_CUDA_CHECK_LAUNCH();
}

}  // namespace dipaco
