#include "data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "data/checksum.h"
#include "util/atomic_file.h"

namespace dipaco {
namespace {

static_assert(sizeof(kTokenFileMagic) == 8);
constexpr size_t kHeaderCrcAt = 60;  // the header's own CRC covers bytes [0, 60)

uint32_t load_u32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t load_u64(const unsigned char* p) {
  return static_cast<uint64_t>(load_u32(p)) | static_cast<uint64_t>(load_u32(p + 4)) << 32;
}
void store_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void store_u64(unsigned char* p, uint64_t v) {
  store_u32(p, static_cast<uint32_t>(v));
  store_u32(p + 4, static_cast<uint32_t>(v >> 32));
}

uint32_t width_for(uint32_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

}  // namespace

TokenFile::~TokenFile() {
  release();
}

void TokenFile::release() {
  if (map_) munmap(const_cast<unsigned char*>(map_), map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

TokenFile::TokenFile(TokenFile&& other) noexcept {
  *this = std::move(other);
}

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    map_ = other.map_;
    map_size_ = other.map_size_;
    offsets_ = other.offsets_;
    tokens_ = other.tokens_;
    num_tokens_ = other.num_tokens_;
    num_documents_ = other.num_documents_;
    vocab_size_ = other.vocab_size_;
    width_ = other.width_;
    other.map_ = nullptr;
    other.map_size_ = 0;
    other.offsets_ = nullptr;
    other.tokens_ = nullptr;
    other.num_tokens_ = other.num_documents_ = 0;
  }
  return *this;
}

Result<TokenFile> TokenFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = path + ": cannot open token file: " + std::strerror(err);
    return err == ENOENT ? not_found(message) : io_error(message);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(err));
  }
  auto size = static_cast<uint64_t>(st.st_size);
  auto bad = [&](uint64_t at, const std::string& what) {
    return data_loss(path + ": byte " + std::to_string(at) + ": " + what);
  };
  if (size < kTokenFileHeaderBytes) {
    ::close(fd);
    return bad(size, "truncated token file: " + std::to_string(size) +
                         " bytes, the header alone needs " + std::to_string(kTokenFileHeaderBytes));
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return io_error(path + ": cannot mmap: " + std::strerror(err));
  TokenFile file;
  file.path_ = path;
  file.map_ = static_cast<const unsigned char*>(map);
  file.map_size_ = size;
  const unsigned char* h = file.map_;
  if (std::memcmp(h, kTokenFileMagic, 8) != 0) {
    return bad(0, "not a dipaco token file (magic is not \"DPTOKENS\")");
  }
  uint32_t version = load_u32(h + 8);
  if (version != kTokenFileVersion) {
    return bad(8, "unsupported token file version " + std::to_string(version) +
                      " (this build reads version " + std::to_string(kTokenFileVersion) + ")");
  }
  uint32_t header_crc = load_u32(h + kHeaderCrcAt);
  if (crc32_update(0, h, kHeaderCrcAt) != header_crc) {
    return bad(kHeaderCrcAt, "header checksum mismatch (the header is corrupt)");
  }
  file.width_ = load_u32(h + 12);
  file.vocab_size_ = load_u32(h + 16);
  file.num_tokens_ = load_u64(h + 24);
  file.num_documents_ = load_u64(h + 32);
  if (file.width_ != 2 && file.width_ != 4) {
    return bad(12, "token width " + std::to_string(file.width_) + " bytes (expected 2 or 4)");
  }
  if (file.vocab_size_ == 0 || file.width_ != width_for(file.vocab_size_)) {
    return bad(16, "vocab size " + std::to_string(file.vocab_size_) + " does not fit token width " +
                       std::to_string(file.width_));
  }
  // Sizes are compared in a way that cannot overflow, whatever the header says.
  uint64_t room = size - kTokenFileHeaderBytes;
  auto describe = [&] {
    return "the header says " + std::to_string(file.num_documents_) + " documents and " +
           std::to_string(file.num_tokens_) + " tokens of " + std::to_string(file.width_) +
           " bytes";
  };
  if (file.num_documents_ >= room / 8 ||
      file.num_tokens_ > (room - (file.num_documents_ + 1) * 8) / file.width_) {
    return bad(size, "truncated token file: " + describe() + ", more than its " +
                         std::to_string(size) + " bytes hold");
  }
  uint64_t table_bytes = (file.num_documents_ + 1) * 8;
  uint64_t expected = kTokenFileHeaderBytes + table_bytes + file.num_tokens_ * file.width_;
  if (expected != size) {
    return bad(expected, "trailing bytes: " + describe() + ", which end at byte " +
                             std::to_string(expected) + ", but the file has " +
                             std::to_string(size));
  }
  file.offsets_ = h + kTokenFileHeaderBytes;
  file.tokens_ = file.offsets_ + table_bytes;
  uint32_t payload_crc = crc32_update(0, file.offsets_, size - kTokenFileHeaderBytes);
  if (payload_crc != load_u32(h + 40)) {
    return bad(40, "payload checksum mismatch (the offsets or tokens are corrupt)");
  }
  uint64_t previous = 0;
  for (uint64_t d = 0; d <= file.num_documents_; ++d) {
    uint64_t offset = load_u64(file.offsets_ + d * 8);
    uint64_t at = kTokenFileHeaderBytes + d * 8;
    if (d == 0 && offset != 0) return bad(at, "first document offset is not 0");
    if (offset < previous) {
      return bad(at, "document offset " + std::to_string(offset) + " of document " +
                         std::to_string(d) + " is before the previous one (" +
                         std::to_string(previous) + ")");
    }
    previous = offset;
  }
  if (previous != file.num_tokens_) {
    return bad(kTokenFileHeaderBytes + file.num_documents_ * 8,
               "last document offset " + std::to_string(previous) + " is not num_tokens " +
                   std::to_string(file.num_tokens_));
  }
  for (uint64_t i = 0; i < file.num_tokens_; ++i) {
    uint32_t id = file.token(i);
    if (id >= file.vocab_size_) {
      return bad(kTokenFileHeaderBytes + table_bytes + i * file.width_,
                 "token " + std::to_string(i) + " is " + std::to_string(id) +
                     ", not below the vocab size " + std::to_string(file.vocab_size_));
    }
  }
  return file;
}

