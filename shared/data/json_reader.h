// A small, strict JSON reader for the subset the data pipeline needs: one object per line
// (JSONL, C4 layout), from which a few top-level fields are taken as text.
//
// Accepts full JSON (RFC 8259) syntax: objects, arrays, strings with all escapes including
// \uXXXX surrogate pairs, numbers, true/false/null. Values other than the requested fields are
// validated and skipped. Errors say what was expected and at which byte column (1-based), so a
// caller can prefix "file:line:".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dipaco {

// How a requested field that is present with a value other than a string reads.
enum class NonStringField {
  kError,         // an error naming the field and its kind (a document's text must be a string)
  kNumberAsText,  // a number reads as its JSON text ("17"); true/false/null/objects/arrays as
                  // absent (an optional id or label that some dumps store as a number)
};

struct JsonFieldRequest {
  std::string_view name;
  NonStringField non_string = NonStringField::kError;
};

// Parses `json` (one object, surrounding whitespace allowed) and returns, for each of `fields`,
// the value of that top-level field when it is present and a string, nullopt when it is absent;
// a non-string value reads as the field's NonStringField says (kError: "column 9: field
// \"text\" is a number, not a string", an error that is not "invalid JSON"). A later duplicate
// key wins.
Result<std::vector<std::optional<std::string>>> parse_json_fields(
    std::string_view json, const std::vector<JsonFieldRequest>& fields);

// parse_json_fields with every field of `keys` required to be a string when present.
Result<std::vector<std::optional<std::string>>> parse_json_string_fields(
    std::string_view json, const std::vector<std::string_view>& keys);

// Parses one JSON string literal (with its quotes) that makes up all of `json`.
Result<std::string> parse_json_string(std::string_view json);

// Appends code point `cp` (≤ 0x10FFFF) to `out` as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace dipaco
