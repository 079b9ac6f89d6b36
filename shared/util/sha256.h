// SHA-256 over OpenSSL's libcrypto (always present: Debian's libgrpc-dev depends on libssl-dev).
// Used to verify module checkpoints, shard files and pushed outer gradients end to end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

// Incremental hash: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  // The 32-byte digest; the object must not be updated afterwards.
  std::string digest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// 32-byte digest of `bytes`.
std::string sha256(std::string_view bytes);
// Lowercase hex of a byte string, and back (kInvalidArgument on odd length or a non-hex digit).
std::string to_hex(std::string_view bytes);
Result<std::string> from_hex(std::string_view hex);
// 32-byte digest of a whole file, read in 1 MiB pieces; errors name the path.
Result<std::string> sha256_file(const std::string& path);
// The same as lowercase hex: the content identity of module versions, shards and exports.
std::string sha256_hex(std::string_view bytes);
Result<std::string> sha256_file_hex(const std::string& path);

}  // namespace dipaco
