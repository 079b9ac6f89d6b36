// Cross-entropy fused with softmax over the vocabulary (CPU twin: cpu_crossentropy.cc). One
// block per token position.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kThreads = 256;

__global__ void crossentropy_forward_kernel(float* losses, float* lse, const float* logits,
                                            const int32_t* targets, int V) {
  __shared__ float reduce[cuda::kWarp];
  const size_t n = blockIdx.x;
  const float* x = logits + n * V;
  float m = -INFINITY;
  for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, x[i]);
  m = cuda::block_max(m, reduce);
  float z = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) z += expf(x[i] - m);
  z = cuda::block_sum(z, reduce);
  if (threadIdx.x == 0) {
    float l = m + logf(z);
    lse[n] = l;
    int32_t target = targets[n];
    losses[n] = target < 0 ? 0.0f : l - x[target];
  }
}

// dlogits may alias logits: each element is read, then written, by the same thread.
__global__ void crossentropy_backward_kernel(float* dlogits, const float* logits, const float* lse,
                                             const int32_t* targets, int V, float dloss) {
  const size_t n = blockIdx.x;
  const float* x = logits + n * V;
  float* dx = dlogits + n * V;
  const int32_t target = targets[n];
  if (target < 0) {
    for (int i = threadIdx.x; i < V; i += blockDim.x) dx[i] = 0.0f;
    return;
  }
  const float l = lse[n];
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float g = expf(x[i] - l) * dloss;
    if (i == target) g -= dloss;
    dx[i] = g;
  }
}

}  // namespace

void CudaBackend::crossentropy_forward(float* losses, float* lse, const float* logits,
                                       const int32_t* targets, int N, int V) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  crossentropy_forward_kernel<<<N, kThreads, 0, stream_>>>(losses, lse, logits, targets, V);
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                                        const int32_t* targets, int N, int V, float dloss) {
  if (N <= 0) return;  // an empty grid is not a valid launch
  use_device();
  crossentropy_backward_kernel<<<N, kThreads, 0, stream_>>>(dlogits, logits, lse, targets, V,
                                                            dloss);
  DIPACO_CUDA_CHECK_LAUNCH();
}

}  // namespace dipaco
