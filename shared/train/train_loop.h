// run_training: the whole `dipaco train` run. Opens the token files, builds the model (CPU
// backend), resumes from CHECKPOINT_DIR/checkpoint.safetensors when it exists, trains with
// periodic logging, validation and checkpoints, and leaves a final checkpoint.
//
// Failure behaviour: a checkpoint that does not fit this config is an error before anything is
// written; a NaN/Inf loss stops the run with a message, and the last good checkpoint stays.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

#include "train/run_config.h"
#include "util/status.h"

namespace dipaco {

struct TrainLoopOptions {
  bool fresh = false;  // ignore an existing checkpoint (it is overwritten at the next save)
  FILE* out = stdout;  // progress and results
  // When set (e.g. by a SIGINT handler), the run stops after the current step, saves a
  // checkpoint and returns with TrainLoopResult::interrupted.
  const std::atomic<bool>* stop = nullptr;
  // A Hugging Face Llama directory (e.g. a path of 'dipaco export', export/hf_llama.h) whose
  // weights start the run when it does not resume from a checkpoint: a warm start. Its
  // config.json must describe the run's model.
  std::string init_from;
};

struct TrainLoopResult {
  int64_t step = 0;
  double train_loss = 0;  // mean of the last logging window
  double val_loss = 0;    // NaN when there is no validation file
  double tokens_per_second = 0;
  std::string checkpoint_path;
  bool interrupted = false;
};

Result<TrainLoopResult> run_training(const RunConfig& config, const TrainLoopOptions& options);

}  // namespace dipaco
