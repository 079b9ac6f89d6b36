#include "data/tokenizer.h"

#include <optional>
#include <utility>

#include "util/atomic_file.h"
#include "util/progress.h"

namespace dipaco {
namespace {

// SentencePiece skips training sentences longer than its max_sentence_length; longer lines
// are cut at spaces into pieces below this many bytes.
constexpr size_t kMaxSentenceBytes = 4096;

// Hands the documents' lines to the trainer one by one, without a temporary file.
class DocumentSentences {
 public:
  DocumentSentences(const std::vector<Document>& documents, bool show_progress)
      : documents_(documents) {
    if (show_progress) progress_.emplace("tokenizer input", documents.size(), "docs");
  }

  // The next non-blank piece of text: a line, or a part of a long line. False at the end.
  bool next(std::string_view* sentence) {
    while (true) {
      if (doc_ >= documents_.size()) {
        if (progress_) progress_->finish();
        return false;
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
        // Never split a UTF-8 sequence.
        while (end > pos_ + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
        next = end;
      }
      std::string_view piece(text.data() + pos_, end - pos_);
      pos_ = next;
      if (piece.find_first_not_of(" \t\r") != std::string_view::npos) {
        *sentence = piece;
        return true;
      }
    }
  }

 private:
  const std::vector<Document>& documents_;
  size_t doc_ = 0;
  size_t pos_ = 0;
  std::optional<Progress> progress_;
};

// "Vocabulary size too high (20000). Please set it to a value <= 15000." → "15000".
std::string suggested_vocab(const std::string& message) {
  size_t at = message.find("<= ");
  if (at == std::string::npos) return {};
  size_t begin = at + 3;
  size_t end = begin;
  while (end < message.size() && message[end] >= '0' && message[end] <= '9') ++end;
  return message.substr(begin, end - begin);
}

// "Vocabulary size is smaller than required_chars. 64 vs 276. ..." → "276".
std::string required_vocab(const std::string& message) {
  size_t at = message.find(" vs ");
  if (at == std::string::npos) return {};
  size_t begin = at + 4;
  size_t end = begin;
  while (end < message.size() && message[end] >= '0' && message[end] <= '9') ++end;
  return message.substr(begin, end - begin);
}

}  // namespace

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
  const std::vector<std::pair<std::string, std::string>> args = {
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
  auto serialized = train_sentencepiece(
      args, [&](std::string_view* sentence) { return sentences.next(sentence); }, options.seed);
  if (!serialized.is_ok()) {
    std::string message = serialized.status().message();
    // Drop SentencePiece's "Internal: ./src/x.cc(580) [condition] " prefix.
    if (size_t bracket = message.find("] "); bracket != std::string::npos) {
      message = message.substr(bracket + 2);
    }
    while (!message.empty() && (message.back() == '.' || message.back() == ' ')) {
      message.pop_back();
    }
    std::string hint;
    if (message.find("too high") != std::string::npos) {
      std::string max = suggested_vocab(message);
      hint = "; try --vocab-size " + (max.empty() ? std::string("smaller") : max + " or less") +
             ", or a larger corpus";
    } else if (message.find("smaller than required_chars") != std::string::npos) {
      std::string min = required_vocab(message);
      message = "vocab size " + std::to_string(options.vocab_size) +
                " cannot hold the 256 byte-fallback pieces, every character of the corpus and "
                "the special pieces" +
                (min.empty() ? std::string() : " (" + min + " in all)");
      hint = "; try --vocab-size " + (min.empty() ? std::string("larger") : min + " or more");
    }
    return Status(serialized.status().code(),
                  corpus_name + ": tokenizer training failed: " + message + hint);
  }
  return from_serialized(std::move(serialized).value(), corpus_name);
}

Result<Tokenizer> Tokenizer::from_serialized(std::string serialized, const std::string& name) {
  auto model = SentencePieceModel::from_bytes(std::move(serialized));
  if (!model.is_ok()) {
    return Status(model.status().code(),
                  name + ": not a usable SentencePiece model: " + model.status().message());
  }
  if (model->unk_id() != kUnkId || model->bos_id() != kBosId || model->eos_id() != kEosId) {
    return invalid_argument(name + ": special ids are unk=" + std::to_string(model->unk_id()) +
                            " bos=" + std::to_string(model->bos_id()) + " eos=" +
                            std::to_string(model->eos_id()) + "; dipaco needs unk=0 bos=1 eos=2");
  }
  return Tokenizer(std::move(model).value());
}

Result<Tokenizer> Tokenizer::load(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return from_serialized(std::move(bytes), path);
}

Status Tokenizer::save(const std::string& path) const {
  return write_file_atomically(path, serialized());
}

uint32_t Tokenizer::vocab_size() const {
  return static_cast<uint32_t>(model_.vocab_size());
}

Result<std::vector<uint32_t>> Tokenizer::encode(std::string_view text) const {
  DIPACO_ASSIGN_OR_RETURN(auto ids, model_.encode(text));
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

Result<std::string> Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::vector<int32_t> signed_ids(ids.begin(), ids.end());
  return model_.decode(signed_ids);
}

std::string Tokenizer::piece(uint32_t id) const {
  return model_.piece(static_cast<int>(id));
}

}  // namespace dipaco
