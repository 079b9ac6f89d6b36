// The parts of a SentencePiece model file that decide how text is tokenized, beyond the
// vocabulary itself: the segmentation algorithm (TrainerSpec.model_type) and the normalizer
// (NormalizerSpec). GGUF export needs them to pick and configure llama.cpp's tokenizer.
//
// Read from the serialized ModelProto (protobuf wire format, sentencepiece_model.proto):
//   ModelProto      { pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3
//   } TrainerSpec     { ModelType model_type = 3 [UNIGRAM]; bool treat_whitespace_as_suffix = 24 }
//   NormalizerSpec  { bytes precompiled_charsmap = 2; bool add_dummy_prefix = 3 [true];
//                     bool remove_extra_whitespaces = 4 [true]; bool escape_whitespaces = 5 [true]
//                     }
// An absent field keeps its proto2 default (in brackets); other fields are skipped.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

struct SentencePieceSpec {
  // TrainerSpec.ModelType, same numbers.
  enum class ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

  ModelType model_type = ModelType::kUnigram;
  // The normalization rules compiled by SentencePiece's trainer (a double-array trie and the
  // replacement strings); empty for the "identity" normalizer.
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;          // prepend one space (U+2581) to the text
  bool remove_extra_whitespaces = true;  // drop leading/trailing spaces, collapse runs
  bool escape_whitespaces = true;        // spaces become U+2581
  bool treat_whitespace_as_suffix = false;
};

// "unigram", "bpe", "word", "char".
const char* sentencepiece_model_type_name(SentencePieceSpec::ModelType type);

// Fails on bytes that are not a well-formed ModelProto (truncated, bad wire type) or on a model
// type outside 1..4.
Result<SentencePieceSpec> read_sentencepiece_spec(std::string_view model_proto);

}  // namespace dipaco
