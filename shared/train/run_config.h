// RunConfig: everything `dipaco train CONFIG.toml` needs, read from TOML. Defaults live in the
// structs (ModelConfig, TrainOptions, below) and nowhere else; every error names the key as
// "<table>.<key>". Tables: [model] [train] [data] [eval] [checkpoint] [log].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "train/trainer.h"
#include "util/status.h"
#include "util/toml_table.h"

namespace dipaco {

struct RunConfig {
  ModelConfig model;
  bool vocab_from_data = true;  // model.vocab_size = 0 (the default): the token file's vocab
  TrainOptions train;
  int threads = 0;  // train.threads: CPU threads, 0 = all cores
  // train.backend: "auto" (a GPU when this host has a usable one, else the CPU), "cpu",
  // "cuda" or "cuda:N"; train.precision: the GPU's matmul precision, "bf16" | "tf32" | "fp32".
  std::string backend = "auto";
  std::string precision = "bf16";
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

// The [model] keys, shared with grid files: vocab_size (0 = the data's vocabulary) goes to
// *vocab and n_kv_heads (0 = n_heads) to *kv_heads for the caller to resolve.
std::vector<TomlKey> model_toml_keys(ModelConfig* m, int* vocab, int* kv_heads);
// The inner-optimizer keys of [train], shared with a grid's [inner]: batch_size, seq_len,
// grad_accum, warmup_steps, lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip.
std::vector<TomlKey> optimizer_toml_keys(TrainOptions* t);

// Parses TOML text; `source` names it in errors ("run.toml:3:5: ...").
Result<RunConfig> parse_run_config(const std::string& text, const std::string& source);
Result<RunConfig> load_run_config(const std::string& path);

}  // namespace dipaco
