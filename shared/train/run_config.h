// RunConfig: everything `dipaco train CONFIG.toml` needs, read from TOML. Defaults live in the
// structs (ModelConfig, TrainOptions, below) and nowhere else; every error names the key as
// "<table>.<key>". Tables: [model] [train] [data] [eval] [checkpoint] [log].
#pragma once

#include <cstdint>
#include <string>

#include "model/model_config.h"
#include "train/trainer.h"
#include "util/status.h"

namespace dipaco {

struct RunConfig {
  ModelConfig model;
  bool vocab_from_data = true;  // model.vocab_size = 0 (the default): the token file's vocab
  TrainOptions train;
  int threads = 0;  // train.threads: CPU threads, 0 = all cores
  std::string train_tokens = "data/brown/tokens/train.tok";  // data.train
  std::string val_tokens = "data/brown/tokens/val.tok";      // data.val ("" = no validation)
  uint64_t data_seed = 1;                                    // data.seed: batch order
  int64_t eval_every = 200;                   // eval.every (steps; 0 = only at the end)
  int eval_batches = 20;                      // eval.batches
  std::string checkpoint_dir = "runs/dense";  // checkpoint.dir
  int64_t checkpoint_every = 500;             // checkpoint.every (0 = only at the end)
  int64_t log_every = 10;                     // log.every

  // The full effective config as TOML (written next to the checkpoints).
  std::string to_toml() const;
};

// Parses TOML text; `source` names it in errors ("run.toml:3:5: ...").
Result<RunConfig> parse_run_config(const std::string& text, const std::string& source);
Result<RunConfig> load_run_config(const std::string& path);

}  // namespace dipaco
