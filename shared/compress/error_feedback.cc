#include "compress/error_feedback.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "compress/codec.h"

namespace dipaco {

ErrorFeedbackCompressor::ErrorFeedbackCompressor(WireDtype dtype, size_t size)
    : dtype_(dtype), residual_(size, 0.0f), corrected_(size), decoded_(size) {}

Status error_feedback_round(WireDtype dtype, std::span<const float> x, std::span<float> residual,
                            std::span<uint8_t> payload, std::span<float> corrected,
                            std::span<float> decoded, const ChunkRangeRunner& run) {
  size_t n = x.size();
  if (residual.size() != n || corrected.size() != n || decoded.size() != n) {
    return invalid_argument("error feedback over " + std::to_string(n) +
                            " values was given a residual of " + std::to_string(residual.size()) +
                            " and scratch of " + std::to_string(corrected.size()) + " and " +
                            std::to_string(decoded.size()));
  }
  if (payload.size() != encoded_size(dtype, n)) {
    return invalid_argument(std::string("error feedback: ") + std::to_string(n) + " values as " +
                            wire_dtype_name(dtype) + " need " +
                            std::to_string(encoded_size(dtype, n)) + " payload bytes, not " +
                            std::to_string(payload.size()));
  }
  const size_t chunks = quant_chunks(n);
  auto for_ranges = [&](const ChunkRangeFn& fn) {
    if (run) {
      run(chunks, fn);
    } else {
      fn(0, chunks);
    }
  };
  // Index of the first value of a chunk (n past the last one).
  auto values = [n](size_t chunk) { return std::min(n, chunk * kQuantChunk); };
  const float* xp = x.data();
  const float* rp = residual.data();
  float* cp = corrected.data();
  for_ranges([xp, rp, cp, values](size_t first, size_t last) {
    for (size_t i = values(first), end = values(last); i < end; ++i) cp[i] = xp[i] + rp[i];
  });
  DIPACO_RETURN_IF_ERROR(check_encodable(dtype, corrected));
  // Decoding our own payload cannot fail; if it did, the codec has a bug.
  std::mutex mutex;
  Status decode_error;
  for_ranges([&](size_t first, size_t last) {
    encode_chunks(dtype, corrected, first, last, payload);
    Status s = decode_chunks(payload, dtype, first, last, decoded);
    std::lock_guard<std::mutex> lock(mutex);
    if (!s && decode_error) decode_error = s;
  });
  if (!decode_error) {
    return internal_error("error feedback could not decode its own payload: " +
                          decode_error.message());
  }
  float* r = residual.data();
  const float* dp = decoded.data();
  for_ranges([r, cp, dp, values](size_t first, size_t last) {
    for (size_t i = values(first), end = values(last); i < end; ++i) r[i] = cp[i] - dp[i];
  });
  return Status::ok();
}

Status ErrorFeedbackCompressor::compress(std::span<const float> x, std::vector<uint8_t>* out) {
  size_t n = residual_.size();
  if (x.size() != n) {
    return invalid_argument("error-feedback compressor holds " + std::to_string(n) +
                            " values but was given " + std::to_string(x.size()));
  }
  out->resize(encoded_size(dtype_, n));
  DIPACO_RETURN_IF_ERROR(error_feedback_round(dtype_, x, residual_, *out, corrected_, decoded_));
  bytes_sent_ += out->size();
  ++rounds_;
  return Status::ok();
}

Status ErrorFeedbackCompressor::set_residual(std::span<const float> r) {
  if (r.size() != residual_.size()) {
    return invalid_argument("residual of " + std::to_string(r.size()) +
                            " values for a compressor of " + std::to_string(residual_.size()));
  }
  std::copy(r.begin(), r.end(), residual_.begin());
  return Status::ok();
}

void ErrorFeedbackCompressor::reset() {
  std::fill(residual_.begin(), residual_.end(), 0.0f);
}

}  // namespace dipaco
