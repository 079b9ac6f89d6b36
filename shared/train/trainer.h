// Trainer: one model, one AdamW, one schedule. A step draws grad_accum micro-batches, adds up
// their gradients, clips the global norm and applies AdamW. Deterministic: the same seed,
// config, data and thread count give bit-identical losses, also across a checkpoint/resume.
//
// On an island (create_island: N backends and an IslandAllReduce over them, e.g. the GPUs of
// one node) the trainer is data parallel inside the path: N replicas of the model, same init,
// each micro-batch's rows split evenly across them (batch_size must be a multiple of N), the
// replicas' forward and backward at once (one thread each), gradients summed by the all-reduce
// and weighted so that the update is the one a single device makes on the full batch, clipping
// on the summed gradient, and the same AdamW step on every replica, so the replicas stay
// bit-identical. model() and optimizer() are replica 0; code that writes through them calls
// sync_replicas() before the next step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "tensor/island_all_reduce.h"
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
  // island_replicas: batch_size must split evenly across them.
  Status validate(const ModelConfig& model, int island_replicas = 1) const;
};

struct StepStats {
  int64_t step = 0;      // the optimizer step just taken (1-based)
  double loss = 0;       // mean over the step's micro-batches (and an island's replicas)
  double grad_norm = 0;  // before clipping
  double lr = 0;
  int64_t tokens = 0;  // input tokens consumed by this step
};

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> create(Backend* backend, const ModelConfig& model,
                                                 const TrainOptions& options);
  // A data-parallel trainer over replicas.size() backends (see the top of this file); with one
  // backend and no all-reduce it is create(replicas[0], ...). The backends and the all-reduce
  // outlive the trainer. Errors: a batch that does not split across the replicas (names
  // train.batch_size), an all-reduce of another size, a replica out of memory.
  static Result<std::unique_ptr<Trainer>> create_island(const std::vector<Backend*>& replicas,
                                                        IslandAllReduce* all_reduce,
                                                        const ModelConfig& model,
                                                        const TrainOptions& options);

  Model& model() { return *model_; }
  const Model& model() const { return *model_; }
  AdamW& optimizer() { return *adamw_; }
  const TrainOptions& options() const { return options_; }
  const LrSchedule& schedule() const { return schedule_; }
  // Optimizer steps completed.
  int64_t step() const { return adamw_->step_count(); }
  // Where the learning-rate schedule stands: `steps_done` steps of the whole run are behind, so
  // the next step takes the schedule's rate at steps_done + 1, whatever the AdamW step count
  // (which drives only AdamW's bias correction). By default the two are the same. A DiPaCo task
  // sets it from its outer step (outer_step x H), so a worker that picks up a path with a fresh
  // optimizer state continues the run's schedule instead of warming up again.
  void set_schedule_position(int64_t steps_done) { schedule_offset_ = steps_done - step(); }
  // 1 on one device, N on an island.
  int replicas() const { return 1 + static_cast<int>(other_replicas_.size()); }

  // Copies replica 0's parameters and AdamW state (moments, step) to the other replicas; a
  // no-op on one device. Call after writing through model() or optimizer().
  void sync_replicas();
  // The debug check that an island's replicas are still bit-identical: compares each replica's
  // parameter checksum (one reduction on its own device) with replica 0's and, where one
  // differs, the parameters themselves. An error names the first replica and parameter that
  // differ. Always ok on one device.
  Status check_replicas_in_sync() const;

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
  // The error for a non-finite loss at stats.step, before any update.
  static Status non_finite_loss(double loss, const StepStats& stats);
  // The gradient scale that clips the global norm to options_.grad_clip (1 when it is below).
  float clip_scale(double grad_norm) const;
  // The schedule's step of the next optimizer step, and its learning rate.
  int64_t next_schedule_step() const { return step() + 1 + schedule_offset_; }
  // The island's step and evaluation (trainer_island.cc).
  Result<StepStats> train_step_island(BatchSource& source);
  double evaluate_island(BatchSource& source, int batches);
  Model& replica_model(int i) { return i == 0 ? *model_ : *other_replicas_[i - 1].model; }
  AdamW& replica_adamw(int i) { return i == 0 ? *adamw_ : *other_replicas_[i - 1].adamw; }

  TrainOptions options_;
  LrSchedule schedule_;
  int64_t schedule_offset_ = 0;  // schedule step minus AdamW step (set_schedule_position)
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> adamw_;
  std::vector<int32_t> inputs_, targets_;
  // Island replicas 1..N-1 (none on one device); replica 0 is model_ and adamw_.
  struct Replica {
    std::unique_ptr<Model> model;
    std::unique_ptr<AdamW> adamw;
  };
  std::vector<Replica> other_replicas_;
  IslandAllReduce* all_reduce_ = nullptr;
};

}  // namespace dipaco
