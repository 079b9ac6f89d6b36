// PathChooser: which exported path serves a document, given its first tokens.
//
// Fixed: an explicit --path, or the only path of a one-path export. Routed: the export's
// router (router.safetensors, shared/routing/router.h) applied to the document's routing
// features, computed with the router's base model (router-base.safetensors) as in
// routing/document_features.h: the mean of the base model's final-norm output over the first
// prefix_tokens tokens. Router cluster c is path c (algo/grid_spec.h numbers paths that way).
// Re-routing inside a document (every reroute_every tokens) routes on the prefix_tokens tokens
// before the re-routing point.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "export/export_reader.h"
#include "model/model.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

class PathChooser {
 public:
  virtual ~PathChooser() = default;
  // The path id for a document whose tokens so far are `prefix` (non-empty, ids < vocab).
  // An error when the router picks a path the export does not contain.
  virtual Result<int> choose(std::span<const int32_t> prefix) = 0;
  // Re-routing: the path for the tokens after position `point` (0 < point <= doc.size()) of a
  // document, from the up to prefix-length tokens just before it.
  virtual Result<int> choose_at(std::span<const int32_t> doc, size_t point) = 0;
  // The router's re-routing interval in tokens (0: route once per document).
  virtual int reroute_every() const { return 0; }
  // "fixed path 2", "kmeans router over 4 paths, first 32 tokens".
  virtual std::string describe() const = 0;
};

// `path`: an explicit path id (must be in the export). Without one, a one-path export uses its
// path and a several-path export its router, whose base model runs on `backend`.
Result<std::unique_ptr<PathChooser>> make_path_chooser(const OpenedExport& ex,
                                                       std::optional<int> path, Backend* backend);

// Routing features of one document: the mean of base's final hidden state over its first
// min(prefix_tokens, tokens.size()) tokens. base.max_seq_len() >= prefix_tokens.
std::vector<float> prefix_features(Model& base, std::span<const int32_t> tokens, int prefix_tokens);

}  // namespace dipaco
