// Error-feedback encoding of an outer gradient that lives in a Backend's memory.
//
// The payload is made where the values are (Backend::error_feedback_encode) and only its bytes
// come to the host: 2×, 4× or 8× fewer than the fp32 values for bf16, int8 and int4. Payloads
// and residuals are byte for byte those of ErrorFeedbackCompressor (compress/error_feedback.h)
// on every backend. One encoder serves one module's size and dtype; its buffers are allocated
// once, at create().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "compress/wire_dtype.h"
#include "tensor/backend.h"
#include "tensor/device_buffer.h"
#include "util/status.h"

namespace dipaco {

class BackendEncoder {
 public:
  // count values as dtype. error_feedback false, or fp32 (which loses nothing): no residual,
  // each round sends encode(dtype, x). Fails (kFailedPrecondition) when the backend is out of
  // memory for the buffers: 4·count bytes of input, 4·count of residual, the payload and the
  // backend's workspace.
  static Result<std::unique_ptr<BackendEncoder>> create(Backend* backend, WireDtype dtype,
                                                        size_t count, bool error_feedback);

  WireDtype dtype() const { return dtype_; }
  size_t size() const { return count_; }
  bool has_residual() const { return residual_.get() != nullptr; }

  // count device floats the caller may fill with this round's input (e.g. θ_start − θ_end).
  float* input() const { return input_.f32(); }

  // Uploads r (count floats; empty: zeros). kInvalidArgument on another size, or when there is
  // no residual (no error feedback).
  Status set_residual(std::span<const float> r);
  // Downloads the residual (count floats); empty when there is none.
  std::vector<float> residual() const;

  // One round on x (count device floats, typically input()): *out (resized) receives the
  // payload, encoded_size(dtype, count) bytes. Errors: the codec's (encode_into), naming the
  // first value that cannot be encoded; the residual is then unchanged.
  Status encode(const float* x, std::vector<uint8_t>* out);

 private:
  BackendEncoder(Backend* backend, WireDtype dtype, size_t count)
      : backend_(backend), dtype_(dtype), count_(count) {}

  Backend* backend_;
  WireDtype dtype_;
  size_t count_;
  DeviceBuffer input_, residual_, payload_, workspace_;
};

}  // namespace dipaco
