// Small helpers shared by the Qt Test executables.
#pragma once

#include <string_view>

namespace dipaco::test {

// True when `part` occurs in `text` (error-message checks).
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace dipaco::test
