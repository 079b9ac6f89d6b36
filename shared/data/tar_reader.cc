#include "data/tar_reader.h"

#include <cstdint>

namespace dipaco {
namespace {

constexpr size_t kBlock = 512;

std::string field_text(std::string_view header, size_t offset, size_t size) {
  std::string_view field = header.substr(offset, size);
  size_t end = field.find('\0');
  return std::string(field.substr(0, end));
}

// Numeric header fields are octal text, NUL/space terminated (base-256 for huge sizes).
bool parse_octal(std::string_view field, uint64_t* out) {
  if (!field.empty() && (static_cast<unsigned char>(field[0]) & 0x80)) {
    uint64_t v = static_cast<unsigned char>(field[0]) & 0x7f;
    for (size_t i = 1; i < field.size(); ++i) v = (v << 8) | static_cast<unsigned char>(field[i]);
    *out = v;
    return true;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  bool any = false;
  for (; i < field.size(); ++i) {
    char c = field[i];
    if (c == '\0' || c == ' ') break;
    if (c < '0' || c > '7') return false;
    v = v * 8 + static_cast<uint64_t>(c - '0');
    any = true;
  }
  *out = v;
  return any;
}

// The "path" value of pax extended header records ("<len> path=<value>\n"), if any.
std::string pax_path(std::string_view records) {
  std::string path;
  size_t pos = 0;
  while (pos < records.size()) {
    size_t space = records.find(' ', pos);
    if (space == std::string_view::npos) break;
    size_t length = 0;
    for (size_t i = pos; i < space; ++i) {
      if (records[i] < '0' || records[i] > '9') return path;
      length = length * 10 + static_cast<size_t>(records[i] - '0');
    }
    if (length == 0 || pos + length > records.size()) break;
    std::string_view record = records.substr(space + 1, pos + length - space - 2);
    if (record.substr(0, 5) == "path=") path = std::string(record.substr(5));
    pos += length;
  }
  return path;
}

}  // namespace

Result<std::vector<TarEntry>> read_tar(std::string_view archive, const std::string& name) {
  std::vector<TarEntry> entries;
  std::string next_path;  // from a pax header, for the next entry
  size_t pos = 0;
  while (true) {
    if (pos + kBlock > archive.size()) {
      return data_loss(name + ": truncated tar archive: header at byte " + std::to_string(pos) +
                       " is cut off (archive has " + std::to_string(archive.size()) + " bytes)");
    }
    std::string_view header = archive.substr(pos, kBlock);
    if (header.find_first_not_of('\0') == std::string_view::npos) break;  // end marker
    auto where = [&] { return name + ": tar header at byte " + std::to_string(pos) + ": "; };
    uint64_t stored_sum = 0;
    if (!parse_octal(header.substr(148, 8), &stored_sum)) {
      return data_loss(where() + "unreadable checksum field");
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
    }
    if (sum != stored_sum) return data_loss(where() + "bad checksum (not a tar archive?)");
    uint64_t size = 0;
    if (!parse_octal(header.substr(124, 12), &size)) {
      return data_loss(where() + "unreadable size field");
    }
    char type = header[156];
    std::string path = field_text(header, 0, 100);
    if (header.substr(257, 5) == "ustar") {
      std::string prefix = field_text(header, 345, 155);
      if (!prefix.empty()) path = prefix + "/" + path;
    }
    size_t data_at = pos + kBlock;
    if (size > archive.size() - data_at) {
      return data_loss(where() + "entry '" + path + "' needs " + std::to_string(size) +
                       " bytes but the archive ends after " +
                       std::to_string(archive.size() - data_at));
    }
    std::string_view data = archive.substr(data_at, size);
    if (type == 'x') {
      next_path = pax_path(data);
    } else if (type == '0' || type == '\0' || type == '7') {
      if (!next_path.empty()) path = next_path;
      entries.push_back({path, std::string(data)});
      next_path.clear();
    } else if (type != 'g') {
      next_path.clear();  // directories, links, GNU records: not needed here
    }
    pos = data_at + (size + kBlock - 1) / kBlock * kBlock;
  }
  return entries;
}

}  // namespace dipaco
