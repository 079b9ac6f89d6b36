// Outer gradients on the CPU backend: the delta and the error-feedback encoding are the host
// codec's own functions (compress/), so this backend is the reference the others must match;
// the pool's threads split the encoding by whole chunks.
#include <span>

#include "backend/cpu/cpu_backend.h"
#include "compress/codec.h"
#include "compress/error_feedback.h"

namespace dipaco {

void CpuBackend::subtract(float* out, const float* a, const float* b, size_t count) {
  pool_.parallel_for(static_cast<int64_t>(count), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = a[i] - b[i];
  });
}

size_t CpuBackend::error_feedback_workspace_bytes(size_t count) const {
  return 2 * count * sizeof(float);  // x + residual, and what the receiver decodes
}

bool CpuBackend::error_feedback_encode(uint8_t* payload, float* residual, void* workspace,
                                       const float* x, size_t count, WireDtype dtype) {
  std::span<const float> in(x, count);
  std::span<uint8_t> out(payload, encoded_size(dtype, count));
  // The pool takes whole chunks (the codec's unit): the bytes do not depend on the split.
  ChunkRangeRunner on_pool = [this](size_t chunks, const ChunkRangeFn& fn) {
    pool_.parallel_for(static_cast<int64_t>(chunks), static_cast<int64_t>(8 * kQuantChunk),
                       [&fn](int64_t first, int64_t last) {
                         fn(static_cast<size_t>(first), static_cast<size_t>(last));
                       });
  };
  if (residual == nullptr || dtype == WireDtype::kFp32) {
    if (!check_encodable(dtype, in)) return false;
    on_pool(quant_chunks(count),
            [&](size_t first, size_t last) { encode_chunks(dtype, in, first, last, out); });
    return true;
  }
  float* scratch = static_cast<float*>(workspace);
  return error_feedback_round(dtype, in, std::span<float>(residual, count), out,
                              std::span<float>(scratch, count),
                              std::span<float>(scratch + count, count), on_pool)
      .is_ok();
}

}  // namespace dipaco
