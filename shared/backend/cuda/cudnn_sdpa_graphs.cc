#include "backend/cuda/cudnn_sdpa_graphs.h"

#include <cmath>
#include <vector>

namespace dipaco::cudnn {

namespace {

using Dims = std::vector<int64_t>;

// q [B, H, T, hd] inside the packed qkv rows.
int64_t declare_q(GraphBuilder& g, const SdpaShape& s) {
  return g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.H, s.T, s.hd}, {s.T * s.row(), s.hd, s.row(), 1},
                  false, kUidQ);
}
// k^T [B, KVH, hd, T]: the k rows seen transposed.
int64_t declare_k_transposed(GraphBuilder& g, const SdpaShape& s) {
  return g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.KVH, s.hd, s.T}, {s.T * s.row(), s.hd, 1, s.row()},
                  false, kUidK);
}
// [B, H, T, hd] in a [B, T, H * hd] buffer (out, dout).
int64_t declare_heads(GraphBuilder& g, const SdpaShape& s, int64_t uid) {
  return g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.H, s.T, s.hd},
                  {s.T * s.H * s.hd, s.hd, s.H * s.hd, 1}, false, uid);
}
int64_t declare_row_stats(GraphBuilder& g, const SdpaShape& s, int64_t uid) {
  return g.tensor(CUDNN_DATA_FLOAT, {s.B, s.H, s.T, 1}, {s.H * s.T, s.T, 1, 1}, false, uid);
}

// scale * q k^T, [B, H, T, T].
int64_t scaled_scores(GraphBuilder& g, const SdpaShape& s, int64_t q, int64_t kt) {
  const Dims tt = {s.B, s.H, s.T, s.T};
  const int64_t scores = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.matmul(q, kt, scores);
  const int64_t scaled = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_MUL, scores, scaled,
              g.scalar(1.0f / std::sqrt(static_cast<float>(s.hd))));
  return scaled;
}

// x where the key is not after the query (row >= col), else -inf.
int64_t causal_mask(GraphBuilder& g, const SdpaShape& s, int64_t x) {
  const Dims tt = {s.B, s.H, s.T, s.T};
  const int64_t row = g.virtual_tensor(CUDNN_DATA_INT32, tt);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, row, 0, 0, CUDNN_DATA_FLOAT, 2);
  const int64_t col = g.virtual_tensor(CUDNN_DATA_INT32, tt);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, col, 0, 0, CUDNN_DATA_FLOAT, 3);
  const int64_t keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, tt);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, keep, col, 0, CUDNN_DATA_BOOLEAN);
  const int64_t masked = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, masked, g.scalar(-INFINITY), keep);
  return masked;
}

}  // namespace

void declare_sdpa_forward(GraphBuilder& g, const SdpaShape& s) {
  const int64_t q = declare_q(g, s);
  const int64_t kt = declare_k_transposed(g, s);
  const int64_t v = g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.KVH, s.T, s.hd},
                             {s.T * s.row(), s.hd, s.row(), 1}, false, kUidV);
  const int64_t o = declare_heads(g, s, kUidO);
  const int64_t stats = declare_row_stats(g, s, kUidStats);

  const Dims tt = {s.B, s.H, s.T, s.T}, rows = {s.B, s.H, s.T, 1};
  const int64_t masked = causal_mask(g, s, scaled_scores(g, s, q, kt));
  const int64_t row_max = g.virtual_tensor(CUDNN_DATA_FLOAT, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, row_max);
  const int64_t shifted = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_SUB, masked, shifted, row_max);
  const int64_t exps = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, exps);
  const int64_t row_sum = g.virtual_tensor(CUDNN_DATA_FLOAT, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exps, row_sum);
  const int64_t log_sum = g.virtual_tensor(CUDNN_DATA_FLOAT, rows);
  g.pointwise(CUDNN_POINTWISE_LOG, row_sum, log_sum);
  g.pointwise(CUDNN_POINTWISE_ADD, row_max, stats, log_sum);
  const int64_t probs = g.virtual_tensor(CUDNN_DATA_BFLOAT16, tt);
  g.pointwise(CUDNN_POINTWISE_DIV, exps, probs, row_sum);
  g.matmul(probs, v, o);
}

