// Encoding and decoding of outer gradients (flat float vectors) for the wire.
//
// The layouts are in compress/wire_dtype.h. Encoding is lossy for every dtype but fp32:
//   bf16  |x - x̂| <= 2^-8 · |x|                 (round to nearest even, 8 significant bits)
//   int8  |x - x̂| <= max|x over chunk| / 254    (+ float rounding of the scale)
//   int4  |x - x̂| <= max|x over chunk| / 14     (+ float rounding of the scale)
// Every loop is a plain pass over the values (no per-value allocation) written so the
// compiler vectorizes it; the output buffers are reused by the *_into variants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "compress/wire_dtype.h"
#include "util/status.h"

namespace dipaco {

// Encodes x into *out (resized to encoded_size(dtype, x.size()); its capacity is reused).
// Fails with kInvalidArgument, naming the first offending index, when a value is NaN or
// infinite, or (bf16) too large to be represented: an outer gradient like that would poison
// the global model, so it never leaves the worker.
Status encode_into(WireDtype dtype, std::span<const float> x, std::vector<uint8_t>* out);
// The same into a caller's buffer of exactly encoded_size(dtype, x.size()) bytes (kInvalidArgument
// otherwise); out is unchanged on error.
Status encode_to(WireDtype dtype, std::span<const float> x, std::span<uint8_t> out);
// The check encoding starts with: ok when every value of x can be encoded as dtype, else the
// error encode_into gives. Lets a device encoder that refused its input report the same error.
Status check_encodable(WireDtype dtype, std::span<const float> x);
Result<std::vector<uint8_t>> encode(WireDtype dtype, const float* x, size_t n);

// Decodes n values from bytes into out (out.size() must be n). Fails with kDataLoss when the
// payload size is not encoded_size(dtype, n), a scale is negative or not finite, a value is
// not finite, or a quantized value lies outside the encoder's range (int8 -128, int4 -8, a
// non-zero padding nibble). On failure out's contents are unspecified.
Status decode_into(std::span<const uint8_t> bytes, WireDtype dtype, std::span<float> out);
Result<std::vector<float>> decode(std::span<const uint8_t> bytes, WireDtype dtype, size_t n);

// Chunk ranges of the above, for splitting one encoding or decoding across threads: chunk c is
// values [c·kQuantChunk, min(n, (c+1)·kQuantChunk)) in every dtype, and chunks are encoded and
// decoded independently, so the bytes and values do not depend on the split. x, out and bytes
// are the whole vector and payload (n = x.size() or out.size(); 0 <= first <= last <=
// quant_chunks(n)).
// encode_chunks does not check: x must have passed check_encodable, and out must hold
// encoded_size(dtype, n) bytes. decode_chunks fails as decode_into does for those chunks.
void encode_chunks(WireDtype dtype, std::span<const float> x, size_t first, size_t last,
                   std::span<uint8_t> out);
Status decode_chunks(std::span<const uint8_t> bytes, WireDtype dtype, size_t first, size_t last,
                     std::span<float> out);

}  // namespace dipaco
