// Negative log-likelihood of token sequences under a Model, for `dipaco eval`.
//
// A document of n tokens has n - 1 predictions (each token given the ones before it). Longer
// than the model's context, it is cut into windows that overlap by one token, so that every
// token after the first is predicted exactly once, from the tokens of its own window.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "model/model.h"

namespace dipaco {

struct NllSum {
  double nll = 0;      // sum of -ln p over predicted tokens
  int64_t tokens = 0;  // predicted tokens

  double mean() const { return tokens > 0 ? nll / static_cast<double>(tokens) : NAN; }
  double perplexity() const { return std::exp(mean()); }
  NllSum& operator+=(const NllSum& o) {
    nll += o.nll;
    tokens += o.tokens;
    return *this;
  }
};

// `model` needs max_batch() >= 1; ids must be < vocab_size.
NllSum document_nll(Model& model, std::span<const int32_t> doc);

}  // namespace dipaco
