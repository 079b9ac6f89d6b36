#include "error_key.h"

#include <cctype>

namespace dipaco::studio {

namespace {

bool key_char(char c) {
  return std::islower(static_cast<unsigned char>(c)) != 0 ||
         std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '[' ||
         c == ']';
}

// The dotted key at the start of `s`, or "".
std::string leading_key(const std::string& s) {
  size_t n = 0;
  while (n < s.size() && key_char(s[n])) ++n;
  std::string key = s.substr(0, n);
  while (!key.empty() && key.back() == '.') key.pop_back();
  if (key.find('.') == std::string::npos) return "";
  return key;
}

}  // namespace

std::string error_key(const std::string& message) {
  std::string m = message;
  // Skip "file.toml: " contexts: a key never contains ": ".
  for (size_t at = m.find(": "); at != std::string::npos; at = m.find(": ")) {
    std::string head = m.substr(0, at);
    const bool file = head.size() > 5 && head.compare(head.size() - 5, 5, ".toml") == 0;
    if (!file && leading_key(head) == head) break;  // "outer.optimizer: ..." names a key
    if (!file && head.find(' ') != std::string::npos) break;
    m = m.substr(at + 2);
  }
  std::string key = leading_key(m);
  if (!key.empty()) return key;
  if (m.rfind("grid", 0) == 0 || m.rfind("the grid", 0) == 0) return "grid";
  return "";
}

int error_level(const std::string& key) {
  const std::string prefix = "grid.level[";
  if (key.rfind(prefix, 0) != 0) return -1;
  size_t end = key.find(']', prefix.size());
  if (end == std::string::npos) return -1;
  try {
    return std::stoi(key.substr(prefix.size(), end - prefix.size()));
  } catch (...) {
    return -1;
  }
}

}  // namespace dipaco::studio
