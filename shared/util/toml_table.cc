#include "util/toml_table.h"

#include <charconv>

#include "util/arg_parser.h"

namespace dipaco {

TomlKey toml_int(const char* name, int64_t* out, int64_t min, int64_t max) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value_exact<int64_t>();
            if (!v) return invalid_argument(where + " must be an integer");
            if (*v < min || *v > max) {
              return invalid_argument(where + " must be in [" + std::to_string(min) + ", " +
                                      std::to_string(max) + "], got " + std::to_string(*v));
            }
            *out = *v;
            return Status::ok();
          }};
}

TomlKey toml_int(const char* name, int* out, int min, int max) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            int64_t v = 0;
            DIPACO_RETURN_IF_ERROR(toml_int(name, &v, min, max).set(n, where));
            *out = static_cast<int>(v);
            return Status::ok();
          }};
}

TomlKey toml_uint(const char* name, uint64_t* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            int64_t v = 0;
            DIPACO_RETURN_IF_ERROR(
                toml_int(name, &v, 0, std::numeric_limits<int64_t>::max()).set(n, where));
            *out = static_cast<uint64_t>(v);
            return Status::ok();
          }};
}

TomlKey toml_double(const char* name, double* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value<double>();  // integers are accepted too
            if (!v || n.is_boolean() || n.is_string())
              return invalid_argument(where + " must be a number");
            *out = *v;
            return Status::ok();
          }};
}

TomlKey toml_float(const char* name, float* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            double v = 0;
            DIPACO_RETURN_IF_ERROR(toml_double(name, &v).set(n, where));
            *out = static_cast<float>(v);
            return Status::ok();
          }};
}

TomlKey toml_bool(const char* name, bool* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value_exact<bool>();
            if (!v) return invalid_argument(where + " must be true or false");
            *out = *v;
            return Status::ok();
          }};
}

TomlKey toml_string(const char* name, std::string* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value_exact<std::string>();
            if (!v) return invalid_argument(where + " must be a string");
            *out = *v;
            return Status::ok();
          }};
}

Status read_toml_keys(const toml::table& t, const std::string& where,
                      const std::vector<TomlKey>& keys) {
  for (const auto& [k, v] : t) {
    std::string name(k.str());
    std::string full = where + "." + name;
    const TomlKey* key = nullptr;
    for (const TomlKey& candidate : keys)
      if (name == candidate.name) key = &candidate;
    if (key == nullptr) {
      std::string best;
      size_t best_distance = 4;
      for (const TomlKey& candidate : keys) {
        size_t d = edit_distance(name, candidate.name);
        if (d < best_distance) {
          best_distance = d;
          best = candidate.name;
        }
      }
      return invalid_argument(
          "unknown key '" + full + "'" +
          (best.empty() ? "" : " (did you mean '" + where + "." + best + "'?)"));
    }
    DIPACO_RETURN_IF_ERROR(key->set(v, full));
  }
  return Status::ok();
}

Status read_toml_table(const toml::table& root, const std::string& table,
                       const std::vector<TomlKey>& keys) {
  const toml::node* node = root.get(table);
  if (node == nullptr) return Status::ok();
  const toml::table* t = node->as_table();
  if (t == nullptr) return invalid_argument("'" + table + "' must be a table ([" + table + "])");
  return read_toml_keys(*t, table, keys);
}

Result<toml::table> parse_toml(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return invalid_argument(source + ":" + std::to_string(where.line) + ":" +
                            std::to_string(where.column) + ": " + std::string(e.description()));
  }
}

Status check_toml_tables(const toml::table& root, const std::vector<std::string>& allowed,
                         const std::string& source) {
  for (const auto& [k, v] : root) {
    bool known = false;
    for (const std::string& t : allowed) known = known || k.str() == t;
    if (!known) {
      std::string list;
      for (const std::string& t : allowed) list += (list.empty() ? "" : ", ") + t;
      return invalid_argument(source + ": unknown table '" + std::string(k.str()) +
                              "' (tables: " + list + ")");
    }
  }
  return Status::ok();
}

std::string toml_float_literal(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, end);
  if (s.find_first_of(".ein") == std::string::npos) s += ".0";
  return s;
}

std::string toml_string_literal(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

}  // namespace dipaco
