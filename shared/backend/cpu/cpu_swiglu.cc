// SwiGLU activation: out = silu(gate) * up, with gate and up side by side in one row.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace dipaco {

namespace {
DIPACO_CPU_CLONES void forward_rows(float* out, const float* h13, int64_t begin, int64_t end,
                                    int F) {
  for (int64_t n = begin; n < end; ++n) {
    const float* g = h13 + n * 2 * F;
    const float* u = g + F;
    float* y = out + n * F;
    for (int i = 0; i < F; ++i) {
      float sig = 1.0f / (1.0f + cpu::exp_approx(-g[i]));
      y[i] = g[i] * sig * u[i];
    }
  }
}

DIPACO_CPU_CLONES void backward_rows(float* dh13, const float* dout, const float* h13,
                                     int64_t begin, int64_t end, int F) {
  for (int64_t n = begin; n < end; ++n) {
    const float* g = h13 + n * 2 * F;
    const float* u = g + F;
    const float* dy = dout + n * F;
    float* dg = dh13 + n * 2 * F;
    float* du = dg + F;
    for (int i = 0; i < F; ++i) {
      float sig = 1.0f / (1.0f + cpu::exp_approx(-g[i]));
      du[i] = dy[i] * g[i] * sig;
      dg[i] = dy[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
  }
}
}  // namespace

// out[N, F]; h13[N, 2F] = [gate | up]
void CpuBackend::swiglu_forward(float* out, const float* h13, int N, int F) {
  pool_.parallel_for(N, 16 * F,
                     [&](int64_t begin, int64_t end) { forward_rows(out, h13, begin, end, F); });
}

// dh13[N, 2F] = [dout * up * silu'(gate) | dout * silu(gate)],
// silu'(g) = sig(g) * (1 + g * (1 - sig(g)))
void CpuBackend::swiglu_backward(float* dh13, const float* dout, const float* h13, int N, int F) {
  pool_.parallel_for(N, 16 * F, [&](int64_t begin, int64_t end) {
    backward_rows(dh13, dout, h13, begin, end, F);
  });
}

}  // namespace dipaco
