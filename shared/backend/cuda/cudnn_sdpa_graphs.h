// The cuDNN graphs of fused causal attention (flash attention), forward and backward, in the
// pattern cuDNN's fused engines recognize:
//
//   forward   S = Q K^T, S *= scale, causal mask (row >= col, else -inf), M = rowmax S,
//             E = exp(S - M), Z = rowsum E, stats = M + log Z, P = E / Z (bf16), O = P V
//   backward  sum = rowsum(dO * O), S = scale Q K^T, P = exp(mask(S - stats)), dV = P^T dO,
//             dS = scale P (dO V^T - sum), dK = dS^T Q, dQ = dS K (accumulated in fp32)
//
// Operands are bf16 views, through strides, of dipaco's packed layouts: q, k, v (and dq, dk,
// dv) inside [B, T, (H + 2 KVH) hd] rows, out and dout as [B, T, H hd]; stats are fp32
// [B, H, T]. Grouped-query heads are cuDNN's broadcast: q head h reads kv head h / (H / KVH).
// The operations, their order, and every tensor's type, dims, strides and virtual flag were
// compared with what cudnn-frontend (1.x, NVIDIA's C++ layer, not packaged here) lowers its own
// causal SDPA with statistics to, on cuDNN 9.19, for the same shapes and strides.
// Declaring needs no GPU (the unit test builds both graphs' operations on any host); turning
// them into a plan does (GraphBuilder::finalize with a handle).
#pragma once

#include <cstdint>

#include "backend/cuda/cudnn_graph.h"

namespace dipaco::cudnn {

struct SdpaShape {
  int64_t B, T, H, KVH, hd;
  int64_t row() const { return (H + 2 * KVH) * hd; }  // values per token in qkv
};

// Uids of the tensors bound at execution (the workspace tensors included: the backward
// keeps its row sums and fp32 dq accumulator in memory the caller provides).
enum : int64_t {
  kUidQ = 1,
  kUidK,
  kUidV,
  kUidO,
  kUidStats,
  kUidDO,
  kUidDQ,
  kUidDK,
  kUidDV,
  kUidSoftmaxSum,
  kUidDQAccum,
};

void declare_sdpa_forward(GraphBuilder& g, const SdpaShape& s);
void declare_sdpa_backward(GraphBuilder& g, const SdpaShape& s);

}  // namespace dipaco::cudnn
