// Quantized module deltas for the downlink: how the coordinator publishes a module version
// that workers holding the previous version can rebuild bit for bit from a small payload.
//
// The coordinator's outer step gives a target θ*; the version it publishes is not θ* but
//   d        = θ* − θ_k + r_k                      (r_k: what earlier rounds failed to send)
//   payload  = encode(dtype, d)                    (compress/codec.h, the uplink's wire dtypes)
//   θ_{k+1}  = θ_k + decode(payload)               (apply_quantized_delta, the workers' step)
//   r_{k+1}  = d − decode(payload)
// so the published version IS what a worker reconstructs (both run apply_quantized_delta, one
// float addition per value), and quantization error is fed back rather than accumulated
// (error feedback, as compress/error_feedback.h does for outer gradients).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compress/wire_dtype.h"
#include "util/status.h"

namespace dipaco {

// θ_{k+1}[i] = base[i] + decode(payload)[i]. Errors (kDataLoss) as decode_into: wrong payload
// size, bad scales or values; *next is resized to base.size().
Status apply_quantized_delta(std::span<const float> base, std::span<const uint8_t> payload,
                             WireDtype dtype, std::vector<float>* next);

// The coordinator's side: from the current version `base`, the optimizer's `target` and the
// residual (*residual; empty = zeros, else base.size() values) computes *payload, the published
// *next and the new *residual. dtype must not be fp32 (send whole versions instead). Fails
// (kInvalidArgument) on sizes that disagree or a non-finite difference; outputs unchanged then.
Status publish_quantized_step(WireDtype dtype, std::span<const float> base,
                              std::span<const float> target, std::vector<float>* residual,
                              std::vector<uint8_t>* payload, std::vector<float>* next);

}  // namespace dipaco
