// Hugging Face Llama model directories: what `transformers` loads as LlamaForCausalLM.
//
//   config.json             architecture, sizes, rope_theta, rms_norm_eps, bos/eos ids
//   model.safetensors       the parameters under the standard Llama names, F32, metadata
//                           {"format": "pt"}
//   generation_config.json  bos/eos ids and the context length
//   tokenizer.model         the SentencePiece model (when given)
//   tokenizer_config.json   LlamaTokenizer with its special pieces
//   special_tokens_map.json
//
// dipaco's ParamLayout already uses these names and shapes, and its RoPE is HF's half-split
// "rotate_half" layout (backend/cpu/cpu_rope.cc), so q_proj and k_proj are written unpermuted:
// the export is a byte copy of the weights. load_hf_export() reads such a directory back
// (F32, F16 or BF16 weights) so an export can warm-start dipaco.
#pragma once

#include <string>
#include <vector>

#include "model/model_config.h"
#include "spm/sentencepiece_library.h"
#include "util/status.h"

namespace dipaco {

// Writes the files above into the existing directory `dir`. `tokenizer` may be nullptr (no
// tokenizer files). params: ParamLayout order, ParamLayout(config).total() floats.
Status write_hf_llama_dir(const std::string& dir, const ModelConfig& config,
                          const std::vector<float>& params, const SentencePieceModel* tokenizer);

// config.json's text for `config` (bos/eos ids from tokenizer.h).
std::string hf_config_json(const ModelConfig& config);

struct HfExport {
  ModelConfig config;
  std::vector<float> params;  // ParamLayout order
};

// Reads config.json + model.safetensors of a Llama directory written by write_hf_llama_dir (or
// any LlamaForCausalLM checkpoint dipaco's model can represent: no biases, untied head, no rope
// scaling). Errors name the file and key or tensor.
Result<HfExport> load_hf_export(const std::string& dir);

// Parses a config.json's text into a ModelConfig; `source` names it in errors.
Result<ModelConfig> parse_hf_config(const std::string& text, const std::string& source);

}  // namespace dipaco
