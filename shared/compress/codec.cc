#include "compress/codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "compress/bf16.h"

namespace dipaco {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the wire layouts are little-endian; this host needs byte swaps in codec.cc");

constexpr int32_t kAbsMask = 0x7fffffff;
constexpr int32_t kInfBits = 0x7f800000;
// Finite floats at or above this magnitude round to infinity in bf16 (halfway to 2^128).
constexpr int32_t kBf16OverflowBits = 0x7f7f8000;
// Adding and subtracting 1.5 · 2^23 rounds a float with |v| <= 2^22 to the nearest integer,
// ties to even, in the default rounding mode; unlike nearbyint it vectorizes on plain SSE2.
constexpr float kRoundMagic = 12582912.0f;

// Largest bit pattern of |x[i]|. For floats the pattern of |x| orders like the value, and
// infinity and NaN sort above every finite value, so one integer max finds both the scale and
// any non-finite input.
int32_t max_abs_bits(const float* x, size_t n) {
  int32_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    int32_t b = std::bit_cast<int32_t>(x[i]) & kAbsMask;
    m = b > m ? b : m;
  }
  return m;
}

// Slow path for error messages only: the first index whose |x| bit pattern is >= limit.
size_t first_at_or_above(const float* x, size_t n, int32_t limit) {
  for (size_t i = 0; i < n; ++i) {
    if ((std::bit_cast<int32_t>(x[i]) & kAbsMask) >= limit) return i;
  }
  return n;
}

