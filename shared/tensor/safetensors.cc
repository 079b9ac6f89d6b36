#include "tensor/safetensors.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "util/atomic_file.h"

namespace dipaco {

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

namespace {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// A strict parser for the header's JSON subset: objects, arrays, strings, non-negative
// integers. Anything else is an error (safetensors headers contain nothing else).
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : s_(text) {}

  Status parse(std::map<std::string, std::string>* metadata,
               std::vector<SafetensorsTensor>* tensors) {
    DIPACO_RETURN_IF_ERROR(expect('{'));
    if (peek() == '}') return finish();
    for (;;) {
      std::string name;
      DIPACO_RETURN_IF_ERROR(string(&name));
      DIPACO_RETURN_IF_ERROR(expect(':'));
      if (name == "__metadata__") {
        DIPACO_RETURN_IF_ERROR(string_map(metadata));
      } else {
        SafetensorsTensor t;
        t.name = name;
        DIPACO_RETURN_IF_ERROR(tensor(&t));
        tensors->push_back(std::move(t));
      }
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      DIPACO_RETURN_IF_ERROR(expect('}'));
      return finish();
    }
  }

 private:
  Status error(const std::string& what) const {
    return data_loss("header: " + what + " at byte " + std::to_string(pos_));
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  char peek() {
    skip_ws();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  Status expect(char c) {
    if (peek() != c) return error(std::string("expected '") + c + "'");
    ++pos_;
    return Status::ok();
  }
  Status finish() {
    skip_ws();
    return pos_ == s_.size() ? Status::ok() : error("trailing characters");
  }
  Status string(std::string* out) {
    DIPACO_RETURN_IF_ERROR(expect('"'));
    out->clear();
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return error("short \\u escape");
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9')
              cp |= h - '0';
            else if (h >= 'a' && h <= 'f')
              cp |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F')
              cp |= h - 'A' + 10;
            else
              return error("bad \\u escape");
          }
          // Our writer escapes only control characters; keep the BMP as UTF-8.
          if (cp < 0x80) {
            *out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            *out += static_cast<char>(0xC0 | (cp >> 6));
            *out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            *out += static_cast<char>(0xE0 | (cp >> 12));
            *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: return error("bad escape");
      }
    }
    if (pos_ >= s_.size()) return error("unterminated string");
    ++pos_;
    return Status::ok();
  }
  Status integer(uint64_t* out) {
    skip_ws();
    size_t start = pos_;
    uint64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (UINT64_MAX - 9) / 10) return error("integer too large");
      v = v * 10 + static_cast<uint64_t>(s_[pos_++] - '0');
    }
    if (pos_ == start) return error("expected an integer");
    *out = v;
    return Status::ok();
  }
  Status int_array(std::vector<uint64_t>* out) {
    DIPACO_RETURN_IF_ERROR(expect('['));
    out->clear();
    if (peek() == ']') {
      ++pos_;
      return Status::ok();
    }
    for (;;) {
      uint64_t v = 0;
      DIPACO_RETURN_IF_ERROR(integer(&v));
      out->push_back(v);
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      return expect(']');
    }
  }
  Status string_map(std::map<std::string, std::string>* out) {
    DIPACO_RETURN_IF_ERROR(expect('{'));
    if (peek() == '}') {
      ++pos_;
      return Status::ok();
    }
    for (;;) {
      std::string key, value;
      DIPACO_RETURN_IF_ERROR(string(&key));
      DIPACO_RETURN_IF_ERROR(expect(':'));
      DIPACO_RETURN_IF_ERROR(string(&value));
      (*out)[key] = value;
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      return expect('}');
    }
  }
  Status tensor(SafetensorsTensor* t) {
    DIPACO_RETURN_IF_ERROR(expect('{'));
    bool have_dtype = false, have_shape = false, have_offsets = false;
    std::vector<uint64_t> offsets;
    for (;;) {
      std::string key;
      DIPACO_RETURN_IF_ERROR(string(&key));
      DIPACO_RETURN_IF_ERROR(expect(':'));
      if (key == "dtype") {
        DIPACO_RETURN_IF_ERROR(string(&t->dtype));
        have_dtype = true;
      } else if (key == "shape") {
        std::vector<uint64_t> shape;
        DIPACO_RETURN_IF_ERROR(int_array(&shape));
        t->shape.assign(shape.begin(), shape.end());
        have_shape = true;
      } else if (key == "data_offsets") {
        DIPACO_RETURN_IF_ERROR(int_array(&offsets));
        have_offsets = true;
      } else {
        return error("unknown key \"" + key + "\" in tensor \"" + t->name + "\"");
      }
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      DIPACO_RETURN_IF_ERROR(expect('}'));
      break;
    }
    if (!have_dtype || !have_shape || !have_offsets || offsets.size() != 2 ||
        offsets[1] < offsets[0])
      return error("tensor \"" + t->name + "\" needs dtype, shape and data_offsets [begin, end]");
    t->offset = offsets[0];
    t->bytes = offsets[1] - offsets[0];
    return Status::ok();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                         const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + quote(k) + ":" + quote(v);
      first = false;
    }
    header += "}";
  }
  size_t offset = 0;
  for (const auto& item : items) {
    size_t elem = safetensors_dtype_size(item.dtype);
    size_t numel = 1;
    for (int64_t d : item.shape) numel *= static_cast<size_t>(d);
    if (elem == 0 || numel * elem != item.bytes) {
      return invalid_argument(path + ": tensor \"" + item.name + "\" has " +
                              std::to_string(item.bytes) + " bytes, not dtype x shape");
    }
    if (header.size() > 1) header += ",";
    header += quote(item.name) + ":{\"dtype\":" + quote(item.dtype) + ",\"shape\":[";
    for (size_t i = 0; i < item.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(item.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + item.bytes) + "]}";
    offset += item.bytes;
  }
  header += "}";
  // Pad with spaces so the data section starts 8-byte aligned (the format allows it).
  while ((8 + header.size()) % 8 != 0) header += ' ';

  DIPACO_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  DIPACO_RETURN_IF_ERROR(file.write(len, 8));
  DIPACO_RETURN_IF_ERROR(file.write(header));
  for (const auto& item : items) DIPACO_RETURN_IF_ERROR(file.write(item.data, item.bytes));
  return file.commit();
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  DIPACO_ASSIGN_OR_RETURN(f.contents_, read_file(path));
  const std::string& c = f.contents_;
  if (c.size() < 8) return data_loss(path + ": too short for a safetensors file");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(c[i])) << (8 * i);
  if (n > c.size() - 8) {
    return data_loss(path + ": header length " + std::to_string(n) + " exceeds the file size " +
                     std::to_string(c.size()) + " (truncated, or not a safetensors file)");
  }
  HeaderParser parser(std::string_view(c).substr(8, n));
  if (Status s = parser.parse(&f.metadata_, &f.tensors_); !s) return s.with_context(path);
  f.data_start_ = 8 + n;
  const size_t data_size = c.size() - f.data_start_;
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& t : f.tensors_) {
    size_t elem = safetensors_dtype_size(t.dtype);
    if (elem == 0)
      return data_loss(path + ": tensor \"" + t.name + "\" has unknown dtype " + t.dtype);
    size_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<size_t>(d);
    if (numel * elem != t.bytes) {
      return data_loss(path + ": tensor \"" + t.name + "\" has " + std::to_string(t.bytes) +
                       " bytes, its dtype and shape need " + std::to_string(numel * elem));
    }
    if (t.offset + t.bytes > data_size) {
      return data_loss(path + ": tensor \"" + t.name + "\" extends past the end of the file " +
                       "(truncated?)");
    }
    spans.emplace_back(t.offset, t.offset + t.bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return data_loss(path + ": tensors overlap");
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const uint8_t* SafetensorsFile::data(const SafetensorsTensor& t) const {
  return reinterpret_cast<const uint8_t*>(contents_.data()) + data_start_ + t.offset;
}

Result<uint64_t> SafetensorsFile::metadata_uint(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return data_loss(path_ + ": metadata '" + key + "' is missing");
  char* end = nullptr;
  unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || it->second[0] == '-')
    return data_loss(path_ + ": metadata '" + key + "' is not a number");
  return static_cast<uint64_t>(v);
}

}  // namespace dipaco
