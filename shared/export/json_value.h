// JsonValue: a parsed JSON document (RFC 8259) for the small manifest and config files of the
// export layer (run.json, config.json, dipaco.json). Objects keep their key order.
//
// parse_json() is strict (no comments, no trailing commas, nesting depth <= 256) and its errors
// give the byte offset. The accessors never fail: a missing key or a value of another type
// reads as nullptr / the fallback, so callers check and name the key in their own errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace dipaco {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  static JsonValue null() { return {}; }
  static JsonValue boolean(bool b);
  static JsonValue number(double d);
  static JsonValue string(std::string s);
  static JsonValue array(std::vector<JsonValue> items = {});
  static JsonValue object(std::vector<std::pair<std::string, JsonValue>> members = {});

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool(bool fallback = false) const { return is_bool() ? bool_ : fallback; }
  double as_number(double fallback = 0) const { return is_number() ? number_ : fallback; }
  const std::string& as_string() const { return string_; }        // "" unless a string
  const std::vector<JsonValue>& items() const { return items_; }  // empty unless an array
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }

  // The member `key` of an object; nullptr when absent or when this is not an object.
  const JsonValue* find(std::string_view key) const;
  // Objects: sets (replacing) member `key`. Arrays: appends.
  JsonValue& set(std::string key, JsonValue value);
  JsonValue& push(JsonValue value);

  // Compact when indent < 0, else pretty-printed with `indent` spaces. Integral numbers print
  // without a fraction ("3", not "3.0"); others with the fewest digits that read back exactly.
  std::string dump(int indent = 2) const;

 private:
  void dump_to(std::string& out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// Parses one JSON value (surrounding whitespace allowed). Errors: "byte 17: expected ':'".
Result<JsonValue> parse_json(std::string_view text);

}  // namespace dipaco
