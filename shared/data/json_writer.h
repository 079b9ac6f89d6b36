// JSON output helpers: quoting strings for JSONL documents and small meta files.
#pragma once

#include <string>
#include <string_view>

namespace dipaco {

// `"..."` with '"', '\\' and control characters (< 0x20) escaped (\n, \t, ..., \u001f);
// other bytes (UTF-8 included) are copied unchanged.
std::string json_quote(std::string_view text);

}  // namespace dipaco
