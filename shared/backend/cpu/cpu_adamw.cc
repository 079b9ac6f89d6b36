// AdamW parameter update, torch.optim.AdamW semantics (see tensor/backend.h).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace dipaco {

namespace {
DIPACO_CPU_CLONES void update_chunk(float* param, const float* grad, float* m, float* v,
                                    int64_t begin, int64_t end, float beta1, float beta2, float eps,
                                    float grad_scale, float step_size, float inv_sqrt_bc2,
                                    float decay) {
  for (int64_t i = begin; i < end; ++i) {
    float g = grad[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
    param[i] = param[i] * decay - step_size * mi / denom;
  }
}
}  // namespace

void CpuBackend::adamw_update(float* param, const float* grad, float* m, float* v, size_t count,
                              float lr, float beta1, float beta2, float eps, float weight_decay,
                              float grad_scale, int64_t step) {
  // Bias corrections in double, as torch computes them on the host.
  double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  float step_size = static_cast<float>(lr / bc1);
  float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  float decay = 1.0f - lr * weight_decay;
  pool_.parallel_for(static_cast<int64_t>(count), 8, [&](int64_t begin, int64_t end) {
    update_chunk(param, grad, m, v, begin, end, beta1, beta2, eps, grad_scale, step_size,
                 inv_sqrt_bc2, decay);
  });
}

}  // namespace dipaco
