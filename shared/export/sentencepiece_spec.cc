#include "export/sentencepiece_spec.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dipaco {

namespace {

// Protobuf wire types.
enum : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// One field of a message: its number, wire type and value (a varint, or the bytes of a
// length-delimited field; fixed-size fields are skipped by the reader).
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t varint = 0;
  std::string_view bytes;
};

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  // Reads the next field into *field; false at the end of the message or on malformed input
  // (then error() says why).
  bool next(Field* field) {
    if (pos_ == data_.size() || !error_.empty()) return false;
    uint64_t tag = 0;
    if (!varint(&tag)) return false;
    field->number = static_cast<uint32_t>(tag >> 3);
    field->wire_type = static_cast<uint32_t>(tag & 7);
    if (field->number == 0) return fail("field number 0");
    switch (field->wire_type) {
      case kVarint: return varint(&field->varint);
      case kFixed64: return skip(8);
      case kFixed32: return skip(4);
      case kLengthDelimited: {
        uint64_t length = 0;
        if (!varint(&length)) return false;
        if (length > data_.size() - pos_) return fail("a field runs past the end");
        field->bytes = data_.substr(pos_, length);
        pos_ += length;
        return true;
      }
      default: return fail("unsupported wire type " + std::to_string(field->wire_type));
    }
  }
  const std::string& error() const { return error_; }

 private:
  bool varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ == data_.size()) return fail("truncated varint");
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return fail("varint longer than 10 bytes");
  }
  bool skip(size_t n) {
    if (n > data_.size() - pos_) return fail("a field runs past the end");
    pos_ += n;
    return true;
  }
  bool fail(std::string why) {
    error_ = std::move(why);
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
  std::string error_;
};

// Calls on_field for every field of `message`; an error names `what`.
Status for_each_field(std::string_view message, const char* what,
                      const std::function<void(const Field&)>& on_field) {
  WireReader reader(message);
  Field field;
  while (reader.next(&field)) on_field(field);
  if (!reader.error().empty())
    return data_loss(std::string("the SentencePiece model is not a valid ModelProto (") + what +
                     ": " + reader.error() + ")");
  return Status::ok();
}

}  // namespace

const char* sentencepiece_model_type_name(SentencePieceSpec::ModelType type) {
  switch (type) {
    case SentencePieceSpec::ModelType::kUnigram: return "unigram";
    case SentencePieceSpec::ModelType::kBpe: return "bpe";
    case SentencePieceSpec::ModelType::kWord: return "word";
    case SentencePieceSpec::ModelType::kChar: return "char";
  }
  return "?";
}

Result<SentencePieceSpec> read_sentencepiece_spec(std::string_view model_proto) {
  SentencePieceSpec spec;
  uint64_t model_type = static_cast<uint64_t>(spec.model_type);
  // A message field given twice is merged, so each occurrence is read into the same spec.
  std::vector<std::string_view> trainer_specs, normalizer_specs;
  DIPACO_RETURN_IF_ERROR(for_each_field(model_proto, "ModelProto", [&](const Field& f) {
    if (f.wire_type != kLengthDelimited) return;
    if (f.number == 2) trainer_specs.push_back(f.bytes);
    if (f.number == 3) normalizer_specs.push_back(f.bytes);
  }));
  for (std::string_view trainer : trainer_specs) {
    DIPACO_RETURN_IF_ERROR(for_each_field(trainer, "TrainerSpec", [&](const Field& f) {
      if (f.wire_type != kVarint) return;
      if (f.number == 3) model_type = f.varint;
      if (f.number == 24) spec.treat_whitespace_as_suffix = f.varint != 0;
    }));
  }
  for (std::string_view normalizer : normalizer_specs) {
    DIPACO_RETURN_IF_ERROR(for_each_field(normalizer, "NormalizerSpec", [&](const Field& f) {
      if (f.number == 2 && f.wire_type == kLengthDelimited)
        spec.precompiled_charsmap.assign(f.bytes);
      if (f.wire_type != kVarint) return;
      if (f.number == 3) spec.add_dummy_prefix = f.varint != 0;
      if (f.number == 4) spec.remove_extra_whitespaces = f.varint != 0;
      if (f.number == 5) spec.escape_whitespaces = f.varint != 0;
    }));
  }
  if (model_type < 1 || model_type > 4)
    return invalid_argument("the SentencePiece model has model type " + std::to_string(model_type) +
                            ", not one of unigram (1), bpe (2), word (3), char (4)");
  spec.model_type = static_cast<SentencePieceSpec::ModelType>(model_type);
  return spec;
}

}  // namespace dipaco
