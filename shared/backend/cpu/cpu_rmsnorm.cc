// RMSNorm (Llama): y = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace dipaco {

namespace {
DIPACO_CPU_CLONES void forward_rows(float* out, float* rstd, const float* inp, const float* weight,
                                    int64_t begin, int64_t end, int C, float eps) {
  for (int64_t n = begin; n < end; ++n) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    float r = 1.0f / std::sqrt(cpu::dot(x, x, C) / static_cast<float>(C) + eps);
    rstd[n] = r;
    for (int c = 0; c < C; ++c) y[c] = x[c] * r * weight[c];
  }
}

DIPACO_CPU_CLONES void backward_rows(float* dinp, const float* dout, const float* inp,
                                     const float* weight, const float* rstd, int64_t begin,
                                     int64_t end, int C) {
  for (int64_t n = begin; n < end; ++n) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    float r = rstd[n];
    float k = cpu::dot3(weight, dy, x, C) * r * r * r / static_cast<float>(C);
    for (int c = 0; c < C; ++c) dx[c] += r * weight[c] * dy[c] - x[c] * k;
  }
}

DIPACO_CPU_CLONES void dweight_columns(float* dweight, const float* dout, const float* inp,
                                       const float* rstd, int64_t c0, int64_t c1, int N, int C) {
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float r = rstd[n];
    for (int64_t c = c0; c < c1; ++c) dweight[c] += dy[c] * x[c] * r;
  }
}
}  // namespace

// out[N, C], rstd[N]; inp[N, C], weight[C]
void CpuBackend::rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight,
                                 int N, int C, float eps) {
  pool_.parallel_for(N, 4 * C, [&](int64_t begin, int64_t end) {
    forward_rows(out, rstd, inp, weight, begin, end, C, eps);
  });
}

// dinp[N, C] += rstd * (w * dy) - x * rstd^3 / C * sum(w * dy * x)
// dweight[C] += sum over n of dy * x * rstd
void CpuBackend::rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, const float* rstd, int N, int C) {
  pool_.parallel_for(N, 4 * C, [&](int64_t begin, int64_t end) {
    backward_rows(dinp, dout, inp, weight, rstd, begin, end, C);
  });
  // The weight gradient is a sum over rows: split by columns so each sum has one owner.
  pool_.parallel_for(C, 2 * N, [&](int64_t c0, int64_t c1) {
    dweight_columns(dweight, dout, inp, rstd, c0, c1, N, C);
  });
}

}  // namespace dipaco
