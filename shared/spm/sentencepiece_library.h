// SentencePiece models for dipaco: training, loading, encode/decode, vocabulary inspection.
//
// All calls go through libdipaco_sentencepiece.so (spm_shim.h), loaded on first use with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): Debian's SentencePiece bundles protobuf 3.14 and would
// clash with gRPC's protobuf 3.21 in one symbol scope. The shim is looked up at
// $DIPACO_SENTENCEPIECE_SHIM, then <exe>/../lib/dipaco/, the install path, the build tree.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

struct dipaco_spm_model;

namespace dipaco {

class SentencePieceModel {
 public:
  // SentencePiece's piece types.
  enum class PieceType {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6
  };

  static Result<SentencePieceModel> from_bytes(std::string serialized);
  static Result<SentencePieceModel> load_file(const std::string& path);

  Result<std::vector<int32_t>> encode(std::string_view text) const;
  Result<std::string> decode(std::span<const int32_t> ids) const;

  int vocab_size() const;
  std::string piece(int id) const;
  float score(int id) const;
  PieceType piece_type(int id) const;
  int unk_id() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;
  int pad_id() const;

  // The model file's bytes (a serialized SentencePiece ModelProto).
  const std::string& serialized() const { return serialized_; }

 private:
  struct Deleter {
    void operator()(dipaco_spm_model* model) const;
  };
  std::string serialized_;
  std::unique_ptr<dipaco_spm_model, Deleter> model_;
};

// Yields the next training sentence into *sentence; false at the end.
using SentenceSource = std::function<bool(std::string_view* sentence)>;

// Trains a model from `sentences` with SentencePiece trainer options given as key/value pairs
// (e.g. {"vocab_size","8192"},{"model_type","bpe"}); `seed` seeds SentencePiece's random
// generator so that training is deterministic. Returns the serialized model.
Result<std::string> train_sentencepiece(
    const std::vector<std::pair<std::string, std::string>>& options,
    const SentenceSource& sentences, uint32_t seed);

// Loads the shim now; ok when SentencePiece is usable in this process. Exposed for `doctor`.
Status sentencepiece_available();

}  // namespace dipaco
