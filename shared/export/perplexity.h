// Negative log-likelihood of token sequences under a Model, for `dipaco eval`.
//
// A document of n tokens has n - 1 predictions (each token given the ones before it). Longer
// than the model's context, it is cut into windows that overlap by one token, so that every
// token after the first is predicted exactly once, from the tokens of its own window.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

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

// -ln p(doc[i+1] | window) for every i in [0, doc.size() - 1), same windows as document_nll,
// from the logits (log-softmax in double on the host). For re-routed evaluation, where the
// tokens of one document are scored by different paths.
std::vector<double> token_nll(Model& model, std::span<const int32_t> doc);

}  // namespace dipaco
