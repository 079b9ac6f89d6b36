// generate_tokens: autoregressive sampling from a Model, one token at a time.
//
// Each step runs the model on the last min(length, model.max_seq_len()) tokens (no KV cache:
// the exported models are small and this keeps one forward path for training and inference) and
// samples the next token from the last position's logits. Stops after max_new_tokens or at EOS.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "export/sampler.h"
#include "model/model.h"
#include "util/status.h"

namespace dipaco {

struct GenerateOptions {
  SamplingOptions sampling;
  int max_new_tokens = 128;
  int eos_id = 2;         // -1: never stop early
  int reroute_every = 0;  // ask the picker again after every this many new tokens (0: never)
};

// Returns the model to continue `context` with: called before the first new token (with
// rerouting false) and, with GenerateOptions::reroute_every = W > 0, after every W new tokens
// (rerouting true). The model must outlive the generation.
using ModelPicker =
    std::function<Result<Model*>(const std::vector<int32_t>& context, bool rerouting)>;

Result<std::vector<int32_t>> generate_tokens(const ModelPicker& pick,
                                             const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options,
                                             const std::function<void(int32_t)>& on_token);

// One model throughout. `model` must have max_batch() >= 1. `prompt` non-empty, ids < vocab_size.
// `on_token` is called with each new token as soon as it is chosen (for streaming). Returns the new
// tokens.
Result<std::vector<int32_t>> generate_tokens(Model& model, const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options,
                                             const std::function<void(int32_t)>& on_token);

}  // namespace dipaco
