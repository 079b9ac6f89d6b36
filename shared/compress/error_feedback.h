// Error feedback for lossy outer-gradient compression, one instance per (sender, module).
//
// Each round the compressor sends c = x + r, where x is this round's outer gradient and r the
// residual the previous rounds failed to send, and keeps r' = c - decode(encode(c)). Over
// rounds the receiver's decoded values sum to the sum of the inputs minus the current
// residual, so quantization bias does not accumulate: after T rounds the error of the sum is
// one round's quantization error, not T of them.
//
// The residual is part of the sender's state: a checkpoint saves residual() and restores it
// with set_residual(); a path moved to another worker should carry it along (or reset it,
// losing at most one round's error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "compress/wire_dtype.h"
#include "util/status.h"

namespace dipaco {

// Runs fn(first, last) over chunk ranges that together cover [0, chunks) once, possibly on
// several threads at the same time (the CPU backend's pool); each call touches only its chunks.
using ChunkRangeFn = std::function<void(size_t first, size_t last)>;
using ChunkRangeRunner = std::function<void(size_t chunks, const ChunkRangeFn& fn)>;

// One round on caller-owned buffers of n = x.size() values (what ErrorFeedbackCompressor::compress
// runs, and the CPU backend's error_feedback_encode):
//   corrected = x + residual;  payload = encode(dtype, corrected);
//   decoded = decode(payload);  residual = corrected - decoded
// payload holds exactly encoded_size(dtype, n) bytes; residual, corrected and decoded n floats
// each (corrected and decoded are scratch; decoded is what the receiver will decode). On error
// (sizes that disagree, a value of corrected that cannot be encoded) payload and residual are
// unchanged. `run` splits the work into chunk ranges (codec.h's encode_chunks); empty: one
// range on this thread. The results do not depend on the split.
Status error_feedback_round(WireDtype dtype, std::span<const float> x, std::span<float> residual,
                            std::span<uint8_t> payload, std::span<float> corrected,
                            std::span<float> decoded, const ChunkRangeRunner& run = {});

class ErrorFeedbackCompressor {
 public:
  // size: number of float values of the module's outer gradient.
  ErrorFeedbackCompressor(WireDtype dtype, size_t size);

  WireDtype dtype() const { return dtype_; }
  size_t size() const { return residual_.size(); }

  // Encodes x + residual into *out (resized, capacity reused) and updates the residual.
  // x.size() must equal size(). With fp32 the residual stays 0. On error (wrong size,
  // non-finite input) the residual is unchanged.
  Status compress(std::span<const float> x, std::vector<uint8_t>* out);

  // What the receiver decoded from the last compress() (x + old residual - new residual).
  std::span<const float> last_decoded() const { return decoded_; }

  // r, one float per value (fp32 units of the outer gradient).
  std::span<const float> residual() const { return residual_; }
  Status set_residual(std::span<const float> r);
  void reset();

  // Traffic: payload bytes produced so far, and how many rounds produced them.
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t rounds() const { return rounds_; }

 private:
  WireDtype dtype_;
  std::vector<float> residual_;
  std::vector<float> corrected_;  // x + residual, reused every round
  std::vector<float> decoded_;    // decode(encode(corrected_)), reused every round
  uint64_t bytes_sent_ = 0;
  uint64_t rounds_ = 0;
};

}  // namespace dipaco