uint32_t TokenFile::token(uint64_t i) const {
  const unsigned char* p = tokens_ + i * width_;
  if (width_ == 2) return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8;
  return load_u32(p);
}

void TokenFile::read(uint64_t offset, uint64_t count, int32_t* out) const {
  if (width_ == 2) {
    const unsigned char* p = tokens_ + offset * 2;
    for (uint64_t i = 0; i < count; ++i, p += 2) {
      out[i] = static_cast<int32_t>(static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8);
    }
  } else {
    const unsigned char* p = tokens_ + offset * 4;
    for (uint64_t i = 0; i < count; ++i, p += 4) out[i] = static_cast<int32_t>(load_u32(p));
  }
}

uint64_t TokenFile::document_begin(uint64_t d) const {
  return load_u64(offsets_ + d * 8);
}

uint64_t TokenFile::document_end(uint64_t d) const {
  return load_u64(offsets_ + (d + 1) * 8);
}

Status write_token_file(const std::string& path, uint32_t vocab_size,
                        const std::vector<std::vector<uint32_t>>& documents) {
  if (vocab_size == 0) return invalid_argument(path + ": vocab size must be positive");
  const uint32_t width = width_for(vocab_size);
  uint64_t num_tokens = 0;
  for (size_t d = 0; d < documents.size(); ++d) {
    for (uint32_t id : documents[d]) {
      if (id >= vocab_size) {
        return invalid_argument(path + ": document " + std::to_string(d) + " has token id " +
                                std::to_string(id) + ", not below the vocab size " +
                                std::to_string(vocab_size));
      }
    }
    num_tokens += documents[d].size();
  }
  // The payload is produced twice, in bounded chunks: once for its checksum (which the header
  // carries), once to write it.
  auto for_each_chunk = [&](auto&& sink) -> Status {
    std::string chunk;
    chunk.reserve(1 << 20);
    unsigned char word[8];
    uint64_t offset = 0;
    store_u64(word, 0);
    chunk.append(reinterpret_cast<char*>(word), 8);
    for (const auto& document : documents) {
      offset += document.size();
      store_u64(word, offset);
      chunk.append(reinterpret_cast<char*>(word), 8);
      if (chunk.size() >= (1 << 20)) {
        DIPACO_RETURN_IF_ERROR(sink(chunk));
        chunk.clear();
      }
    }
    for (const auto& document : documents) {
      for (uint32_t id : document) {
        store_u32(word, id);
        chunk.append(reinterpret_cast<char*>(word), width);
      }
      if (chunk.size() >= (1 << 20)) {
        DIPACO_RETURN_IF_ERROR(sink(chunk));
        chunk.clear();
      }
    }
    return sink(chunk);
  };
  uint32_t payload_crc = 0;
  DIPACO_RETURN_IF_ERROR(for_each_chunk([&](const std::string& chunk) {
    payload_crc = crc32_update(payload_crc, chunk.data(), chunk.size());
    return Status::ok();
  }));
  unsigned char header[kTokenFileHeaderBytes] = {};
  std::memcpy(header, kTokenFileMagic, 8);
  store_u32(header + 8, kTokenFileVersion);
  store_u32(header + 12, width);
  store_u32(header + 16, vocab_size);
  store_u64(header + 24, num_tokens);
  store_u64(header + 32, documents.size());
  store_u32(header + 40, payload_crc);
  store_u32(header + kHeaderCrcAt, crc32_update(0, header, kHeaderCrcAt));
  DIPACO_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  DIPACO_RETURN_IF_ERROR(file.write(header, sizeof header));
  DIPACO_RETURN_IF_ERROR(
      for_each_chunk([&](const std::string& chunk) { return file.write(chunk); }));
  return file.commit();
}

}  // namespace dipaco
