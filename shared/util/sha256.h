// SHA-256 of bytes and files (OpenSSL's implementation), as lowercase hex: the content identity
// of module versions, shards and exports.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

std::string sha256_hex(std::string_view bytes);
// Streams the file; errors name it.
Result<std::string> sha256_file_hex(const std::string& path);

}  // namespace dipaco
