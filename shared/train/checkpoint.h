// Training checkpoints as safetensors: every parameter under its Hugging Face name (so the
// file also loads as plain Llama weights), the AdamW moments as "optimizer.m.<name>" and
// "optimizer.v.<name>", all F32; __metadata__ holds format, model config, step and the data
// loader position. Written atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/param_layout.h"
#include "util/status.h"

namespace dipaco {

constexpr const char* kCheckpointFormat = "dipaco-checkpoint/1";

struct CheckpointState {
  ModelConfig config;
  int64_t step = 0;
  std::string data_position;
  std::vector<float> params, m, v;  // layout order, ParamLayout::total() floats each
};

Status write_checkpoint(const std::string& path, const ParamLayout& layout,
                        const CheckpointState& state);

// Reads and validates a checkpoint for a model of config `expected`: a different config, a
// missing tensor, another dtype or shape are errors that say what differs.
Result<CheckpointState> read_checkpoint(const std::string& path, const ModelConfig& expected);

}  // namespace dipaco
