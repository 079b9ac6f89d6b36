// GridSpec: a DiPaCo (or DiLoCo) run as written in a grid TOML file — the model, the grid of
// modules, the inner and outer optimizers, compression, routing, data and evaluation.
//
// The grid. The model's blocks are split into levels; level l holds blocks [first, last] and
// has K_l alternative modules. The embedding belongs to the first level and the final norm +
// LM head to the last, so a module is one contiguous slice of the parameter buffer
// (ParamLayout::module_range). A path picks one module per level. Shared levels are combined
// as a mixed-radix number, level 0 most significant: with K_0 = K_1 = 2 the paths are
// (0,0) (0,1) (1,0) (1,1). A path-specific level has one module per path (its `modules` must
// be omitted or equal the number of paths); those modules are never shared with another path.
// Each path trains on `shards_per_path` shards (replicas, each with its own inner optimizer);
// DiLoCo with k replicas is one level, one module, shards_per_path = k.
//
// Module ids: levels in order, modules of a level in order (level 0 module 0 is id 0).
// Path ids: 0 .. paths-1 in the order above. Shard ids: path * shards_per_path + replica.
//
// Every key has a default; errors name the key ("outer.lr must be > 0, got -1").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "algo/module_aggregation.h"
#include "algo/outer_optimizer.h"
#include "compress/wire_dtype.h"
#include "model/model_config.h"
#include "model/param_layout.h"
#include "train/trainer.h"
#include "util/status.h"

namespace dipaco {

struct GridLevel {
  int first_block = 0;  // blocks = [first, last], inclusive
  int last_block = 0;
  int modules = 1;  // K; for a path-specific level, the number of paths
  bool path_specific = false;
};

enum class RoutingMethod { kKMeans, kProductKMeans, kDiscriminative, kRandom };
// "kmeans", "product_kmeans", "discriminative", "random" ("iid" is accepted for random).
const char* routing_method_name(RoutingMethod method);
Result<RoutingMethod> parse_routing_method(std::string_view name);

struct RoutingSpec {
  // Documents are routed to paths; with a single path they are routed to its shards instead
  // (DiLoCo with iid = random, or k-means shards). Several shards per path split the path's
  // documents at random.
  // kmeans: k = paths. product_kmeans: two shared levels with K modules each (K×K paths).
  // discriminative: a linear router trained on which path of `paths_from` scores a document
  // best. random: a seeded balanced split that ignores content (the control; "iid").
  RoutingMethod method = RoutingMethod::kKMeans;
  bool balanced = true;    // balanced k-means assignments (shards of at most ⌈n/k⌉)
  bool top2 = false;       // overlapping shards: each document trains its two nearest paths
  int prefix_tokens = 32;  // routing features: mean last hidden state over this many tokens
  int reroute_every = 0;   // evaluation: re-route every W tokens (0 = once per document)
  // The base model for features and warm start: "" = train one (base_steps dense steps on all
  // training documents, with the grid's model and inner optimizer), else a `dipaco train`
  // checkpoint file.
  std::string base_checkpoint;
  int64_t base_steps = 200;
  std::string paths_from;  // discriminative: a finished run directory whose paths score docs
  int label_tokens = 256;  // discriminative: tokens of each document scored per path
                           // (at most model.max_seq_len + 1 are used)
};

struct GridSpec {
  // [run]
  std::string name = "dipaco";
  std::string dir = "runs/dipaco";  // run directory: state, checkpoints, results
  uint64_t outer_steps = 10;
  uint32_t inner_steps = 50;  // H
  int workers = 2;            // local worker threads of `dipaco run`
  int threads = 0;            // CPU threads in all (split among the workers); 0 = all cores
  uint64_t seed = 1;          // parameter init, routing, dropping
  bool warm_start = true;     // modules start from the base model (else random init by seed)

  ModelConfig model;
  bool vocab_from_data = true;
  // [inner]: batch_size, seq_len, lr, schedule over outer_steps × H steps, AdamW, clipping.
  TrainOptions inner;
  // [outer]
  OuterOptimizerConfig outer;
  AggregationOptions aggregation;  // rescale_by_sqrt_paths, drop_fraction (seeded by `seed`)
  // [compression], for shared modules: a path-specific module travels as fp32 both ways, its
  // trained parameters up and whole versions down (run/module_wire.h).
  WireDtype dtype = WireDtype::kInt8;  // outer gradients, worker → coordinator
  bool error_feedback = true;
  // Module versions after version 0, coordinator → a worker that holds the previous version:
  // the quantized difference (module_delta.h); fp32 sends whole versions only.
  WireDtype downlink = WireDtype::kInt8;
  // [grid]
  std::vector<GridLevel> levels;  // default: one level over all blocks, one module
  int shards_per_path = 1;
  RoutingSpec routing;
  // [data]
  std::string train_tokens = "data/brown/tokens/train.tok";
  std::string val_tokens = "data/brown/tokens/val.tok";
  std::string tokenizer = "data/brown/tokenizer.model";
  uint64_t data_seed = 1;
  // [eval]
  int eval_every = 1;       // outer steps between evaluations (0 = only at the end)
  int eval_max_tokens = 0;  // cap on validation tokens per evaluation (0 = all)
  // Per-path early stopping by checkpoint selection: each path's final model is its version
  // with the best loss on its validation shard (else the last one).
  bool keep_best = true;

  // Derived from the grid.
  int num_paths() const;
  int num_modules() const;
  int num_shards() const { return num_paths() * shards_per_path; }
  // Clusters the router splits documents into: paths, or shards when there is one path.
  int routing_clusters() const { return num_paths() > 1 ? num_paths() : shards_per_path; }
  // Module ids of path p, in level order.
  std::vector<int> path_modules(int path) const;
  // Level and index of a module id.
  int module_level(int module_id) const;
  int module_index(int module_id) const;
  // The module's slice of the parameter buffer.
  ParamRange module_range(const ParamLayout& layout, int module_id) const;
  // Paths that use a module.
  int paths_using(int module_id) const;

  // Everything: keys, grid shape against the model, routing against the grid. Called by the
  // parser; call again after changing fields (the studio's designer does).
  Status validate() const;
  // The effective spec as TOML; parse_grid_spec(to_toml()) gives the same spec back.
  std::string to_toml() const;
};

// Parses grid TOML; `source` names it in errors ("grid.toml: grid.level[1].blocks ...").
Result<GridSpec> parse_grid_spec(const std::string& text, const std::string& source);
Result<GridSpec> load_grid_spec(const std::string& path);

}  // namespace dipaco
