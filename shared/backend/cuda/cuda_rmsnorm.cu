// RMSNorm forward and backward (CPU twin: cpu_rmsnorm.cc). One warp per row; the weight
// gradient, a sum over rows, goes through per-chunk partial sums added in a fixed order.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each
constexpr int kChunkRows = 64;    // rows per partial sum of the weight gradient

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp,
                                       const float* weight, int N, int C, float eps) {
  int n = blockIdx.x * kRowsPerBlock + threadIdx.x / cuda::kWarp;
  int lane = threadIdx.x % cuda::kWarp;
  if (n >= N) return;
  const float* x = inp + static_cast<size_t>(n) * C;
  float ss = 0.0f;
  for (int c = lane; c < C; c += cuda::kWarp) ss += x[c] * x[c];
  ss = cuda::warp_sum(ss);
  float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if (lane == 0) rstd[n] = r;
  float* y = out + static_cast<size_t>(n) * C;
  for (int c = lane; c < C; c += cuda::kWarp) y[c] = x[c] * r * weight[c];
}

// dinp += r * w * dy - x * r^3 / C * sum(w * dy * x)
__global__ void rmsnorm_backward_kernel(float* dinp, const float* dout, const float* inp,
                                        const float* weight, const float* rstd, int N, int C) {
  int n = blockIdx.x * kRowsPerBlock + threadIdx.x / cuda::kWarp;
  int lane = threadIdx.x % cuda::kWarp;
  if (n >= N) return;
  const float* x = inp + static_cast<size_t>(n) * C;
  const float* dy = dout + static_cast<size_t>(n) * C;
  float* dx = dinp + static_cast<size_t>(n) * C;
  float dot = 0.0f;
  for (int c = lane; c < C; c += cuda::kWarp) dot += weight[c] * dy[c] * x[c];
  dot = cuda::warp_sum(dot);
  float r = rstd[n];
  float k = dot * r * r * r / static_cast<float>(C);
  for (int c = lane; c < C; c += cuda::kWarp) dx[c] += r * weight[c] * dy[c] - x[c] * k;
}

// partials[chunk, C] = sum over the chunk's rows of dy * x * r.
__global__ void rmsnorm_dweight_partials_kernel(float* partials, const float* dout,
                                                const float* inp, const float* rstd, int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int n0 = blockIdx.y * kChunkRows;
  int n1 = min(n0 + kChunkRows, N);
  float acc = 0.0f;
  for (int n = n0; n < n1; ++n) {
    size_t i = static_cast<size_t>(n) * C + c;
    acc += dout[i] * inp[i] * rstd[n];
  }
  partials[static_cast<size_t>(blockIdx.y) * C + c] = acc;
}

__global__ void add_partials_kernel(float* dweight, const float* partials, int chunks, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int k = 0; k < chunks; ++k) acc += partials[static_cast<size_t>(k) * C + c];
  dweight[c] += acc;
}

}  // namespace

void CudaBackend::rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight,
                                  int N, int C, float eps) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  rmsnorm_forward_kernel<<<cuda::grid_for(N, kRowsPerBlock), kRowsPerBlock * cuda::kWarp, 0,
                           stream_>>>(out, rstd, inp, weight, N, C, eps);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                   const float* weight, const float* rstd, int N, int C) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  rmsnorm_backward_kernel<<<cuda::grid_for(N, kRowsPerBlock), kRowsPerBlock * cuda::kWarp, 0,
                            stream_>>>(dinp, dout, inp, weight, rstd, N, C);
  DIPACO_CUDA_CHECK_LAUNCH();
  const int chunks = static_cast<int>(cuda::grid_for(N, kChunkRows));
  auto* partials =
      static_cast<float*>(scratch(kPartials, static_cast<size_t>(chunks) * C * sizeof(float)));
  constexpr int kColumnThreads = 128;
  dim3 grid(cuda::grid_for(C, kColumnThreads), chunks);
  rmsnorm_dweight_partials_kernel<<<grid, kColumnThreads, 0, stream_>>>(partials, dout, inp, rstd,
                                                                        N, C);
  DIPACO_CUDA_CHECK_LAUNCH();
  add_partials_kernel<<<cuda::grid_for(C, kColumnThreads), kColumnThreads, 0, stream_>>>(
      dweight, partials, chunks, C);
  DIPACO_CUDA_CHECK_LAUNCH();
}

}  // namespace dipaco
