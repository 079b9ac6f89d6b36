#include "data/json_reader.h"

#include <cstdint>

namespace dipaco {
namespace {

constexpr int kMaxDepth = 512;

// Recursive-descent parser over a string_view; `pos_` is the byte offset of the next char.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Status error(const std::string& what) const {
    return invalid_argument("invalid JSON at column " + std::to_string(pos_ + 1) + ": " + what);
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  Status expect(char c) {
    if (peek() != c) {
      return error(std::string("expected '") + c + "'" + found());
    }
    ++pos_;
    return Status::ok();
  }

  std::string found() const {
    if (at_end()) return ", found the end of the line";
    char c = text_[pos_];
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return ", found byte " + std::to_string(static_cast<unsigned char>(c));
    }
    return std::string(", found '") + c + "'";
  }

  Status hex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) return error("\\u needs 4 hex digits");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return error("\\u needs 4 hex digits" + found());
      }
      ++pos_;
    }
    *out = v;
    return Status::ok();
  }

  // Parses a string literal at pos_; appends its value to `out` when not null.
  Status string(std::string* out) {
    DIPACO_RETURN_IF_ERROR(expect('"'));
    while (true) {
      if (at_end()) return error("unterminated string");
      // Copy runs of plain bytes at once.
      size_t start = pos_;
      while (pos_ < text_.size() && text_[pos_] != '"' && text_[pos_] != '\\' &&
             static_cast<unsigned char>(text_[pos_]) >= 0x20) {
        ++pos_;
      }
      if (out) out->append(text_.substr(start, pos_ - start));
      if (at_end()) return error("unterminated string");
      char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return Status::ok();
      }
      if (c != '\\') return error("control character in string" + found());
      ++pos_;
      if (at_end()) return error("unterminated escape");
      char e = text_[pos_++];
      char plain = 0;
      switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
          size_t escape_at = pos_ - 2;
          uint32_t cp = 0;
          DIPACO_RETURN_IF_ERROR(hex4(&cp));
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            pos_ = escape_at;
            return error("lone low surrogate \\u" + std::string(text_.substr(pos_ + 2, 4)));
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") {
              pos_ = escape_at;
              return error("high surrogate \\u" + std::string(text_.substr(pos_ + 2, 4)) +
                           " is not followed by a low surrogate");
            }
            pos_ += 2;
            uint32_t low = 0;
            DIPACO_RETURN_IF_ERROR(hex4(&low));
            if (low < 0xDC00 || low > 0xDFFF) {
              pos_ = escape_at;
              return error("high surrogate \\u" + std::string(text_.substr(pos_ + 2, 4)) +
                           " is not followed by a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          if (out) append_utf8(*out, cp);
          continue;
        }
        default: pos_ -= 1; return error("unknown escape '\\" + std::string(1, e) + "'");
      }
      if (out) out->push_back(plain);
    }
  }

  Status number() {
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      return error("expected a digit" + found());
    }
    if (peek() == '.') {
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) return error("expected a digit after '.'" + found());
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) return error("expected an exponent digit" + found());
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    return Status::ok();
  }

  Status literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return error("expected a value" + found());
    pos_ += word.size();
    return Status::ok();
  }

  // Validates and skips any value.
  Status skip_value(int depth) {
    if (depth > kMaxDepth) return error("nested deeper than " + std::to_string(kMaxDepth));
    skip_space();
    char c = peek();
    switch (c) {
      case '"': return string(nullptr);
      case '{': {
        ++pos_;
        skip_space();
        if (peek() == '}') {
          ++pos_;
          return Status::ok();
        }
        while (true) {
          skip_space();
          DIPACO_RETURN_IF_ERROR(string(nullptr));
          skip_space();
          DIPACO_RETURN_IF_ERROR(expect(':'));
          DIPACO_RETURN_IF_ERROR(skip_value(depth + 1));
          skip_space();
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          return expect('}');
        }
      }
      case '[': {
        ++pos_;
        skip_space();
        if (peek() == ']') {
          ++pos_;
          return Status::ok();
        }
        while (true) {
          DIPACO_RETURN_IF_ERROR(skip_value(depth + 1));
          skip_space();
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          return expect(']');
        }
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        return error("expected a value" + found());
    }
  }

  static const char* kind_name(char c) {
    switch (c) {
      case '{': return "an object";
      case '[': return "an array";
      case 't':
      case 'f': return "a boolean";
      case 'n': return "null";
      default: return "a number";
    }
  }

  Status object_fields(const std::vector<JsonFieldRequest>& keys,
                       std::vector<std::optional<std::string>>* values) {
    skip_space();
    if (peek() != '{') return error("expected a JSON object" + found());
    ++pos_;
    skip_space();
    if (peek() == '}') {
      ++pos_;
    } else {
      std::string key;
      while (true) {
        skip_space();
        key.clear();
        DIPACO_RETURN_IF_ERROR(string(&key));
        skip_space();
        DIPACO_RETURN_IF_ERROR(expect(':'));
        skip_space();
        size_t wanted = keys.size();
        for (size_t i = 0; i < keys.size(); ++i) {
          if (keys[i].name == key) wanted = i;
        }
        if (wanted < keys.size() && peek() == '"') {
          std::string value;
          DIPACO_RETURN_IF_ERROR(string(&value));
          (*values)[wanted] = std::move(value);
        } else if (wanted < keys.size()) {
          // Valid JSON of the wrong kind: validated first, so that a syntax error still reads
          // as one.
          const size_t start = pos_;
          const char kind = peek();
          DIPACO_RETURN_IF_ERROR(skip_value(1));
          const bool is_number = kind == '-' || (kind >= '0' && kind <= '9');
          if (keys[wanted].non_string == NonStringField::kError) {
            return invalid_argument("column " + std::to_string(start + 1) + ": field \"" + key +
                                    "\" is " + kind_name(kind) + ", not a string");
          }
          if (is_number) {
            (*values)[wanted] = std::string(text_.substr(start, pos_ - start));
          } else {
            (*values)[wanted].reset();
          }
        } else {
          DIPACO_RETURN_IF_ERROR(skip_value(1));
        }
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        DIPACO_RETURN_IF_ERROR(expect('}'));
        break;
      }
    }
    skip_space();
    if (!at_end()) return error("unexpected text after the object" + found());
    return Status::ok();
  }

  size_t pos_ = 0;

 private:
  std::string_view text_;
};

}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

Result<std::vector<std::optional<std::string>>> parse_json_fields(
    std::string_view json, const std::vector<JsonFieldRequest>& fields) {
  std::vector<std::optional<std::string>> values(fields.size());
  Parser parser(json);
  DIPACO_RETURN_IF_ERROR(parser.object_fields(fields, &values));
  return values;
}

Result<std::vector<std::optional<std::string>>> parse_json_string_fields(
    std::string_view json, const std::vector<std::string_view>& keys) {
  std::vector<JsonFieldRequest> fields;
  fields.reserve(keys.size());
  for (std::string_view key : keys) fields.push_back({key, NonStringField::kError});
  return parse_json_fields(json, fields);
}

Result<std::string> parse_json_string(std::string_view json) {
  Parser parser(json);
  std::string value;
  parser.skip_space();
  DIPACO_RETURN_IF_ERROR(parser.string(&value));
  parser.skip_space();
  if (!parser.at_end()) return parser.error("unexpected text after the string" + parser.found());
  return value;
}

}  // namespace dipaco
