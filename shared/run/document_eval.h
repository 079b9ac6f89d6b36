// Validation loss of a model on whole documents: each document is cut from its start into
// windows of up to seq_len + 1 tokens (stride seq_len, never crossing into the next document),
// and every token after the first of a window is predicted once. The same cut for every model,
// so losses of different paths and runs on the same file compare directly.
//
// Re-routed validation (routing.reroute_every = W > 0, the DiPaCo way, as `dipaco eval` and
// `dipaco generate` do it): a document stays whole and keeps its context; only the path that
// scores its predictions changes every W predictions. Prediction i of a document is token i + 1
// given tokens 0..i; segment k holds predictions [kW, min((k+1)W, n - 1)) of a document of n
// tokens. Segment 0 is routed on the document's first tokens, segment k > 0 on the up to
// prefix_tokens tokens before token kW + 1 (everything its first prediction may read). A path's
// loss is the mean over the predictions routed to it, each scored with the whole window before
// it as context; the routed loss the mean over all predictions, each counted once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_file.h"
#include "model/model.h"
#include "util/status.h"

namespace dipaco {

struct EvalSum {
  double loss_sum = 0;  // Σ cross-entropy (nats) over predicted tokens
  uint64_t tokens = 0;  // predicted tokens
  double mean() const { return tokens ? loss_sum / static_cast<double>(tokens) : 0.0; }
  EvalSum& operator+=(const EvalSum& o) {
    loss_sum += o.loss_sum;
    tokens += o.tokens;
    return *this;
  }
};

// Predictions [begin, end) of one document (document-relative prediction indices).
struct PredictionRange {
  uint64_t begin = 0;
  uint64_t end = 0;  // exclusive; end > begin
};

// Per document of a token file: the predictions one path scores, sorted, not overlapping.
using ScoredPredictions = std::vector<std::vector<PredictionRange>>;

// One re-routing segment of a document: its predictions and the tokens [route_begin,
// route_end) (document offsets) its path is chosen on.
struct RerouteSegment {
  PredictionRange predictions;
  uint64_t route_begin = 0;
  uint64_t route_end = 0;
};

// The segments of a document of `tokens` tokens, re-routed every `reroute_every` predictions
// (none for fewer than 2 tokens or reroute_every = 0). Segment 0 is routed on the whole
// document (routing reads its first prefix_tokens).
std::vector<RerouteSegment> reroute_segments(uint64_t tokens, uint64_t reroute_every,
                                             uint64_t prefix_tokens);

// Uses batches of model.max_batch() windows of model.max_seq_len() tokens. Stops after
// max_tokens predicted tokens (0 = the whole file), at a window boundary. With `only`, only its
// predictions count (one entry per document of `file`); windows without any are skipped.
EvalSum evaluate_documents(Model& model, const TokenFile& file, uint64_t max_tokens = 0,
                           const ScoredPredictions* only = nullptr);

// Tokens of `documents` attributed to a path: the target of each of its predictions, and a
// document's first token when the path scores the document's first prediction. Over all paths
// this counts every token of the routed documents once.
uint64_t scored_tokens(const ScoredPredictions& predictions);

// A small text file beside a path's validation shard: the format line, the number of
// documents, then one line per document with its range count and ranges.
Status write_scored_predictions(const std::string& file, const ScoredPredictions& predictions);
// Checks the ranges against `documents` (the shard they belong to).
Result<ScoredPredictions> read_scored_predictions(const std::string& file,
                                                  const TokenFile& documents);

}  // namespace dipaco
