// The key a GridSpec error names, so the designer can mark the offending field.
// GridSpec errors start with the key as written in the TOML file ("model.d_model 250 is not
// divisible ...", "grid.level[1].blocks starts at ...", "routing.method = ..."); errors about
// the grid as a whole start with "grid" ("grid levels cover ...", "the grid has 5000 paths").
#pragma once

#include <string>

namespace dipaco::studio {

// "model.d_model", "grid.level[1].blocks", "routing.method", "grid" (whole-grid errors), or ""
// when the message names no key. A leading "source: " context (a file name) is skipped.
std::string error_key(const std::string& message);

// The level index in "grid.level[3].blocks" (3), or -1.
int error_level(const std::string& key);

}  // namespace dipaco::studio
