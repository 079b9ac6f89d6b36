// Shared by the island tests (CPU here, NCCL in tests/cuda): a tiny model, options that clip,
// a batch source with uneven ignored targets, and the comparisons.
#pragma once

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "train/batch_source.h"
#include "train/trainer.h"

namespace dipaco::test {

inline ModelConfig island_model() {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 64;
  c.max_seq_len = 16;
  return c;
}

// batch 8 (splits across 1, 2, 4 and 8 replicas), 2 micro-batches per step, and a clip low
// enough that it scales every step's gradient.
inline TrainOptions island_options() {
  TrainOptions o;
  o.batch_size = 8;
  o.seq_len = 16;
  o.grad_accum = 2;
  o.steps = 10;
  o.warmup_steps = 2;
  o.lr = 3e-3;
  o.min_lr = 3e-4;
  o.grad_clip = 0.05;
  o.seed = 11;
  return o;
}

// SyntheticBatchSource with the targets of some positions ignored (-1), more in the first rows
// than in the last, so the replicas of an island count different numbers of positions.
class UnevenTargetsSource final : public BatchSource {
 public:
  UnevenTargetsSource(int batch, int seq_len, int vocab, uint64_t seed)
      : inner_(batch, seq_len, vocab, seed) {}
  int batch() const override { return inner_.batch(); }
  int seq_len() const override { return inner_.seq_len(); }
  void next(int32_t* inputs, int32_t* targets) override {
    inner_.next(inputs, targets);
    const int B = batch(), T = seq_len();
    for (int b = 0; b < B; ++b) {
      const int ignored = std::max(0, T / 2 - 2 * b);  // row 0: T/2 ignored, later rows fewer
      for (int t = 0; t < ignored; ++t) targets[b * T + t] = -1;
    }
  }
  std::string position() const override { return inner_.position(); }
  Status restore(const std::string& position) override { return inner_.restore(position); }

 private:
  SyntheticBatchSource inner_;
};

// max |a - b| / max |b|.
inline double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

struct TrainedRun {
  std::vector<StepStats> steps;
  std::vector<float> params;
};

// Trains `trainer` for its options' steps on `source`; fails the test on an error.
inline TrainedRun train_all_steps(Trainer& trainer, BatchSource& source) {
  TrainedRun run;
  for (int64_t s = 0; s < trainer.options().steps; ++s) {
    auto stats = trainer.train_step(source);
    if (!stats.is_ok())
      qFatal("step %lld: %s", static_cast<long long>(s + 1), stats.status().message().c_str());
    run.steps.push_back(*stats);
  }
  run.params = trainer.model().get_params();
  return run;
}

}  // namespace dipaco::test