void encode_bf16(const float* x, size_t n, uint8_t* out) {
  // Inputs are finite here, so the rounding needs no NaN branch.
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = std::bit_cast<uint32_t>(x[i]);
    uint16_t h = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

// Quantizes x[0..n) to integers in [-qmax, qmax] with x ≈ q · scale; returns scale. The
// caller passes amax = max |x|. Calls put(i, q) for each value.
template <typename Put>
float quantize_chunk(const float* x, size_t n, float amax, float qmax, Put put) {
  if (amax == 0.0f) {
    for (size_t i = 0; i < n; ++i) put(i, 0);
    return 0.0f;
  }
  float scale = amax / qmax;
  float inv = qmax / amax;
  if (std::isfinite(inv) && scale > 0.0f && std::isnormal(scale)) {
    // |x| <= amax, so |x · inv| <= qmax · (1 + 2^-23)^2, which rounds to qmax: no clamp needed
    // (and a float compare in the loop would stop the vectorizer under -ftrapping-math).
    for (size_t i = 0; i < n; ++i) {
      float v = (x[i] * inv + kRoundMagic) - kRoundMagic;
      put(i, static_cast<int32_t>(v));
    }
    return scale;
  }
  // |x| below ~1e-36: the scale is subnormal (or 127/amax overflows). Divide by the scale as
  // stored, in double, so that q · scale is as close to x as that scale allows.
  double s = scale;
  for (size_t i = 0; i < n; ++i) {
    double v = s > 0.0 ? std::nearbyint(static_cast<double>(x[i]) / s) : 0.0;
    v = std::clamp(v, -static_cast<double>(qmax), static_cast<double>(qmax));
    put(i, static_cast<int32_t>(v));
  }
  return scale;
}

// Chunks [first, last) of the int8 layout of x[0..n) into the whole payload out.
void encode_int8(const float* x, size_t n, size_t first, size_t last, uint8_t* out) {
  size_t chunks = quant_chunks(n);
  int8_t* q = reinterpret_cast<int8_t*>(out + 4 * chunks);
  for (size_t c = first; c < last; ++c) {
    size_t begin = c * kQuantChunk;
    size_t len = std::min(kQuantChunk, n - begin);
    const float* xc = x + begin;
    int8_t* qc = q + begin;
    float amax = std::bit_cast<float>(max_abs_bits(xc, len));
    float scale = quantize_chunk(xc, len, amax, 127.0f,
                                 [qc](size_t i, int32_t v) { qc[i] = static_cast<int8_t>(v); });
    std::memcpy(out + 4 * c, &scale, 4);
  }
}

void encode_int4(const float* x, size_t n, size_t first, size_t last, uint8_t* out) {
  size_t chunks = quant_chunks(n);
  uint8_t* packed = out + 4 * chunks;
  int8_t q[kQuantChunk];  // one chunk of values before packing: 2 KiB on the stack
  for (size_t c = first; c < last; ++c) {
    size_t begin = c * kQuantChunk;  // even, so a byte never spans two chunks
    size_t len = std::min(kQuantChunk, n - begin);
    const float* xc = x + begin;
    float amax = std::bit_cast<float>(max_abs_bits(xc, len));
    float scale = quantize_chunk(xc, len, amax, 7.0f,
                                 [&q](size_t i, int32_t v) { q[i] = static_cast<int8_t>(v); });
    std::memcpy(out + 4 * c, &scale, 4);
    uint8_t* pc = packed + begin / 2;
    size_t pairs = len / 2;
    for (size_t p = 0; p < pairs; ++p) {
      pc[p] = static_cast<uint8_t>((q[2 * p] & 0xf) | (q[2 * p + 1] << 4));
    }
    if (len % 2 == 1) pc[pairs] = static_cast<uint8_t>(q[len - 1] & 0xf);
  }
}

Status bad_size(WireDtype dtype, size_t got, size_t n) {
  return data_loss(std::string(wire_dtype_name(dtype)) + " payload of " + std::to_string(got) +
                   " bytes for " + std::to_string(n) + " values: expected " +
                   std::to_string(encoded_size(dtype, n)) + " (" + wire_layout_formula(dtype) +
                   ")");
}

// Checks decoded values v[begin, end) of n.
Status check_finite_values(WireDtype dtype, const float* v, size_t begin, size_t end, size_t n) {
  if (max_abs_bits(v + begin, end - begin) < kInfBits) return Status::ok();
  size_t i = begin + first_at_or_above(v + begin, end - begin, kInfBits);
  return data_loss(std::string(wire_dtype_name(dtype)) + " payload holds a " +
                   (std::isnan(v[i]) ? "NaN" : "infinite") + " at value " + std::to_string(i) +
                   " of " + std::to_string(n));
}

// Reads and checks the chunk scales of an int8/int4 payload.
Status read_scale(WireDtype dtype, const uint8_t* bytes, size_t c, size_t chunks, float* scale) {
  std::memcpy(scale, bytes + 4 * c, 4);
  if (!(std::isfinite(*scale) && *scale >= 0.0f)) {
    return data_loss(std::string(wire_dtype_name(dtype)) + " payload has scale " +
                     std::to_string(*scale) + " for chunk " + std::to_string(c) + " of " +
                     std::to_string(chunks) + ": scales must be finite and >= 0");
  }
  return Status::ok();
}

// Chunks [first, last) of an int8 payload of n values into out[0..n).
Status decode_int8(const uint8_t* bytes, size_t n, size_t first, size_t last, float* out) {
  size_t chunks = quant_chunks(n);
  const int8_t* q = reinterpret_cast<const int8_t*>(bytes + 4 * chunks);
  for (size_t c = first; c < last; ++c) {
    float scale;
    DIPACO_RETURN_IF_ERROR(read_scale(WireDtype::kInt8, bytes, c, chunks, &scale));
    size_t begin = c * kQuantChunk;
    size_t len = std::min(kQuantChunk, n - begin);
    const int8_t* qc = q + begin;
    float* oc = out + begin;
    int bad = 0;
    for (size_t i = 0; i < len; ++i) {
      bad |= qc[i] == -128;
      oc[i] = static_cast<float>(qc[i]) * scale;
    }
    if (bad) {
      return data_loss("int8 payload holds -128 in chunk " + std::to_string(c) +
                       ": the encoder writes only -127..127, so the payload is corrupt");
    }
  }
  return Status::ok();
}

Status decode_int4(const uint8_t* bytes, size_t n, size_t first, size_t last, float* out) {
  size_t chunks = quant_chunks(n);
  const uint8_t* packed = bytes + 4 * chunks;
  for (size_t c = first; c < last; ++c) {
    float scale;
    DIPACO_RETURN_IF_ERROR(read_scale(WireDtype::kInt4, bytes, c, chunks, &scale));
    size_t begin = c * kQuantChunk;
    size_t len = std::min(kQuantChunk, n - begin);
    const uint8_t* pc = packed + begin / 2;
    float* oc = out + begin;
    int bad = 0;
    size_t pairs = len / 2;
    for (size_t p = 0; p < pairs; ++p) {
      int8_t b = static_cast<int8_t>(pc[p]);
      int8_t lo = static_cast<int8_t>(static_cast<int8_t>(b << 4) >> 4);
      int8_t hi = static_cast<int8_t>(b >> 4);
      bad |= (lo == -8) | (hi == -8);
      oc[2 * p] = static_cast<float>(lo) * scale;
      oc[2 * p + 1] = static_cast<float>(hi) * scale;
    }
    if (len % 2 == 1) {
      uint8_t b = pc[pairs];
      int8_t lo = static_cast<int8_t>(static_cast<int8_t>(b << 4) >> 4);
      if ((b >> 4) != 0) {
        return data_loss("int4 payload has a non-zero padding nibble in its last byte");
      }
      bad |= lo == -8;
      oc[len - 1] = static_cast<float>(lo) * scale;
    }
    if (bad) {
      return data_loss("int4 payload holds -8 in chunk " + std::to_string(c) +
                       ": the encoder writes only -7..7, so the payload is corrupt");
    }
  }
  return Status::ok();
}

// Index of the first value of chunk c of n values (n past the last chunk).
size_t chunk_begin(size_t c, size_t n) {
  return std::min(n, c * kQuantChunk);
}

// Chunks [first, last) of the layouts of wire_dtype.h; x[0..n) has been checked by
// check_encodable and out holds encoded_size(dtype, n) bytes.
void write_encoded(WireDtype dtype, const float* x, size_t n, size_t first, size_t last,
                   uint8_t* out) {
  const size_t begin = chunk_begin(first, n), end = chunk_begin(last, n);
  switch (dtype) {
    case WireDtype::kFp32:
      if (end > begin) std::memcpy(out + 4 * begin, x + begin, 4 * (end - begin));
      break;
    case WireDtype::kBf16: encode_bf16(x + begin, end - begin, out + 2 * begin); break;
    case WireDtype::kInt8: encode_int8(x, n, first, last, out); break;
    case WireDtype::kInt4: encode_int4(x, n, first, last, out); break;
  }
}

}  // namespace

