#include "export/json_value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "data/json_reader.h"
#include "data/json_writer.h"

namespace dipaco {

JsonValue JsonValue::boolean(bool b) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}
JsonValue JsonValue::number(double d) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = d;
  return v;
}
JsonValue JsonValue::string(std::string s) {
  JsonValue v;
  v.type_ = Type::kString;
  v.string_ = std::move(s);
  return v;
}
JsonValue JsonValue::array(std::vector<JsonValue> items) {
  JsonValue v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}
JsonValue JsonValue::object(std::vector<std::pair<std::string, JsonValue>> members) {
  JsonValue v;
  v.type_ = Type::kObject;
  v.members_ = std::move(members);
  return v;
}

const JsonValue* JsonValue::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  // A later duplicate wins, as in most JSON readers.
  for (auto it = members_.rbegin(); it != members_.rend(); ++it)
    if (it->first == key) return &it->second;
  return nullptr;
}

JsonValue& JsonValue::set(std::string key, JsonValue value) {
  assert(is_object());
  for (auto& [k, v] : members_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  members_.emplace_back(std::move(key), std::move(value));
  return *this;
}

JsonValue& JsonValue::push(JsonValue value) {
  assert(is_array());
  items_.push_back(std::move(value));
  return *this;
}

namespace {
std::string number_text(double d) {
  if (!std::isfinite(d)) return "null";  // JSON has no NaN/Inf
  char buf[40];
  if (d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) {
    std::snprintf(buf, sizeof buf, "%.0f", d);
    return buf;
  }
  // The shortest of 15..17 significant digits that reads back as the same double.
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}
}  // namespace

void JsonValue::dump_to(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type_) {
    case Type::kNull: out += "null"; return;
    case Type::kBool: out += bool_ ? "true" : "false"; return;
    case Type::kNumber: out += number_text(number_); return;
    case Type::kString: out += json_quote(string_); return;
    case Type::kArray: {
      if (items_.empty()) {
        out += "[]";
        return;
      }
      // Arrays of scalars stay on one line: module lists, shapes.
      bool flat = true;
      for (const auto& item : items_) flat = flat && !item.is_array() && !item.is_object();
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += ',';
        if (flat) {
          if (i && indent >= 0) out += ' ';
        } else {
          newline(depth + 1);
        }
        items_[i].dump_to(out, indent, depth + 1);
      }
      if (!flat) newline(depth);
      out += ']';
      return;
    }
    case Type::kObject: {
      if (members_.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        out += json_quote(members_[i].first);
        out += indent < 0 ? ":" : ": ";
        members_[i].second.dump_to(out, indent, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
  }
}

std::string JsonValue::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  if (indent >= 0) out += '\n';
  return out;
}

namespace {

constexpr int kMaxDepth = 256;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<JsonValue> parse_document() {
    DIPACO_ASSIGN_OR_RETURN(JsonValue v, parse_value(0));
    skip_space();
    if (pos_ != text_.size()) return error("unexpected text after the JSON value");
    return v;
  }

 private:
  Status error(const std::string& what) const {
    return invalid_argument("invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Result<JsonValue> parse_value(int depth) {
    if (depth > kMaxDepth) return error("nesting deeper than 256");
    skip_space();
    char c = peek();
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      DIPACO_ASSIGN_OR_RETURN(std::string s, parse_string());
      return JsonValue::string(std::move(s));
    }
    if (consume_word("true")) return JsonValue::boolean(true);
    if (consume_word("false")) return JsonValue::boolean(false);
    if (consume_word("null")) return JsonValue::null();
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    return error(pos_ < text_.size() ? "expected a value" : "unexpected end of text");
  }

  Result<JsonValue> parse_number() {
    size_t start = pos_;
    if (peek() == '-') ++pos_;
    auto digits = [&] {
      size_t s = pos_;
      while (peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - s;
    };
    size_t int_start = pos_;
    if (digits() == 0) return error("expected digits");
    if (text_[int_start] == '0' && pos_ - int_start > 1) return error("leading zero in number");
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0) return error("expected digits after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) return error("expected exponent digits");
    }
    std::string literal(text_.substr(start, pos_ - start));
    return JsonValue::number(std::strtod(literal.c_str(), nullptr));
  }

  Result<std::string> parse_string() {
    size_t start = pos_;
    ++pos_;  // opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\') ++pos_;
      ++pos_;
    }
    if (pos_ >= text_.size()) return error("unterminated string");
    ++pos_;
    auto s = parse_json_string(text_.substr(start, pos_ - start));
    if (!s.is_ok()) return error("bad string: " + s.status().message());
    return std::move(s).value();
  }

  Result<JsonValue> parse_array(int depth) {
    ++pos_;
    JsonValue out = JsonValue::array();
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return out;
    }
    while (true) {
      DIPACO_ASSIGN_OR_RETURN(JsonValue item, parse_value(depth + 1));
      out.push(std::move(item));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return out;
      }
      return error("expected ',' or ']' in array");
    }
  }

  Result<JsonValue> parse_object(int depth) {
    ++pos_;
    std::vector<std::pair<std::string, JsonValue>> members;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return JsonValue::object(std::move(members));
    }
    while (true) {
      skip_space();
      if (peek() != '"') return error("expected a string key");
      DIPACO_ASSIGN_OR_RETURN(std::string key, parse_string());
      skip_space();
      if (peek() != ':') return error("expected ':' after key \"" + key + "\"");
      ++pos_;
      DIPACO_ASSIGN_OR_RETURN(JsonValue value, parse_value(depth + 1));
      members.emplace_back(std::move(key), std::move(value));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return JsonValue::object(std::move(members));
      }
      return error("expected ',' or '}' in object");
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Result<JsonValue> parse_json(std::string_view text) {
  return Parser(text).parse_document();
}

}  // namespace dipaco
