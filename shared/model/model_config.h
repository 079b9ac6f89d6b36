// ModelConfig: the shape of a Llama-style decoder, validated with errors that name the key.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

struct ModelConfig {
  int vocab_size = 8192;
  int d_model = 256;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;  // grouped-query attention when < n_heads
  int d_ff = 704;      // SwiGLU hidden size
  int max_seq_len = 256;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;

  int head_dim() const { return d_model / n_heads; }
  // Floats in one fused q/k/v projection row: (n_heads + 2 n_kv_heads) * head_dim.
  int qkv_dim() const { return (n_heads + 2 * n_kv_heads) * head_dim(); }

  // "d_model 250 is not divisible by n_heads 4", "n_layers must be >= 1, got 0", ...
  Status validate() const;

  // "vocab_size=8192 d_model=256 ..." (stored in checkpoints) and back.
  std::string to_string() const;
  static Result<ModelConfig> parse(std::string_view text);
  // "d_model 64 vs 128, d_ff 172 vs 344": the keys where this and `other` differ.
  std::string difference(const ModelConfig& other) const;

  bool operator==(const ModelConfig&) const = default;
};

}  // namespace dipaco
