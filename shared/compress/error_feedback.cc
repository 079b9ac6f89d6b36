#include "compress/error_feedback.h"

#include <algorithm>
#include <string>

#include "compress/codec.h"

namespace dipaco {

ErrorFeedbackCompressor::ErrorFeedbackCompressor(WireDtype dtype, size_t size)
    : dtype_(dtype), residual_(size, 0.0f), corrected_(size), decoded_(size) {}

Status error_feedback_round(WireDtype dtype, std::span<const float> x, std::span<float> residual,
                            std::span<uint8_t> payload, std::span<float> corrected,
                            std::span<float> decoded) {
  size_t n = x.size();
  if (residual.size() != n || corrected.size() != n || decoded.size() != n) {
    return invalid_argument("error feedback over " + std::to_string(n) +
                            " values was given a residual of " + std::to_string(residual.size()) +
                            " and scratch of " + std::to_string(corrected.size()) + " and " +
                            std::to_string(decoded.size()));
  }
  const float* xp = x.data();
  const float* rp = residual.data();
  float* cp = corrected.data();
  for (size_t i = 0; i < n; ++i) cp[i] = xp[i] + rp[i];
  DIPACO_RETURN_IF_ERROR(encode_to(dtype, corrected, payload));
  // Decoding our own payload cannot fail; if it did, the codec has a bug.
  Status s = decode_into(payload, dtype, decoded);
  if (!s) return internal_error("error feedback could not decode its own payload: " + s.message());
  float* r = residual.data();
  const float* dp = decoded.data();
  for (size_t i = 0; i < n; ++i) r[i] = cp[i] - dp[i];
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
