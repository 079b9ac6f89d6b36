// The number formats an outer gradient can travel in, and how many bytes each takes.
//
// Wire layouts (all multi-byte numbers little-endian; n = number of float values;
// C = kQuantChunk; chunks = ceil(n / C); chunk c covers values [c*C, min(n, (c+1)*C))):
//   fp32  n × float32 (IEEE 754 binary32).                          bytes = 4n
//   bf16  n × uint16: the top 16 bits of the float32, rounded to     bytes = 2n
//         nearest-even.
//   int8  chunks × float32 scale, then n × int8 q in [-127, 127].   bytes = 4·chunks + n
//         value = q · scale[chunk].
//   int4  chunks × float32 scale, then ceil(n/2) bytes; byte i       bytes = 4·chunks + ceil(n/2)
//         holds value 2i in its low nibble and value 2i+1 in its
//         high nibble, each a two's-complement 4-bit q in [-7, 7]
//         (an odd n leaves the last high nibble 0).
//         value = q · scale[chunk].
// Scales are finite and >= 0 (scale = max |x| over the chunk / 127 or / 7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

enum class WireDtype : uint8_t { kFp32 = 0, kBf16 = 1, kInt8 = 2, kInt4 = 3 };

// Values per scale in the int8 and int4 layouts. Part of the wire format: changing it changes
// every encoded size.
inline constexpr size_t kQuantChunk = 2048;

// "fp32", "bf16", "int8", "int4".
const char* wire_dtype_name(WireDtype dtype);
// Parses a name above (as written in a grid file); the error lists the accepted names.
Result<WireDtype> parse_wire_dtype(std::string_view name);

// Number of scale chunks for n values: ceil(n / kQuantChunk).
inline size_t quant_chunks(size_t n) {
  return (n + kQuantChunk - 1) / kQuantChunk;
}

// Exact size in bytes of n values encoded as dtype (the layouts above). This is what a round
// costs on the wire, for traffic accounting.
size_t encoded_size(WireDtype dtype, size_t n);

// One-line description of the layout for error messages, e.g. "4·chunks + n".
const char* wire_layout_formula(WireDtype dtype);

}  // namespace dipaco
