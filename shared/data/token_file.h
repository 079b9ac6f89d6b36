// Token files: a tokenized corpus as flat little-endian ids, mmap-able.
//
// Layout (all integers little-endian):
//   byte  0  magic "DPTOKENS" (8 bytes)
//   byte  8  u32 version (1)
//   byte 12  u32 bytes per token: 2 (u16, when vocab_size <= 65536) or 4 (u32)
//   byte 16  u32 vocab_size
//   byte 20  u32 reserved (0)
//   byte 24  u64 num_tokens
//   byte 32  u64 num_documents
//   byte 40  u32 CRC-32 of the payload (everything after the header)
//   byte 44  16 reserved bytes (0)
//   byte 60  u32 CRC-32 of header bytes 0..59                        — header: 64 bytes
//   byte 64  u64 document offsets[num_documents + 1]: document d is tokens
//            [offsets[d], offsets[d+1]); offsets[0] = 0, offsets[num_documents] = num_tokens
//   then     num_tokens ids of the given width; the file ends there.
// The data pipeline writes each document as BOS, its ids, EOS (see tokenizer.h for the ids).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

constexpr char kTokenFileMagic[8] = {'D', 'P', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kTokenFileVersion = 1;
constexpr size_t kTokenFileHeaderBytes = 64;

class TokenFile {
 public:
  // Maps and validates the file: magic, version, width, header checksum, exact size, document
  // offsets (start at 0, never decrease, end at num_tokens), payload checksum, every id below
  // vocab_size. Errors name the file and the byte offset ("train.tok: byte 12: ...").
  static Result<TokenFile> open(const std::string& path);

  TokenFile() = default;
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;

  const std::string& path() const { return path_; }
  uint64_t num_tokens() const { return num_tokens_; }
  uint64_t num_documents() const { return num_documents_; }
  uint32_t vocab_size() const { return vocab_size_; }
  uint32_t bytes_per_token() const { return width_; }

  // Token i, i < num_tokens().
  uint32_t token(uint64_t i) const;
  // Tokens [offset, offset + count) into out[0..count); offset + count <= num_tokens().
  void read(uint64_t offset, uint64_t count, int32_t* out) const;
  // Document d spans tokens [document_begin(d), document_end(d)); d < num_documents().
  uint64_t document_begin(uint64_t d) const;
  uint64_t document_end(uint64_t d) const;

 private:
  void release();

  std::string path_;
  const unsigned char* map_ = nullptr;
  size_t map_size_ = 0;
  const unsigned char* offsets_ = nullptr;  // u64 LE each
  const unsigned char* tokens_ = nullptr;
  uint64_t num_tokens_ = 0;
  uint64_t num_documents_ = 0;
  uint32_t vocab_size_ = 0;
  uint32_t width_ = 0;
};

// Writes `documents` (each a list of ids < vocab_size) as a token file at `path`, atomically;
// the id width is u16 when vocab_size <= 65536, else u32.
Status write_token_file(const std::string& path, uint32_t vocab_size,
                        const std::vector<std::vector<uint32_t>>& documents);

}  // namespace dipaco
