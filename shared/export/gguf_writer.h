// GGUF files (the llama.cpp model format, version 3) for dipaco's Llama models.
//
// File layout (little-endian; spec: ggml's docs/gguf.md):
//   "GGUF", u32 version = 3, u64 tensor_count, u64 metadata_kv_count
//   metadata: { string key, u32 value_type, value }*      strings are u64 length + bytes
//   tensor infos: { string name, u32 n_dims, u64 ne[n_dims] (fastest-varying first),
//                   u32 ggml_type, u64 offset (from the start of the data section) }*
//   padding to general.alignment (32), then each tensor's data, each padded to 32.
//
// write_gguf_llama() writes architecture "llama": the hyperparameters under llama.*, the
// SentencePiece vocabulary (pieces, scores, token types) under tokenizer.ggml.*, and tensors
// under llama.cpp's names (token_embd, blk.N.attn_q, ..., output). llama.cpp's llama rotates
// adjacent pairs (GPT-J style, "NORM" rope) while dipaco — like HF — rotates the two halves of
// each head (cpu_rope.cc), so the rows of attn_q and attn_k are permuted within each head:
// GGUF row 2i+j = dipaco row j*hd/2+i (the permutation of llama.cpp's HF converter).
// Norm gains are always F32; a q8_0 matrix whose rows are not a multiple of 32 falls back to F16.
//
// The tokenizer type follows the SentencePiece model (sentencepiece_spec.h):
//   bpe      tokenizer.ggml.model = "llama": llama.cpp's SPM tokenizer, merges by piece score.
//   unigram  "t5": llama.cpp's UGM tokenizer, Viterbi over piece scores, with the model's
//            precompiled_charsmap (u8 array; absent when empty), add_space_prefix and
//            remove_extra_whitespaces. llama.cpp's UGM has no byte fallback: a character
//            outside the vocabulary ("\n" in dipaco's models, which train on single lines)
//            becomes one <unk> there, where SentencePiece gives byte pieces (<0x0A>).
//   word, char  refused: llama.cpp has no tokenizer for them.
#pragma once

#include <string>
#include <vector>

#include "model/model_config.h"
#include "spm/sentencepiece_library.h"
#include "util/status.h"

namespace dipaco {

enum class GgufType { kF32, kF16, kBF16, kQ8_0 };

// "f32", "f16", "bf16", "q8_0" and back.
const char* gguf_type_name(GgufType type);
Result<GgufType> parse_gguf_type(const std::string& name);

// The GGUF row order of a q or k projection [n_heads * hd, C] given in dipaco's (HF's) order.
std::vector<float> permute_rope_rows_for_gguf(const float* w, int n_heads, int head_dim, int cols);

// Writes `path` atomically. `name` goes to general.name. Fails, writing nothing, when llama.cpp
// cannot tokenize like `tokenizer` (a word or char model, unescaped or suffix whitespace).
Status write_gguf_llama(const std::string& path, const ModelConfig& config,
                        const std::vector<float>& params, const SentencePieceModel& tokenizer,
                        GgufType type, const std::string& name);

}  // namespace dipaco
