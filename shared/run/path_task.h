// One task of a DiPaCo run, on the worker's side: train path p on shard s for H inner steps
// starting from the path's modules at version k, and return each module's outer gradient
// Δ_m = θ_m(version k) − θ_m(after H steps), compressed with error feedback. Both are computed
// on the backend, where the trained parameters are (compress/backend_encoder.h): a GPU worker
// copies the encoded payload to the host, not the fp32 parameters. A path-specific module
// (TaskModule::send_params) returns its trained parameters θ_m(after H steps) in fp32 instead.
//
// The inner optimizer (AdamW) state, the data position and the error-feedback residuals of a
// (path, shard) carry over from one outer step to the next (PathTaskState); the learning-rate
// schedule's position comes from the task, outer step k x H (Trainer::set_schedule_position),
// so it continues across outer steps whichever worker trains them. A worker that has no state
// for a (path, shard) — another worker trained it before — starts a fresh state (AdamW from
// zero, data from a position derived from (data seed, shard, outer step)); one whose state is
// from an earlier outer step than the last continues from it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/backend_encoder.h"
#include "compress/wire_dtype.h"
#include "model/param_layout.h"
#include "tensor/backend.h"
#include "train/trainer.h"
#include "util/status.h"

namespace dipaco {

struct TaskModule {
  uint32_t module_id = 0;
  ParamRange range;                    // its slice of the parameter buffer
  std::vector<float> params;           // the version the task starts from (range.count values)
  WireDtype dtype = WireDtype::kFp32;  // how its outer gradient travels
  bool error_feedback = true;
  // Send the trained parameters θ_end themselves (fp32, dtype must be kFp32) instead of
  // θ_start − θ_end: a path-specific module, whose new version is exactly what its path trained.
  bool send_params = false;
};

struct PathTaskSpec {
  uint32_t path_id = 0;
  uint32_t shard_id = 0;
  uint64_t outer_step = 0;
  uint32_t inner_steps = 1;         // H
  std::vector<TaskModule> modules;  // together they cover the whole parameter buffer
  uint64_t data_seed = 1;
};

// What a worker keeps of a (path, shard) between tasks.
struct PathTaskState {
  int64_t outer_step = -1;  // the outer step of the task that wrote it; -1: none (or older file)
  int64_t adamw_step = 0;
  std::string data_position;                         // empty: start fresh
  std::vector<float> m, v;                           // empty: zero moments
  std::map<uint32_t, std::vector<float>> residuals;  // per module id
};

// Atomic safetensors; load checks sizes against the model.
Status save_path_task_state(const std::string& path, const PathTaskState& state);
Result<PathTaskState> load_path_task_state(const std::string& path, size_t num_params);

struct OuterGradientPayload {
  uint32_t module_id = 0;
  uint64_t num_params = 0;
  WireDtype dtype = WireDtype::kFp32;
  std::vector<uint8_t> payload;  // encoded_size(dtype, num_params) bytes: Δ, or θ (send_params)
};

struct PathTaskResult {
  std::vector<OuterGradientPayload> gradients;  // in spec.modules order
  double first_loss = 0, last_loss = 0, mean_loss = 0;
  int64_t inner_steps_done = 0;
  int64_t tokens = 0;
  double seconds = 0;
};

// Called after every inner step; returning false cancels the task (the lease was lost).
using InnerStepCallback = std::function<bool(int64_t inner_step, const StepStats& stats)>;

class PathTrainer {
 public:
  // `inner`: batch, seq_len, lr schedule (total steps = outer steps × H), AdamW, clipping.
  static Result<std::unique_ptr<PathTrainer>> create(Backend* backend, const ModelConfig& model,
                                                     const TrainOptions& inner);
  // The same on an island (Trainer::create_island): the path trains data parallel on
  // replicas.size() backends, the batch's rows split across them.
  static Result<std::unique_ptr<PathTrainer>> create_island(const std::vector<Backend*>& replicas,
                                                            IslandAllReduce* all_reduce,
                                                            const ModelConfig& model,
                                                            const TrainOptions& inner);

  const ModelConfig& model_config() const { return trainer_->model().config(); }
  size_t num_params() const { return trainer_->model().num_params(); }
  Model& model() { return trainer_->model(); }

  // Runs the task. `shard_tokens`: the shard's token file. On success `state` holds the state
  // to keep for the next outer step. Errors: modules that do not tile the buffer, a shard too
  // small for one window, a non-finite loss (the state is then left unchanged), cancellation
  // (kUnavailable "cancelled"), island replicas that drifted apart (a bug; kInternal).
  Result<PathTaskResult> run(const PathTaskSpec& spec, const std::string& shard_tokens,
                             PathTaskState* state, const InnerStepCallback& on_step = {});

 private:
  explicit PathTrainer(std::unique_ptr<Trainer> trainer) : trainer_(std::move(trainer)) {}
  // The module's encoder, made at its first task and reused while its size and dtype hold (its
  // buffers live on the backend: no allocation per task).
  Result<BackendEncoder*> encoder_for(const TaskModule& m);

  std::unique_ptr<Trainer> trainer_;
  std::map<uint32_t, std::unique_ptr<BackendEncoder>> encoders_;  // per module id
};

}  // namespace dipaco
