// PathChooser: which exported path serves a document, given its first tokens.
//
// The seam between generate/eval and routing. This build has the fixed chooser only: an
// explicit --path, or the one path of a single-path export. Exports with several paths and a
// router need the router (shared/routing, owned elsewhere); until it is wired in here,
// make_path_chooser() says so and asks for --path.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "export/export_reader.h"
#include "util/status.h"

namespace dipaco {

class PathChooser {
 public:
  virtual ~PathChooser() = default;
  // The path id for a document whose tokens so far are `prefix`.
  virtual int choose(std::span<const int32_t> prefix) = 0;
  // "fixed path 2", "kmeans router (prefix 32 tokens)".
  virtual std::string describe() const = 0;
};

// `path`: an explicit path id (must be in the export).
Result<std::unique_ptr<PathChooser>> make_path_chooser(const OpenedExport& ex,
                                                       std::optional<int> path);

}  // namespace dipaco