void declare_sdpa_backward(GraphBuilder& g, const SdpaShape& s) {
  const int64_t q = declare_q(g, s);
  const int64_t kt = declare_k_transposed(g, s);
  // v^T [B, KVH, hd, T]
  const int64_t vt = g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.KVH, s.hd, s.T},
                              {s.T * s.row(), s.hd, 1, s.row()}, false, kUidV);
  const int64_t o = declare_heads(g, s, kUidO);
  const int64_t dout = declare_heads(g, s, kUidDO);
  const int64_t stats = declare_row_stats(g, s, kUidStats);
  // dq, dk, dv: the same layout as q, k, v in a packed dqkv buffer.
  const int64_t dq = g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.H, s.T, s.hd},
                              {s.T * s.row(), s.hd, s.row(), 1}, false, kUidDQ);
  const int64_t dk = g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.KVH, s.T, s.hd},
                              {s.T * s.row(), s.hd, s.row(), 1}, false, kUidDK);
  const int64_t dv = g.tensor(CUDNN_DATA_BFLOAT16, {s.B, s.KVH, s.T, s.hd},
                              {s.T * s.row(), s.hd, s.row(), 1}, false, kUidDV);

  const Dims tt = {s.B, s.H, s.T, s.T}, heads = {s.B, s.H, s.T, s.hd}, rows = {s.B, s.H, s.T, 1};
  // sum_d dO * O per row, materialized (cuDNN's pattern reads it back in the dS step).
  const int64_t dout_o =
      g.tensor(CUDNN_DATA_FLOAT, heads, {s.H * s.T * s.hd, s.T * s.hd, s.H * s.hd, 1},
               /*is_virtual=*/true);
  g.pointwise(CUDNN_POINTWISE_MUL, dout, dout_o, o);
  const int64_t dot = g.virtual_tensor(CUDNN_DATA_FLOAT, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, dout_o, dot);
  const int64_t softmax_sum = declare_row_stats(g, s, kUidSoftmaxSum);
  g.pointwise(CUDNN_POINTWISE_MUL, dot, softmax_sum, g.scalar(1.0f));

  // P = exp(mask(S - stats)): the statistics come off before the mask, in the order cuDNN's own
  // frontend lowers this pattern to (checked against it, see the header).
  const int64_t scaled = scaled_scores(g, s, q, kt);
  const int64_t shifted = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_SUB, scaled, shifted, stats);
  const int64_t probs = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_EXP, causal_mask(g, s, shifted), probs);

  // The [T, T] operands seen transposed: dims (T_kv, T_q), strides (1, T).
  const Dims tt_t_strides = {s.H * s.T * s.T, s.T * s.T, 1, s.T};
  const bool grouped = s.H != s.KVH;
  const int64_t probs_t = g.tensor(CUDNN_DATA_BFLOAT16, tt, tt_t_strides, true);
  g.reshape(probs, probs_t);
  if (grouped) {
    const int64_t dv_heads = g.virtual_tensor(CUDNN_DATA_BFLOAT16, heads);
    g.matmul(probs_t, dout, dv_heads);
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, dv_heads, dv);
  } else {
    g.matmul(probs_t, dout, dv);
  }

  const int64_t dprobs = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.matmul(dout, vt, dprobs);
  const int64_t centered = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_SUB, dprobs, centered, softmax_sum);
  const int64_t dscores = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_MUL, centered, dscores, probs);
  const int64_t ds = g.virtual_tensor(CUDNN_DATA_FLOAT, tt);
  g.pointwise(CUDNN_POINTWISE_MUL, dscores, ds,
              g.scalar(1.0f / std::sqrt(static_cast<float>(s.hd))));

  const int64_t ds_t = g.tensor(CUDNN_DATA_BFLOAT16, tt, tt_t_strides, true);
  g.reshape(ds, ds_t);
  if (grouped) {
    const int64_t dk_heads = g.virtual_tensor(CUDNN_DATA_BFLOAT16, heads);
    g.matmul(ds_t, q, dk_heads);
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, dk_heads, dk);
  } else {
    g.matmul(ds_t, q, dk);
  }

  // k [B, KVH, T, hd] seen back through k^T's strides (a virtual view, typed fp32 as cuDNN's
  // own frontend types the intermediates of this pattern).
  const int64_t k =
      g.tensor(CUDNN_DATA_FLOAT, {s.B, s.KVH, s.T, s.hd}, {s.T * s.row(), s.hd, s.row(), 1}, true);
  g.reshape(kt, k);
  const int64_t dq_accum = g.tensor(CUDNN_DATA_FLOAT, heads,
                                    {s.H * s.T * s.hd, s.T * s.hd, s.hd, 1}, false, kUidDQAccum);
  g.matmul(ds, k, dq_accum);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, dq);
}

}  // namespace dipaco::cudnn
