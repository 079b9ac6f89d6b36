// Routing stage of a run: from the training corpus to one token file per shard.
//
//   1. base model: loaded from routing.base_checkpoint, or trained for routing.base_steps dense
//      steps on all training documents (grid model, inner optimizer); saved as base.safetensors.
//      Skipped when neither routing nor warm start needs it (random routing, no warm start).
//   2. features: the base model's mean last hidden state over each document's first
//      routing.prefix_tokens tokens (routing/document_features.h).
//   3. the router (router.h) is fitted on the training documents: k-means / product k-means
//      (balanced option), a discriminative router on which path of routing.paths_from scores
//      each document best, or the random control; top2 sends a document to two paths.
//   4. shards: with several paths a path's documents are dealt at random among its
//      shards_per_path shards; with one path the router's clusters are the shards. Validation
//      documents go to their routed path, whole. With routing.reroute_every = W the
//      predictions of a validation document are cut into W-prediction segments, each routed
//      by the routing.prefix_tokens tokens before it (document_eval.h); the document goes to
//      every path one of its segments is routed to, and shards/val-<p>.predictions says which
//      of its predictions path p scores (each with the whole document before it as context).
//   5. shards/*.tok, router.safetensors, and routing.json last (its presence marks the stage as
//      done: a restarted run reuses the shards as they are).
//
// Errors say what to change: a path without documents, a shard smaller than one window.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "algo/grid_spec.h"
#include "data/token_file.h"
#include "run/document_eval.h"
#include "run/run_layout.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

struct ShardPlan {
  std::vector<uint64_t> shard_tokens;     // per shard id
  std::vector<uint64_t> shard_documents;  // per shard id
  // Per path (0 when no validation data). With re-routing: the tokens whose predictions the
  // path scores (scored_tokens), and the documents it scores at least one prediction of.
  std::vector<uint64_t> val_tokens;
  std::vector<uint64_t> val_documents;
  bool have_base = false;  // base.safetensors exists
};

// shards/val-<p>.predictions: which predictions of the documents of val-<p>.tok path p scores
// (written with routing.reroute_every > 0 only).
std::string val_predictions_file(const RunLayout& layout, uint32_t path_id);
// Reads it for `val_shard` (val-<p>.tok); an error that says what to do when it is missing.
Result<ScoredPredictions> read_val_predictions(const GridSpec& grid, const RunLayout& layout,
                                               uint32_t path_id, const TokenFile& val_shard);

// Documents whose prefixes the routing model reads per forward (its batch).
inline constexpr int kRoutingFeatureBatch = 16;

// `grid` must have its vocabulary resolved (model.vocab_size = the data's). Runs the stage, or
// reads its result when routing.json exists. Progress lines go to `out`. The base model, the
// routing features and the document scores are computed on `backend` (a run's GPU, or the CPU);
// it is used from the calling thread only.
Result<ShardPlan> prepare_shards(const GridSpec& grid, const RunLayout& layout, Backend* backend,
                                 FILE* out);
// The same on a CPU backend of `threads` threads.
Result<ShardPlan> prepare_shards(const GridSpec& grid, const RunLayout& layout, int threads,
                                 FILE* out);

}  // namespace dipaco
