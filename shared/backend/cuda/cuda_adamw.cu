// AdamW on fp32 master weights, torch.optim.AdamW semantics (CPU twin: cpu_adamw.cc). The bias
// corrections are computed on the host in double, as the CPU backend and torch do. When the
// parameters are bound matmul weights, the same pass writes their bf16 compute copy.
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, size_t count,
                             float beta1, float beta2, float eps, float grad_scale, float step_size,
                             float inv_sqrt_bc2, float decay, __nv_bfloat16* param_bf16) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  float g = grad[i] * grad_scale;
  float mi = beta1 * m[i] + (1.0f - beta1) * g;
  float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
  float p = param[i] * decay - step_size * mi / denom;
  param[i] = p;
  if (param_bf16 != nullptr) param_bf16[i] = __float2bfloat16(p);
}

}  // namespace

void CudaBackend::adamw_update(float* param, const float* grad, float* m, float* v, size_t count,
                               float lr, float beta1, float beta2, float eps, float weight_decay,
                               float grad_scale, int64_t step) {
  if (count == 0) return;  // an empty grid is not a valid launch
  use_device();
  double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  float step_size = static_cast<float>(lr / bc1);
  float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  float decay = 1.0f - lr * weight_decay;
  constexpr int kThreads = 256;
  adamw_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(
      param, grad, m, v, count, beta1, beta2, eps, grad_scale, step_size, inv_sqrt_bc2, decay,
      weight_copy_of(param, count));
  DIPACO_CUDA_CHECK_LAUNCH();
}

}  // namespace dipaco
