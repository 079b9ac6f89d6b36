#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <optional>
#include <unordered_map>

#include "util/atomic_file.h"
#include "util/progress.h"

namespace dipaco {
namespace {

// SentencePiece skips training sentences longer than this many bytes; longer lines are cut
// at spaces into pieces below it.
constexpr size_t kMaxSentenceBytes = 4096;

// Feeds the documents' lines to the trainer without a temporary file.
class DocumentSentences : public sentencepiece::SentenceIterator {
 public:
  DocumentSentences(const std::vector<Document>& documents, bool show_progress)
      : documents_(documents) {
    if (show_progress) progress_.emplace("tokenizer input", documents.size(), "docs");
    advance();
  }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  // Moves to the next non-empty piece of text: a line, or a part of a long line.
  void advance() {
    while (true) {
      if (doc_ >= documents_.size()) {
        done_ = true;
        if (progress_) progress_->finish();
        return;
      }
      const std::string& text = documents_[doc_].text;
      if (pos_ >= text.size()) {
        ++doc_;
        pos_ = 0;
        if (progress_) progress_->update(doc_);
        continue;
      }
      size_t end = text.find('\n', pos_);
      if (end == std::string::npos) end = text.size();
      size_t next = end + 1;
      if (end - pos_ > kMaxSentenceBytes) {
        size_t cut = text.rfind(' ', pos_ + kMaxSentenceBytes);
        end = (cut == std::string::npos || cut <= pos_) ? pos_ + kMaxSentenceBytes : cut;
        // Do not split a UTF-8 sequence.
        while (end > pos_ + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
        next = end;
      }
      value_.assign(text, pos_, end - pos_);
      pos_ = next;
      if (value_.find_first_not_of(" \t\r") != std::string::npos) return;
    }
  }

  const std::vector<Document>& documents_;
  size_t doc_ = 0;
  size_t pos_ = 0;
  std::string value_;
  bool done_ = false;
  std::optional<Progress> progress_;
};

// "Vocabulary size is too high (20000). Please set it to a value <= 15000." → "15000".
std::string suggested_vocab(const std::string& message) {
  size_t at = message.find("<= ");
  if (at == std::string::npos) return {};
  size_t begin = at + 3;
  size_t end = begin;
  while (end < message.size() && message[end] >= '0' && message[end] <= '9') ++end;
  return message.substr(begin, end - begin);
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Result<Tokenizer> Tokenizer::train(const std::vector<Document>& documents,
                                   const TokenizerOptions& options,
                                   const std::string& corpus_name) {
  if (options.model_type != "bpe" && options.model_type != "unigram") {
    return invalid_argument("model type '" + options.model_type + "' (expected bpe or unigram)");
  }
  if (documents.empty()) return invalid_argument(corpus_name + ": corpus has no documents");
  if (options.vocab_size < 8) {
    return invalid_argument("vocab size " + std::to_string(options.vocab_size) +
                            " is too small (at least 8)");
  }
  sentencepiece::SetRandomGeneratorSeed(options.seed);
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"byte_fallback", "true"},
      {"unk_id", std::to_string(kUnkId)},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", std::to_string(kEosId)},
      {"pad_id", "-1"},
      {"num_threads", std::to_string(options.num_threads)},
      {"normalization_rule_name", "nfkc"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes + 64)},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "1"},
  };
  DocumentSentences sentences(documents, options.show_progress);
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &serialized);
  if (!status.ok()) {
    std::string message = status.message();
    std::string hint;
    if (message.find("Vocabulary size") != std::string::npos) {
      std::string max = suggested_vocab(message);
      hint = "; try --vocab-size " + (max.empty() ? std::string("smaller") : max + " or less") +
             ", or a larger corpus";
    }
    return invalid_argument(corpus_name + ": tokenizer training failed: " + message + hint);
  }
  return from_serialized(std::move(serialized), corpus_name);
}

Result<Tokenizer> Tokenizer::from_serialized(std::string serialized, const std::string& name) {
  Tokenizer tokenizer;
  tokenizer.processor_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = tokenizer.processor_->LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    return data_loss(name + ": not a SentencePiece model: " + std::string(status.message()));
  }
  const auto& p = *tokenizer.processor_;
  if (p.unk_id() != kUnkId || p.bos_id() != kBosId || p.eos_id() != kEosId) {
    return invalid_argument(name + ": special ids are unk=" + std::to_string(p.unk_id()) + " bos=" +
                            std::to_string(p.bos_id()) + " eos=" + std::to_string(p.eos_id()) +
                            "; dipaco needs unk=0 bos=1 eos=2");
  }
  tokenizer.serialized_ = std::move(serialized);
  return tokenizer;
}

Result<Tokenizer> Tokenizer::load(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return from_serialized(std::move(bytes), path);
}

Status Tokenizer::save(const std::string& path) const {
  return write_file_atomically(path, serialized_);
}

uint32_t Tokenizer::vocab_size() const {
  return static_cast<uint32_t>(processor_->GetPieceSize());
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = processor_->Encode(text, &ids);
  assert(status.ok());
  (void)status;
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::vector<int> signed_ids(ids.begin(), ids.end());
  std::string text;
  auto status = processor_->Decode(signed_ids, &text);
  (void)status;
  return text;
}

std::string Tokenizer::piece(uint32_t id) const {
  return processor_->IdToPiece(static_cast<int>(id));
}

}  // namespace dipaco
