// Token embedding lookup and its scatter-add backward.
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace dipaco {

// out[N, C] = wte[tokens[n], :]
void CpuBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                                   int C) {
  pool_.parallel_for(N, C, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n)
      std::memcpy(out + n * C, wte + static_cast<int64_t>(tokens[n]) * C, sizeof(float) * C);
  });
}

// dwte[V, C] += dout[N, C] scattered by tokens. Threads split the C columns (not the rows), so
// repeated tokens never race and every row is added in the order n = 0..N-1.
void CpuBackend::embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                                    int C) {
  pool_.parallel_for(C, N, [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; ++n) {
      float* dst = dwte + static_cast<int64_t>(tokens[n]) * C;
      const float* src = dout + static_cast<int64_t>(n) * C;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace dipaco
