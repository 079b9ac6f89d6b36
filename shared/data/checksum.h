// Checksums and content hashes used by the data files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dipaco {

// CRC-32 (zlib's polynomial) of `size` bytes, continuing from `crc` (start with 0).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

// 64-bit FNV-1a, continuing from `hash` (start with kFnvOffset). For content identity in
// meta files (which tokenizer, which corpus), not for security.
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
uint64_t fnv1a64(std::string_view bytes, uint64_t hash = kFnvOffset);

// "0123456789abcdef": 16 lowercase hex digits.
std::string hex64(uint64_t value);

}  // namespace dipaco
