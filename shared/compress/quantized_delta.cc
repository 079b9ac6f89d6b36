#include "compress/quantized_delta.h"

#include <string>

#include "compress/codec.h"

namespace dipaco {

Status apply_quantized_delta(std::span<const float> base, std::span<const uint8_t> payload,
                             WireDtype dtype, std::vector<float>* next) {
  std::vector<float> decoded(base.size());
  DIPACO_RETURN_IF_ERROR(decode_into(payload, dtype, decoded));
  next->resize(base.size());
  float* out = next->data();
  for (size_t i = 0; i < base.size(); ++i) out[i] = base[i] + decoded[i];
  return Status::ok();
}

Status publish_quantized_step(WireDtype dtype, std::span<const float> base,
                              std::span<const float> target, std::vector<float>* residual,
                              std::vector<uint8_t>* payload, std::vector<float>* next) {
  if (dtype == WireDtype::kFp32)
    return invalid_argument("a quantized module delta needs bf16, int8 or int4, not fp32");
  const size_t n = base.size();
  if (target.size() != n || (!residual->empty() && residual->size() != n)) {
    return invalid_argument("module delta: base has " + std::to_string(n) + " values, target " +
                            std::to_string(target.size()) + ", residual " +
                            std::to_string(residual->size()));
  }
  std::vector<float> corrected(n);
  for (size_t i = 0; i < n; ++i)
    corrected[i] = target[i] - base[i] + (residual->empty() ? 0.0f : (*residual)[i]);
  std::vector<uint8_t> encoded;
  DIPACO_RETURN_IF_ERROR(encode_into(dtype, corrected, &encoded));
  std::vector<float> decoded(n);
  DIPACO_RETURN_IF_ERROR(decode_into(encoded, dtype, decoded));
  std::vector<float> published;
  DIPACO_RETURN_IF_ERROR(apply_quantized_delta(base, encoded, dtype, &published));
  residual->resize(n);
  for (size_t i = 0; i < n; ++i) (*residual)[i] = corrected[i] - decoded[i];
  *payload = std::move(encoded);
  *next = std::move(published);
  return Status::ok();
}

}  // namespace dipaco
