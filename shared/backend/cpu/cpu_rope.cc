// Rotary position embedding, HF/Llama rotate_half layout (see tensor/backend.h).
#include "backend/cpu/cpu_backend.h"

namespace dipaco {

namespace {
// Rotates the first n_heads head vectors of each row by +angle (sign = 1) or -angle (-1).
void rotate_rows(ThreadPool& pool, float* x, const float* cos, const float* sin, int N, int T,
                 int n_heads, int hd, int row_stride, float sign) {
  int half = hd / 2;
  pool.parallel_for(N, int64_t{4} * n_heads * hd, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      int64_t t = n % T;
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      for (int h = 0; h < n_heads; ++h) {
        float* lo = x + n * row_stride + static_cast<int64_t>(h) * hd;
        float* hi = lo + half;
        for (int i = 0; i < half; ++i) {
          float a = lo[i];
          float b = hi[i];
          float si = sign * s[i];
          lo[i] = a * c[i] - b * si;
          hi[i] = b * c[i] + a * si;
        }
      }
    }
  });
}
}  // namespace

// x[N, row_stride], first n_heads * hd floats per row, in place
void CpuBackend::rope_forward(float* x, const float* cos, const float* sin, int N, int T,
                              int n_heads, int hd, int row_stride) {
  rotate_rows(pool_, x, cos, sin, N, T, n_heads, hd, row_stride, 1.0f);
}

// The rotation is orthogonal: its backward is the rotation by -angle.
void CpuBackend::rope_backward(float* dx, const float* cos, const float* sin, int N, int T,
                               int n_heads, int hd, int row_stride) {
  rotate_rows(pool_, dx, cos, sin, N, T, n_heads, hd, row_stride, -1.0f);
}

}  // namespace dipaco
