// ParamLayout: where every weight of a model lives inside its one contiguous parameter buffer.
//
// Order (names as in Hugging Face Llama checkpoints):
//   model.embed_tokens.weight                    [V, C]
//   for each block i, contiguous:
//     model.layers.i.input_layernorm.weight      [C]
//     model.layers.i.self_attn.{q,k,v}_proj.weight  [H*hd, C], [KVH*hd, C], [KVH*hd, C]
//     model.layers.i.self_attn.o_proj.weight     [C, H*hd]
//     model.layers.i.post_attention_layernorm.weight [C]
//     model.layers.i.mlp.{gate,up}_proj.weight   [F, C], [F, C]
//     model.layers.i.mlp.down_proj.weight        [C, F]
//   model.norm.weight                            [C]
//   lm_head.weight                               [V, C]
// q, k, v are adjacent, so together they are one fused [(H + 2 KVH) * hd, C] projection; gate
// and up likewise form one [2F, C] projection. A run of consecutive blocks (a DiPaCo module),
// with the embedding before it or the final norm and head after it, is one contiguous slice:
// module_range() returns it, and the gradient buffer uses the same layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace dipaco {

// A slice of the parameter (or gradient, or optimizer state) buffer, in floats.
struct ParamRange {
  size_t offset = 0;
  size_t count = 0;
  size_t end() const { return offset + count; }
  bool operator==(const ParamRange&) const = default;
};

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // floats from the start of the buffer
  size_t numel = 0;
  bool is_matrix = false;  // 2-D weights get weight decay; norm gains do not
};

// Float offsets of one block's weights.
struct BlockOffsets {
  size_t attn_norm, wqkv, wo, mlp_norm, w13, w_down;
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& config);

  size_t total() const { return total_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const BlockOffsets& block(int i) const { return blocks_[i]; }
  size_t embedding() const { return 0; }
  size_t final_norm() const { return final_norm_; }
  size_t lm_head() const { return lm_head_; }

  ParamRange embedding_range() const;
  ParamRange block_range(int i) const;
  // Final norm and LM head.
  ParamRange head_range() const;
  // Blocks first_block..last_block (inclusive), optionally with the embedding in front and the
  // final norm + head behind: one contiguous slice. Asserts the blocks exist.
  ParamRange module_range(int first_block, int last_block, bool include_embedding,
                          bool include_head) const;
  // The tensors wholly inside `range`, in order.
  std::vector<const ParamTensor*> tensors_in(ParamRange range) const;

 private:
  std::vector<ParamTensor> tensors_;
  std::vector<BlockOffsets> blocks_;
  std::vector<ParamRange> block_ranges_;
  size_t final_norm_ = 0;
  size_t lm_head_ = 0;
  size_t total_ = 0;
};

// Training FLOPs per token (forward + backward = 3x forward), the MFU convention of PaLM: 6 per
// weight of every matmul (projections and LM head; the embedding lookup is free) plus causal
// attention, 6 * n_layers * seq_len * d_model (QK^T and PV over seq_len / 2 keys on average).
double training_flops_per_token(const ModelConfig& config, int seq_len);

}  // namespace dipaco
