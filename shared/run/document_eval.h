// Validation loss of a model on whole documents: each document is cut from its start into
// windows of up to seq_len + 1 tokens (stride seq_len, never crossing into the next document),
// and every token after the first of a window is predicted once. The same cut for every model,
// so losses of different paths and runs on the same file compare directly.
#pragma once

#include <cstdint>

#include "data/token_file.h"
#include "model/model.h"
#include "util/status.h"

namespace dipaco {

struct EvalSum {
  double loss_sum = 0;  // Σ cross-entropy (nats) over predicted tokens
  uint64_t tokens = 0;  // predicted tokens
  double mean() const { return tokens ? loss_sum / static_cast<double>(tokens) : 0.0; }
  EvalSum& operator+=(const EvalSum& o) {
    loss_sum += o.loss_sum;
    tokens += o.tokens;
    return *this;
  }
};

// Uses batches of model.max_batch() windows of model.max_seq_len() tokens. Stops after
// max_tokens predicted tokens (0 = the whole file), at a window boundary.
EvalSum evaluate_documents(Model& model, const TokenFile& file, uint64_t max_tokens = 0);

}  // namespace dipaco
