// Reading TOML tables into structs with errors that name the key ("inner.lr must be a number").
//
// A table is read against a list of Keys; an unknown key is an error with a "did you mean"
// suggestion, a missing key leaves the struct's default. Parse errors of the text itself come
// back as "source:line:column: description".
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

// One settable key of a table; `set` gets the node and its full name ("table.key").
struct TomlKey {
  const char* name;
  std::function<Status(const toml::node&, const std::string& where)> set;
};

TomlKey toml_int(const char* name, int64_t* out, int64_t min, int64_t max);
TomlKey toml_int(const char* name, int* out, int min, int max);
TomlKey toml_uint(const char* name, uint64_t* out);  // >= 0
TomlKey toml_double(const char* name, double* out);  // integers accepted
TomlKey toml_float(const char* name, float* out);
TomlKey toml_bool(const char* name, bool* out);
TomlKey toml_string(const char* name, std::string* out);

// Reads root[table] (absent: nothing to do) against `keys`. `table` may be dotted only for
// display; the lookup is root.get(table).
Status read_toml_table(const toml::table& root, const std::string& table,
                       const std::vector<TomlKey>& keys);
// Reads the keys of an already located table `t`, naming them "<where>.<key>".
Status read_toml_keys(const toml::table& t, const std::string& where,
                      const std::vector<TomlKey>& keys);

// Parses TOML text; errors as "source:line:column: description".
Result<toml::table> parse_toml(const std::string& text, const std::string& source);

// Fails unless every top-level key of `root` is one of `allowed` (tables or keys).
Status check_toml_tables(const toml::table& root, const std::vector<std::string>& allowed,
                         const std::string& source);

// TOML literals: a double that reads back identically and always looks like a float, and a
// quoted basic string.
std::string toml_float_literal(double v);
std::string toml_string_literal(const std::string& s);

}  // namespace dipaco
