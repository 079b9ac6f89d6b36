// The end of a run, shared by `dipaco run` and `dipaco serve` (which finishes grid runs too):
// each path's kept model and validation result (PathEvaluator), and the files a finished run
// leaves — paths/path-<p>.safetensors, run.json (the export contract), summary.md.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "algo/grid_spec.h"
#include "backend/cpu/cpu_backend.h"
#include "data/token_file.h"
#include "model/model.h"
#include "run/document_eval.h"
#include "run/local_run.h"
#include "run/run_layout.h"
#include "run/shard_routing.h"
#include "util/status.h"

namespace dipaco {

// The whole model of a path at `version` (all its modules at that version).
Result<std::vector<float>> assemble_path(const GridSpec& grid, const RunLayout& layout,
                                         const ParamLayout& pl, int path, uint64_t version);

// Scores every path at a version on its validation shard (with re-routing, the predictions
// routed to it, in their whole documents: document_eval.h) and keeps each path's model — its best
// with eval.keep_best, else the latest — in paths/, with the validation result it was kept for
// in the file's metadata, so a resumed run (or a coordinator restart) continues from them.
class PathEvaluator {
 public:
  static constexpr int kBatch = 8;  // validation windows scored per forward

  PathEvaluator(const GridSpec& grid, const RunLayout& layout);
  // Opens the validation shards and reads back the models kept so far. The evaluations run on
  // `backend` (a run's GPU, or the CPU), from the calling thread; it must outlive the evaluator.
  Status init(Backend* backend);
  // The same on a CPU backend of `threads` threads, owned by the evaluator.
  Status init(int threads);
  // Evaluates every path at `version`; returns the routed sums of this version and sets
  // (*losses)[p] (NaN for a path without validation documents).
  Result<EvalSum> evaluate(uint64_t version, std::vector<double>* losses);

  const std::vector<double>& best() const { return best_; }  // per path
  const std::vector<EvalSum>& best_sum() const { return best_sum_; }
  const std::vector<uint64_t>& best_step() const { return best_step_; }

 private:
  const GridSpec& grid_;
  const RunLayout& layout_;
  ParamLayout pl_;
  std::unique_ptr<CpuBackend> own_backend_;  // init(threads) only
  std::unique_ptr<Model> model_;
  std::vector<std::unique_ptr<TokenFile>> val_;  // per path; null without validation documents
  // Per path, with re-routing: the predictions of val_[p] that path p scores.
  std::vector<std::optional<ScoredPredictions>> scored_;
  std::vector<double> best_;
  std::vector<EvalSum> best_sum_;
  std::vector<uint64_t> best_step_;
};

// Bytes a run's tasks moved, counted as they moved them (payload bytes, round_traffic.h).
struct MeasuredTraffic {
  uint64_t up = 0;
  uint64_t down = 0;
};

// Writes run.json and summary.md of a finished run (the kept models are already in paths/)
// and returns its summary. `last_train_loss` may be empty; `seconds` is the wall time to report.
// Traffic: `measured` when given (a run whose every task this process saw), else the estimate
// of round_traffic.h (first outer step whole, later ones as deltas); run.json says which.
Result<LocalRunResult> write_run_results(const GridSpec& grid, const RunLayout& layout,
                                         const ShardPlan& plan, const PathEvaluator& evaluator,
                                         const std::map<uint32_t, double>& last_train_loss,
                                         FILE* out, double seconds,
                                         const MeasuredTraffic* measured = nullptr);

}  // namespace dipaco
