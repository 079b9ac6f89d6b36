#include "compress/wire_dtype.h"

namespace dipaco {

static_assert(kQuantChunk == 2048, "wire_layout_formula() names the chunk size");

const char* wire_dtype_name(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32: return "fp32";
    case WireDtype::kBf16: return "bf16";
    case WireDtype::kInt8: return "int8";
    case WireDtype::kInt4: return "int4";
  }
  return "unknown";
}

Result<WireDtype> parse_wire_dtype(std::string_view name) {
  for (WireDtype d : {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8, WireDtype::kInt4}) {
    if (name == wire_dtype_name(d)) return d;
  }
  return invalid_argument("unknown compression '" + std::string(name) +
                          "': expected one of fp32, bf16, int8, int4");
}

size_t encoded_size(WireDtype dtype, size_t n) {
  switch (dtype) {
    case WireDtype::kFp32: return 4 * n;
    case WireDtype::kBf16: return 2 * n;
    case WireDtype::kInt8: return 4 * quant_chunks(n) + n;
    case WireDtype::kInt4: return 4 * quant_chunks(n) + (n + 1) / 2;
  }
  return 0;
}

const char* wire_layout_formula(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32: return "4 bytes per value";
    case WireDtype::kBf16: return "2 bytes per value";
    case WireDtype::kInt8: return "4 bytes per 2048-value chunk + 1 byte per value";
    case WireDtype::kInt4: return "4 bytes per 2048-value chunk + 1 byte per 2 values";
  }
  return "";
}

}  // namespace dipaco
