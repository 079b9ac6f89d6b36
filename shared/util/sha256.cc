#include "util/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace dipaco {

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(state_->ctx);
}

void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size());
}

std::string Sha256::digest() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(state_->ctx, out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string sha256(std::string_view bytes) {
  Sha256 hash;
  hash.update(bytes);
  return hash.digest();
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

Result<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return invalid_argument("hex string of odd length " + std::to_string(hex.size()));
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return invalid_argument("'" + std::string(hex) + "' is not hex (position " +
                              std::to_string(hi < 0 ? i : i + 1) + ")");
    bytes.push_back(static_cast<char>(hi * 16 + lo));
  }
  return bytes;
}

Result<std::string> sha256_file(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return io_error(path + ": cannot open: " + std::strerror(errno));
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (true) {
    size_t got = std::fread(buffer.data(), 1, buffer.size(), file);
    if (got > 0) hash.update(std::string_view(buffer.data(), got));
    if (got < buffer.size()) break;
  }
  const int err = errno;
  bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed && err == EISDIR) return invalid_argument(path + ": is a directory, expected a file");
  if (failed) return io_error(path + ": cannot read: " + std::strerror(err));
  return hash.digest();
}

std::string sha256_hex(std::string_view bytes) {
  return to_hex(sha256(bytes));
}

Result<std::string> sha256_file_hex(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string digest, sha256_file(path));
  return to_hex(digest);
}

}  // namespace dipaco
