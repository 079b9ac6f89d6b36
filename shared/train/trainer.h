// Trainer: one model, one AdamW, one schedule. A step draws grad_accum micro-batches, adds up
// their gradients, clips the global norm and applies AdamW. Deterministic: the same seed,
// config, data and thread count give bit-identical losses, also across a checkpoint/resume.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "train/batch_source.h"
#include "util/status.h"

namespace dipaco {

struct TrainOptions {
  int batch_size = 8;
  int seq_len = 256;
  int grad_accum = 1;  // micro-batches per optimizer step
  int64_t steps = 1000;
  int64_t warmup_steps = 100;
  double lr = 3e-4;
  double min_lr = 3e-5;
  double grad_clip = 1.0;  // global L2 norm; 0 = no clipping
  AdamWConfig adamw;
  uint64_t seed = 1;  // parameter init (the data order has its own seed)

  // Errors name the key as written in the [train] table: "train.seq_len 300 exceeds ...".
  Status validate(const ModelConfig& model) const;
};

struct StepStats {
  int64_t step = 0;      // the optimizer step just taken (1-based)
  double loss = 0;       // mean over the step's micro-batches
  double grad_norm = 0;  // before clipping
  double lr = 0;
  int64_t tokens = 0;  // input tokens consumed by this step
};

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> create(Backend* backend, const ModelConfig& model,
                                                 const TrainOptions& options);

  Model& model() { return *model_; }
  const Model& model() const { return *model_; }
  AdamW& optimizer() { return *adamw_; }
  const TrainOptions& options() const { return options_; }
  const LrSchedule& schedule() const { return schedule_; }
  // Optimizer steps completed.
  int64_t step() const { return adamw_->step_count(); }

  // One optimizer step. A non-finite loss or gradient norm stops before the update (the
  // parameters stay as they were) with an error saying so.
  Result<StepStats> train_step(BatchSource& source);
  // Mean loss over `batches` batches of `source` (no gradients; the model's activations are
  // reused).
  double evaluate(BatchSource& source, int batches);

  // Writes params, AdamW moments, step and the source's position (safetensors, atomically).
  // Refuses (and leaves `path` untouched) when the parameters are not finite.
  Status save_checkpoint(const std::string& path, const BatchSource& source) const;
  // Loads a checkpoint written for the same model config; validates every tensor's name, dtype
  // and shape before changing anything. Restores `source` to the saved position (when given).
  Status load_checkpoint(const std::string& path, BatchSource* source);

 private:
  Trainer(const ModelConfig& model, const TrainOptions& options);

  TrainOptions options_;
  LrSchedule schedule_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> adamw_;
  std::vector<int32_t> inputs_, targets_;
};

}  // namespace dipaco
