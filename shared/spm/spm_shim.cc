// libdipaco_sentencepiece.so: SentencePiece behind a C interface (see spm_shim.h for why).
#include "spm/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

struct dipaco_spm_model {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

char* copy_out(const std::string& text) {
  char* buffer = static_cast<char*>(std::malloc(text.size() + 1));
  if (buffer != nullptr) {
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
  }
  return buffer;
}

int fail(char** error, const std::string& message) {
  if (error != nullptr) *error = copy_out(message);
  return 1;
}

class CallbackSentences : public sentencepiece::SentenceIterator {
 public:
  CallbackSentences(dipaco_spm_next_sentence next, void* context) : next_(next), context_(context) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override {
    const char* data = nullptr;
    size_t size = 0;
    if (next_(context_, &data, &size) != 0) {
      value_.assign(data, size);
    } else {
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  dipaco_spm_next_sentence next_;
  void* context_;
  std::string value_;
  bool done_ = false;
};

}  // namespace

extern "C" {

int dipaco_spm_abi_version(void) {
  return DIPACO_SPM_ABI_VERSION;
}

int dipaco_spm_train(const char* options, uint32_t seed, dipaco_spm_next_sentence next,
                     void* context, char** model_bytes, size_t* model_size, char** error) {
  sentencepiece::SetRandomGeneratorSeed(seed);
  std::unordered_map<std::string, std::string> kwargs;
  std::istringstream lines(options == nullptr ? "" : options);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) return fail(error, "bad trainer option '" + line + "'");
    kwargs[line.substr(0, eq)] = line.substr(eq + 1);
  }
  CallbackSentences sentences(next, context);
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &sentences, &serialized);
  if (!status.ok()) return fail(error, status.ToString());
  *model_size = serialized.size();
  *model_bytes = static_cast<char*>(std::malloc(serialized.size() == 0 ? 1 : serialized.size()));
  if (*model_bytes == nullptr) return fail(error, "out of memory");
  std::memcpy(*model_bytes, serialized.data(), serialized.size());
  return 0;
}

int dipaco_spm_load(const char* model_bytes, size_t model_size, dipaco_spm_model** model,
                    char** error) {
  auto* loaded = new dipaco_spm_model;
  auto status = loaded->processor.LoadFromSerializedProto(std::string(model_bytes, model_size));
  if (!status.ok()) {
    delete loaded;
    return fail(error, status.ToString());
  }
  *model = loaded;
  return 0;
}

void dipaco_spm_free_model(dipaco_spm_model* model) {
  delete model;
}

int dipaco_spm_encode(const dipaco_spm_model* model, const char* text, size_t size, int32_t** ids,
                      size_t* count, char** error) {
  std::vector<int> pieces;
  auto status = model->processor.Encode(std::string(text, size), &pieces);
  if (!status.ok()) return fail(error, status.ToString());
  *count = pieces.size();
  *ids = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (pieces.empty() ? 1 : pieces.size())));
  if (*ids == nullptr) return fail(error, "out of memory");
  for (size_t i = 0; i < pieces.size(); ++i) (*ids)[i] = pieces[i];
  return 0;
}

int dipaco_spm_decode(const dipaco_spm_model* model, const int32_t* ids, size_t count, char** text,
                      size_t* size, char** error) {
  std::vector<int> pieces(ids, ids + count);
  const int n = model->processor.GetPieceSize();
  for (int id : pieces) {
    if (id < 0 || id >= n) {
      return fail(error, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(n) + ")");
    }
  }
  std::string decoded;
  auto status = model->processor.Decode(pieces, &decoded);
  if (!status.ok()) return fail(error, status.ToString());
  *size = decoded.size();
  *text = copy_out(decoded);
  if (*text == nullptr) return fail(error, "out of memory");
  return 0;
}

int dipaco_spm_piece_count(const dipaco_spm_model* model) {
  return model->processor.GetPieceSize();
}

const char* dipaco_spm_piece(const dipaco_spm_model* model, int id, size_t* size) {
  const std::string& piece = model->processor.IdToPiece(id);
  *size = piece.size();
  return piece.data();
}

float dipaco_spm_score(const dipaco_spm_model* model, int id) {
  return model->processor.GetScore(id);
}

int dipaco_spm_piece_type(const dipaco_spm_model* model, int id) {
  const auto& p = model->processor;
  if (p.IsUnknown(id)) return 2;
  if (p.IsControl(id)) return 3;
  if (p.IsUnused(id)) return 5;
  if (p.IsByte(id)) return 6;
  return 1;  // SentencePiece does not expose user-defined separately; they count as normal
}

int dipaco_spm_special_id(const dipaco_spm_model* model, int which) {
  const auto& p = model->processor;
  switch (which) {
    case 0: return p.unk_id();
    case 1: return p.bos_id();
    case 2: return p.eos_id();
    case 3: return p.pad_id();
    default: return -1;
  }
}

void dipaco_spm_free_buffer(void* buffer) {
  std::free(buffer);
}

}  // extern "C"
