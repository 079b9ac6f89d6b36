#include "data/gzip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <climits>

#include "util/atomic_file.h"

namespace dipaco {

Result<std::string> gunzip(std::string_view compressed, const std::string& name) {
  if (compressed.size() < 2 || static_cast<unsigned char>(compressed[0]) != 0x1f ||
      static_cast<unsigned char>(compressed[1]) != 0x8b) {
    return data_loss(name + ": not gzip data (no gzip magic at byte 0)");
  }
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return internal_error(name + ": inflateInit2 failed");
  }
  std::string out;
  out.reserve(compressed.size() * 4);
  const auto* begin = reinterpret_cast<const Bytef*>(compressed.data());
  size_t consumed = 0;
  char buffer[1 << 16];
  Status status;
  bool member_done = false;
  while (true) {
    if (stream.avail_in == 0 && consumed < compressed.size()) {
      auto chunk = static_cast<uInt>(std::min<size_t>(compressed.size() - consumed, UINT_MAX));
      stream.next_in = const_cast<Bytef*>(begin + consumed);
      stream.avail_in = chunk;
      consumed += chunk;
    }
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    int rc = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
    size_t position = consumed - stream.avail_in;  // compressed bytes used so far
    if (rc == Z_STREAM_END) {
      member_done = true;
      if (position == compressed.size()) break;
      // Another member follows (or trailing garbage, which inflate then reports).
      if (inflateReset(&stream) != Z_OK) {
        status = internal_error(name + ": inflateReset failed");
        break;
      }
      member_done = false;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && stream.avail_in == 0 && consumed == compressed.size()) {
      status = data_loss(name + ": truncated gzip data: stream ends after " +
                         std::to_string(compressed.size()) + " compressed bytes (" +
                         std::to_string(out.size()) + " bytes inflated)");
      break;
    }
    status = data_loss(name + ": corrupt gzip data at compressed byte " + std::to_string(position) +
                       ": " + (stream.msg ? stream.msg : "inflate error " + std::to_string(rc)));
    break;
  }
  inflateEnd(&stream);
  if (!status.is_ok()) return status;
  if (!member_done) {
    return data_loss(name + ": truncated gzip data: stream ends after " +
                     std::to_string(compressed.size()) + " compressed bytes");
  }
  return out;
}

Result<std::string> read_gzip_file(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string compressed, read_file(path));
  return gunzip(compressed, path);
}

}  // namespace dipaco
