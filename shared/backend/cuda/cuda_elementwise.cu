// Token embedding, rotary position embedding, SwiGLU and the residual stream's adds: one thread
// per element (or element pair), CPU twins in cpu_embedding.cc, cpu_rope.cc, cpu_swiglu.cc and
// cpu_backend.cc.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kThreads = 256;

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         size_t count, int C) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  size_t n = i / C;
  int c = static_cast<int>(i % C);
  out[i] = wte[static_cast<size_t>(tokens[n]) * C + c];
}

// dwte[V, C] += scatter of dout by token. Deterministic without atomics: block (x, y) owns
// columns [x * blockDim, ...) of the vocabulary rows v with v % gridDim.y == y, and walks the
// positions n = 0..N-1 in order, so every row's sum has the CPU's order.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* tokens,
                                          int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int32_t part = static_cast<int32_t>(blockIdx.y);
  const int32_t parts = static_cast<int32_t>(gridDim.y);
  for (int n = 0; n < N; ++n) {
    int32_t token = tokens[n];
    if (token % parts != part) continue;
    dwte[static_cast<size_t>(token) * C + c] += dout[static_cast<size_t>(n) * C + c];
  }
}

// One thread per (row n, head h, pair i < hd/2); sign = +1 rotates forward, -1 back.
__global__ void rope_kernel(float* x, const float* cos, const float* sin, int N, int T, int n_heads,
                            int hd, int row_stride, float sign) {
  const int half = hd / 2;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t total = static_cast<size_t>(N) * n_heads * half;
  if (i >= total) return;
  int pair = static_cast<int>(i % half);
  size_t rest = i / half;
  int h = static_cast<int>(rest % n_heads);
  size_t n = rest / n_heads;
  int t = static_cast<int>(n % T);
  float* lo = x + n * row_stride + static_cast<size_t>(h) * hd;
  float* hi = lo + half;
  float c = cos[static_cast<size_t>(t) * half + pair];
  float s = sign * sin[static_cast<size_t>(t) * half + pair];
  float a = lo[pair];
  float b = hi[pair];
  lo[pair] = a * c - b * s;
  hi[pair] = b * c + a * s;
}

__device__ inline float sigmoid(float g) {
  return 1.0f / (1.0f + expf(-g));
}

__global__ void swiglu_forward_kernel(float* out, const float* h13, int N, int F) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(N) * F) return;
  size_t n = i / F;
  size_t f = i % F;
  float g = h13[n * 2 * F + f];
  float u = h13[n * 2 * F + F + f];
  out[i] = g * sigmoid(g) * u;
}

__global__ void swiglu_backward_kernel(float* dh13, const float* dout, const float* h13, int N,
                                       int F) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(N) * F) return;
  size_t n = i / F;
  size_t f = i % F;
  float g = h13[n * 2 * F + f];
  float u = h13[n * 2 * F + F + f];
  float sig = sigmoid(g);
  float dy = dout[i];
  dh13[n * 2 * F + F + f] = dy * g * sig;
  dh13[n * 2 * F + f] = dy * u * sig * (1.0f + g * (1.0f - sig));
}

__global__ void residual_kernel(float* out, const float* a, const float* b, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] + b[i];
}

__global__ void add_kernel(float* dst, const float* src, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] += src[i];
}

__global__ void scale_kernel(float* x, float s, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] *= s;
}

}  // namespace

void CudaBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                                    int C) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  size_t count = static_cast<size_t>(N) * C;
  embedding_forward_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(
      out, tokens, wte, count, C);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                                     int C) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  constexpr int kColumnThreads = 128;
  constexpr unsigned kVocabParts = 128;
  dim3 grid(cuda::grid_for(C, kColumnThreads), kVocabParts);
  embedding_backward_kernel<<<grid, kColumnThreads, 0, stream_>>>(dwte, dout, tokens, N, C);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::rope_forward(float* x, const float* cos, const float* sin, int N, int T,
                               int n_heads, int hd, int row_stride) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  size_t total = static_cast<size_t>(N) * n_heads * (hd / 2);
  rope_kernel<<<cuda::grid_for(total, kThreads), kThreads, 0, stream_>>>(x, cos, sin, N, T, n_heads,
                                                                         hd, row_stride, 1.0f);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::rope_backward(float* dx, const float* cos, const float* sin, int N, int T,
                                int n_heads, int hd, int row_stride) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  size_t total = static_cast<size_t>(N) * n_heads * (hd / 2);
  rope_kernel<<<cuda::grid_for(total, kThreads), kThreads, 0, stream_>>>(
      dx, cos, sin, N, T, n_heads, hd, row_stride, -1.0f);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::swiglu_forward(float* out, const float* h13, int N, int F) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  swiglu_forward_kernel<<<cuda::grid_for(static_cast<size_t>(N) * F, kThreads), kThreads, 0,
                          stream_>>>(out, h13, N, F);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::swiglu_backward(float* dh13, const float* dout, const float* h13, int N, int F) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  swiglu_backward_kernel<<<cuda::grid_for(static_cast<size_t>(N) * F, kThreads), kThreads, 0,
                           stream_>>>(dh13, dout, h13, N, F);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::residual_forward(float* out, const float* a, const float* b, size_t count) {
  if (count == 0) return;  // an empty grid is not a valid launch
  use_device();
  residual_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(out, a, b, count);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::add_inplace(float* dst, const float* src, size_t count) {
  if (count == 0) return;  // an empty grid is not a valid launch
  use_device();
  add_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(dst, src, count);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::scale_inplace(float* x, float s, size_t count) {
  if (count == 0) return;  // an empty grid is not a valid launch
  use_device();
  scale_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(x, s, count);
  DIPACO_CUDA_CHECK_LAUNCH();
}

}  // namespace dipaco
