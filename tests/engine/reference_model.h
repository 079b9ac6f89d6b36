// A double-precision Llama forward composed from reference_ops.h, over the same flat
// parameter layout as dipaco::Model: the whole-model gradient check differentiates it.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "model/model_config.h"
#include "model/param_layout.h"
#include "reference_ops.h"

namespace dipaco::reference {

inline Vec slice(const Vec& p, size_t offset, size_t n) {
  return Vec(p.begin() + offset, p.begin() + offset + n);
}

// Mean cross-entropy of the model with parameters p on inputs/targets [B, T]; logits_out
// (optional) receives [B, T, V].
inline double model_loss(const ModelConfig& c, const Vec& p, const std::vector<int32_t>& inputs,
                         const std::vector<int32_t>& targets, int B, int T,
                         Vec* logits_out = nullptr) {
  ParamLayout layout(c);
  const int N = B * T, C = c.d_model, V = c.vocab_size, F = c.d_ff, H = c.n_heads;
  const int KVH = c.n_kv_heads, hd = c.head_dim(), qkv = c.qkv_dim();
  Vec x = embedding(inputs, slice(p, 0, static_cast<size_t>(V) * C), C);
  for (int l = 0; l < c.n_layers; ++l) {
    const BlockOffsets& o = layout.block(l);
    Vec h = rmsnorm(x, slice(p, o.attn_norm, C), N, C, c.norm_eps);
    Vec q = matmul(h, slice(p, o.wqkv, static_cast<size_t>(qkv) * C), N, C, qkv);
    q = rope(q, N, T, H + KVH, hd, qkv, c.rope_theta);
    Vec a = attention(q, B, T, H, KVH, hd);
    Vec proj = matmul(a, slice(p, o.wo, static_cast<size_t>(C) * H * hd), N, H * hd, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    h = rmsnorm(x, slice(p, o.mlp_norm, C), N, C, c.norm_eps);
    Vec h13 = matmul(h, slice(p, o.w13, static_cast<size_t>(2) * F * C), N, C, 2 * F);
    Vec s = swiglu(h13, N, F);
    proj = matmul(s, slice(p, o.w_down, static_cast<size_t>(C) * F), N, F, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
  }
  Vec h = rmsnorm(x, slice(p, layout.final_norm(), C), N, C, c.norm_eps);
  Vec logits = matmul(h, slice(p, layout.lm_head(), static_cast<size_t>(V) * C), N, C, V);
  if (logits_out != nullptr) *logits_out = logits;
  Vec losses = crossentropy(logits, targets, N, V);
  double sum = 0;
  int counted = 0;
  for (int n = 0; n < N; ++n) {
    sum += losses[n];
    counted += targets[n] >= 0;
  }
  return counted == 0 ? 0.0 : sum / counted;
}

}  // namespace dipaco::reference
