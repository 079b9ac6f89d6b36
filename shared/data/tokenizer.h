// Tokenizer: a SentencePiece model (BPE or unigram) trained on a corpus or loaded from a file.
//
// Special ids, fixed for every model dipaco trains: unk = 0, bos = 1, eos = 2, no pad piece
// (pad_id = -1: token files are packed, never padded). byte_fallback is on, so any UTF-8 text
// encodes without unk. Normalization is NFKC, keeping whitespace as given (no collapsing), so
// paragraph breaks ("\n\n") survive encode → decode as byte pieces.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/document.h"
#include "spm/sentencepiece_library.h"
#include "util/status.h"

namespace dipaco {

constexpr int kUnkId = 0;
constexpr int kBosId = 1;
constexpr int kEosId = 2;

struct TokenizerOptions {
  int vocab_size = 8192;
  std::string model_type = "bpe";  // "bpe" or "unigram" (GGUF export: README, Export)
  uint32_t seed = 1234;            // SentencePiece's random generator
  int num_threads = 2;             // fixed, so training is deterministic everywhere
  double character_coverage = 0.9995;
  bool show_progress = true;
};

class Tokenizer {
 public:
  // Trains on the documents' text. `corpus_name` names the corpus in errors, e.g. a vocab size
  // the corpus cannot support ("data/brown: ... Vocabulary size too high (20000) ...; try
  // --vocab-size 15000 or less, or a larger corpus").
  static Result<Tokenizer> train(const std::vector<Document>& documents,
                                 const TokenizerOptions& options, const std::string& corpus_name);
  // Loads a .model file and checks that it uses dipaco's special ids.
  static Result<Tokenizer> load(const std::string& path);
  static Result<Tokenizer> from_serialized(std::string serialized, const std::string& name);

  // Writes the model (a SentencePiece ModelProto) atomically.
  Status save(const std::string& path) const;

  uint32_t vocab_size() const;
  Result<std::vector<uint32_t>> encode(std::string_view text) const;
  Result<std::string> decode(const std::vector<uint32_t>& ids) const;
  // The piece text of `id` ("▁the", "<0x0A>", "<s>").
  std::string piece(uint32_t id) const;
  // The serialized model: what save() writes; hashed into meta files.
  const std::string& serialized() const { return model_.serialized(); }

 private:
  explicit Tokenizer(SentencePieceModel model) : model_(std::move(model)) {}
  SentencePieceModel model_;
};

}  // namespace dipaco
