// Sampler: picks the next token from a row of logits — temperature, top-k, top-p (nucleus).
//
// Deterministic: the same seed and logits give the same tokens on every machine (a fixed
// 64-bit generator and our own uniform draw; ties in the ranking break by token id).
// temperature 0 is greedy (argmax, lowest id on ties).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dipaco {

struct SamplingOptions {
  double temperature = 0.8;  // 0: greedy
  int top_k = 40;            // 0: no limit
  double top_p = 0.95;       // 1: no limit
  uint64_t seed = 1;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int32_t sample(const float* logits, int vocab_size);

 private:
  double uniform();  // [0, 1)

  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace dipaco
