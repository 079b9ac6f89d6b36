// The outer gradient of one module for one round, from the reports of the paths that used it.
//
// What is computed, exactly. Let P be the reports kept this round (after optional dropping),
// Δ_p the outer gradient of path p for this module (given directly, or θ − θ_p from the
// path's parameters θ_p and the module's global parameters θ), and w_p > 0 its shard size
// (documents or tokens: any unit, only ratios matter):
//
//   Δ = s · Σ_{p∈P} (w_p / Σ_{q∈P} w_q) · Δ_p      with s = √(paths in P) when
//                                                  rescale_by_sqrt_paths, else s = 1.
//
// A path with several shards reports once per shard (ModuleReport::path names the path): its
// reports count once in s, so DiLoCo's single path over many shards keeps s = 1.
//
// The rescale follows DiPaCo: a module shared by many paths averages many outer gradients,
// and the mean of |P| weakly correlated vectors has a norm about 1/√|P| of each one's, so
// heavily shared modules would otherwise move less than path-specific ones. Multiplying the
// mean by √|P| multiplies its L2 norm by √|P| (it does not normalize it to a target norm).
// With one path, or DiLoCo's single module, s = 1 changes nothing when |P| = 1.
//
// Dropping (the DiLoCo robustness experiment): each report is dropped independently with
// probability drop_fraction; the decision depends only on (drop_seed, round, module, path
// id), not on the order or number of reports, so a rerun drops the same ones. The kept
// reports' weights are renormalized. When every report is dropped the result is Δ = 0 and
// kept == 0; the caller decides whether the outer optimizer steps (momentum) or skips.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"

namespace dipaco {

struct ModuleReport {
  enum class Kind { kParams, kOuterGrad };
  int64_t path_id = 0;  // unique per module per round; names the path in errors
  Kind kind = Kind::kOuterGrad;
  std::span<const float> values;  // θ_p (kParams) or Δ_p (kOuterGrad), one per module param
  double shard_size = 1.0;        // w_p > 0
  // The path behind the report when a path reports once per shard (path_id then names the
  // shard); -1: path_id is the path. The √ rescale counts paths, not reports.
  int64_t path = -1;
};

struct AggregationOptions {
  bool rescale_by_sqrt_paths = false;
  double drop_fraction = 0.0;  // in [0, 1)
  uint64_t drop_seed = 0;
};

struct AggregationSummary {
  size_t kept = 0;                  // |P| (reports)
  size_t kept_path_count = 0;       // distinct paths among them
  size_t dropped = 0;               // reports dropped this round
  double total_weight = 0;          // Σ w_p over P
  double scale = 1.0;               // s
  double outer_grad_norm = 0;       // ||Δ||_2 (after the rescale)
  std::vector<int64_t> kept_paths;  // path ids in P, in report order
};

// Writes the module's outer gradient into out (theta.size() values). round and module_id
// feed only the drop decision. Errors (kInvalidArgument) name the path: a report whose size
// differs from the module's, a non-positive or non-finite shard size, a non-finite value,
// a path reported twice, no reports at all, a drop fraction outside [0, 1).
Result<AggregationSummary> aggregate_outer_gradient(std::span<const float> theta,
                                                    std::span<const ModuleReport> reports,
                                                    const AggregationOptions& options,
                                                    uint64_t round, uint64_t module_id,
                                                    std::span<float> out);

// The drop decision on its own (true = dropped), for logging and tests.
bool outer_gradient_dropped(const AggregationOptions& options, uint64_t round, uint64_t module_id,
                            int64_t path_id);

}  // namespace dipaco
