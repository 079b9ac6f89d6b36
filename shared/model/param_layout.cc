#include "model/param_layout.h"

#include <cassert>

namespace dipaco {

ParamLayout::ParamLayout(const ModelConfig& config) {
  const int64_t V = config.vocab_size, C = config.d_model, F = config.d_ff;
  const int64_t hd = config.head_dim(), H = config.n_heads, KVH = config.n_kv_heads;
  size_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    ParamTensor t;
    t.name = std::move(name);
    t.numel = 1;
    for (int64_t d : shape) t.numel *= static_cast<size_t>(d);
    t.is_matrix = shape.size() == 2;
    t.shape = std::move(shape);
    t.offset = offset;
    offset += t.numel;
    tensors_.push_back(std::move(t));
    return tensors_.back().offset;
  };
  add("model.embed_tokens.weight", {V, C});
  for (int i = 0; i < config.n_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    BlockOffsets b{};
    size_t start = offset;
    b.attn_norm = add(p + "input_layernorm.weight", {C});
    b.wqkv = add(p + "self_attn.q_proj.weight", {H * hd, C});
    add(p + "self_attn.k_proj.weight", {KVH * hd, C});
    add(p + "self_attn.v_proj.weight", {KVH * hd, C});
    b.wo = add(p + "self_attn.o_proj.weight", {C, H * hd});
    b.mlp_norm = add(p + "post_attention_layernorm.weight", {C});
    b.w13 = add(p + "mlp.gate_proj.weight", {F, C});
    add(p + "mlp.up_proj.weight", {F, C});
    b.w_down = add(p + "mlp.down_proj.weight", {C, F});
    blocks_.push_back(b);
    block_ranges_.push_back({start, offset - start});
  }
  final_norm_ = add("model.norm.weight", {C});
  lm_head_ = add("lm_head.weight", {V, C});
  total_ = offset;
}

ParamRange ParamLayout::embedding_range() const {
  return {0, tensors_.front().numel};
}

ParamRange ParamLayout::block_range(int i) const {
  assert(i >= 0 && i < static_cast<int>(block_ranges_.size()));
  return block_ranges_[i];
}

ParamRange ParamLayout::head_range() const {
  return {final_norm_, total_ - final_norm_};
}

ParamRange ParamLayout::module_range(int first_block, int last_block, bool include_embedding,
                                     bool include_head) const {
  assert(first_block >= 0 && first_block <= last_block &&
         last_block < static_cast<int>(block_ranges_.size()));
  size_t begin = include_embedding ? 0 : block_ranges_[first_block].offset;
  size_t end = include_head ? total_ : block_ranges_[last_block].end();
  // Including the embedding only makes sense for a module starting at block 0, and the head
  // for one ending at the last block; anything else would not be contiguous.
  assert(!include_embedding || first_block == 0);
  assert(!include_head || last_block + 1 == static_cast<int>(block_ranges_.size()));
  return {begin, end - begin};
}

std::vector<const ParamTensor*> ParamLayout::tensors_in(ParamRange range) const {
  std::vector<const ParamTensor*> out;
  for (const auto& t : tensors_)
    if (t.offset >= range.offset && t.offset + t.numel <= range.end()) out.push_back(&t);
  return out;
}

double training_flops_per_token(const ModelConfig& config, int seq_len) {
  const double matmul_weights = static_cast<double>(ParamLayout(config).total()) -
                                static_cast<double>(config.vocab_size) * config.d_model -
                                config.d_model * (2.0 * config.n_layers + 1);
  return 6.0 * matmul_weights + 6.0 * config.n_layers * seq_len * config.d_model;
}

}  // namespace dipaco
