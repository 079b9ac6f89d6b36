// Cross-entropy fused with softmax over the vocabulary, one row per token position.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"

namespace dipaco {

namespace {
DIPACO_CPU_CLONES void forward_rows(float* losses, float* lse, const float* logits,
                                    const int32_t* targets, int64_t begin, int64_t end, int V) {
  for (int64_t n = begin; n < end; ++n) {
    const float* x = logits + n * V;
    float m = cpu::max_of(x, V);
    float l = m + std::log(cpu::sum_exp(x, V, m));
    lse[n] = l;
    int32_t target = targets[n];
    losses[n] = target < 0 ? 0.0f : l - x[target];
  }
}

DIPACO_CPU_CLONES void backward_rows(float* dlogits, const float* logits, const float* lse,
                                     const int32_t* targets, int64_t begin, int64_t end, int V,
                                     float dloss) {
  for (int64_t n = begin; n < end; ++n) {
    const float* x = logits + n * V;
    float* dx = dlogits + n * V;
    int32_t target = targets[n];
    if (target < 0) {
      for (int i = 0; i < V; ++i) dx[i] = 0.0f;
      continue;
    }
    float l = lse[n];
    for (int i = 0; i < V; ++i) dx[i] = cpu::exp_approx(x[i] - l) * dloss;
    dx[target] -= dloss;
  }
}
}  // namespace

// losses[N], lse[N]; logits[N, V], targets[N]
void CpuBackend::crossentropy_forward(float* losses, float* lse, const float* logits,
                                      const int32_t* targets, int N, int V) {
  pool_.parallel_for(N, 8 * V, [&](int64_t begin, int64_t end) {
    forward_rows(losses, lse, logits, targets, begin, end, V);
  });
}

// dlogits[N, V] = (softmax - onehot(target)) * dloss; may be the logits buffer itself.
void CpuBackend::crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                                       const int32_t* targets, int N, int V, float dloss) {
  pool_.parallel_for(N, 8 * V, [&](int64_t begin, int64_t end) {
    backward_rows(dlogits, logits, lse, targets, begin, end, V, dloss);
  });
}

}  // namespace dipaco