Status check_encodable(WireDtype dtype, std::span<const float> values) {
  const float* x = values.data();
  size_t n = values.size();
  int32_t m = max_abs_bits(x, n);
  if (m >= kInfBits) {
    size_t i = first_at_or_above(x, n, kInfBits);
    return invalid_argument(
        "cannot encode value " + std::to_string(i) + " of " + std::to_string(n) + ": it is " +
        (std::isnan(x[i]) ? "NaN" : "infinite") + " (the outer gradient has diverged)");
  }
  if (dtype == WireDtype::kBf16 && m >= kBf16OverflowBits) {
    size_t i = first_at_or_above(x, n, kBf16OverflowBits);
    return invalid_argument("cannot encode value " + std::to_string(i) + " of " +
                            std::to_string(n) + " (" + std::to_string(x[i]) +
                            ") as bf16: beyond its range of ±3.39e38");
  }
  return Status::ok();
}

Status encode_to(WireDtype dtype, std::span<const float> x, std::span<uint8_t> out) {
  if (out.size() != encoded_size(dtype, x.size())) {
    return invalid_argument(std::string("encoding ") + std::to_string(x.size()) + " values as " +
                            wire_dtype_name(dtype) + " needs " +
                            std::to_string(encoded_size(dtype, x.size())) + " bytes, not " +
                            std::to_string(out.size()));
  }
  DIPACO_RETURN_IF_ERROR(check_encodable(dtype, x));
  write_encoded(dtype, x.data(), x.size(), 0, quant_chunks(x.size()), out.data());
  return Status::ok();
}

Status encode_into(WireDtype dtype, std::span<const float> x, std::vector<uint8_t>* out) {
  DIPACO_RETURN_IF_ERROR(check_encodable(dtype, x));
  out->resize(encoded_size(dtype, x.size()));
  write_encoded(dtype, x.data(), x.size(), 0, quant_chunks(x.size()), out->data());
  return Status::ok();
}

Result<std::vector<uint8_t>> encode(WireDtype dtype, const float* x, size_t n) {
  std::vector<uint8_t> out;
  DIPACO_RETURN_IF_ERROR(encode_into(dtype, std::span<const float>(x, n), &out));
  return out;
}

void encode_chunks(WireDtype dtype, std::span<const float> x, size_t first, size_t last,
                   std::span<uint8_t> out) {
  write_encoded(dtype, x.data(), x.size(), first, last, out.data());
}

Status decode_chunks(std::span<const uint8_t> bytes, WireDtype dtype, size_t first, size_t last,
                     std::span<float> out) {
  size_t n = out.size();
  if (bytes.size() != encoded_size(dtype, n)) return bad_size(dtype, bytes.size(), n);
  const uint8_t* b = bytes.data();
  float* o = out.data();
  const size_t begin = chunk_begin(first, n), end = chunk_begin(last, n);
  switch (dtype) {
    case WireDtype::kFp32:
      if (end > begin) std::memcpy(o + begin, b + 4 * begin, 4 * (end - begin));
      return check_finite_values(dtype, o, begin, end, n);
    case WireDtype::kBf16:
      for (size_t i = begin; i < end; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        o[i] = bf16_to_float(h);
      }
      return check_finite_values(dtype, o, begin, end, n);
    case WireDtype::kInt8: return decode_int8(b, n, first, last, o);
    case WireDtype::kInt4: return decode_int4(b, n, first, last, o);
  }
  return invalid_argument("unknown wire dtype " + std::to_string(static_cast<int>(dtype)));
}

Status decode_into(std::span<const uint8_t> bytes, WireDtype dtype, std::span<float> out) {
  return decode_chunks(bytes, dtype, 0, quant_chunks(out.size()), out);
}

Result<std::vector<float>> decode(std::span<const uint8_t> bytes, WireDtype dtype, size_t n) {
  std::vector<float> out(n);
  DIPACO_RETURN_IF_ERROR(decode_into(bytes, dtype, out));
  return out;
}

}  // namespace dipaco
