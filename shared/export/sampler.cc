#include "export/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace dipaco {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

double Sampler::uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits, int V) {
  if (options_.temperature <= 0) {
    return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  }
  order_.resize(V);
  std::iota(order_.begin(), order_.end(), 0);
  auto higher = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int k = options_.top_k > 0 ? std::min(options_.top_k, V) : V;
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), higher);
  order_.resize(k);
  // Softmax over the k best at this temperature.
  probs_.resize(k);
  const double top = logits[order_[0]];
  double sum = 0;
  for (int i = 0; i < k; ++i) {
    probs_[i] = std::exp((logits[order_[i]] - top) / options_.temperature);
    sum += probs_[i];
  }
  // Nucleus: the smallest prefix whose mass reaches top_p.
  int n = k;
  if (options_.top_p < 1) {
    double mass = 0;
    for (int i = 0; i < k; ++i) {
      mass += probs_[i] / sum;
      if (mass >= options_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (int i = 0; i < n; ++i) kept += probs_[i];
  double r = uniform() * kept;
  for (int i = 0; i < n; ++i) {
    r -= probs_[i];
    if (r < 0) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace dipaco
