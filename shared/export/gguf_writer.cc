#include "export/gguf_writer.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "compress/bf16.h"
#include "export/half.h"
#include "export/sentencepiece_spec.h"
#include "model/param_layout.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace {

// gguf_metadata_value_type
enum : uint32_t {
  kU8 = 0,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
};
// ggml_type
enum : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ8_0 = 8, kGgmlBF16 = 30 };
// llama_ftype (general.file_type)
uint32_t file_type(GgufType t) {
  switch (t) {
    case GgufType::kF32: return 0;
    case GgufType::kF16: return 1;
    case GgufType::kQ8_0: return 7;
    case GgufType::kBF16: return 32;
  }
  return 0;
}

constexpr size_t kAlignment = 32;
constexpr int kQ8Block = 32;

class Bytes {
 public:
  template <typename T>
  void pod(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&v);
    out_.append(p, sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    out_ += s;
  }
  void pad(size_t alignment) {
    while (out_.size() % alignment) out_ += '\0';
  }
  std::string& data() { return out_; }

 private:
  std::string out_;
};

struct Tensor {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] = columns (fastest varying)
  uint32_t type = kGgmlF32;
  std::string bytes;
};

class Metadata {
 public:
  void u32(const std::string& key, uint32_t v) {
    head(key, kU32);
    b_.pod(v);
  }
  void f32(const std::string& key, float v) {
    head(key, kF32);
    b_.pod(v);
  }
  void boolean(const std::string& key, bool v) {
    head(key, kBool);
    b_.pod<uint8_t>(v ? 1 : 0);
  }
  void str(const std::string& key, const std::string& v) {
    head(key, kString);
    b_.str(v);
  }
  void str_array(const std::string& key, const std::vector<std::string>& v) {
    head(key, kArray);
    b_.pod<uint32_t>(kString);
    b_.pod<uint64_t>(v.size());
    for (const auto& s : v) b_.str(s);
  }
  void f32_array(const std::string& key, const std::vector<float>& v) {
    head(key, kArray);
    b_.pod<uint32_t>(kF32);
    b_.pod<uint64_t>(v.size());
    for (float f : v) b_.pod(f);
  }
  void u8_array(const std::string& key, const std::string& bytes) {
    head(key, kArray);
    b_.pod<uint32_t>(kU8);
    b_.pod<uint64_t>(bytes.size());
    b_.data() += bytes;
  }
  void i32_array(const std::string& key, const std::vector<int32_t>& v) {
    head(key, kArray);
    b_.pod<uint32_t>(kI32);
    b_.pod<uint64_t>(v.size());
    for (int32_t i : v) b_.pod(i);
  }
  uint64_t count() const { return count_; }
  std::string& bytes() { return b_.data(); }

 private:
  void head(const std::string& key, uint32_t type) {
    b_.str(key);
    b_.pod(type);
    ++count_;
  }
  Bytes b_;
  uint64_t count_ = 0;
};

std::string encode(const float* x, size_t rows, size_t cols, GgufType type, uint32_t* ggml_type) {
  std::string out;
  auto put16 = [&](uint16_t h) { out.append(reinterpret_cast<const char*>(&h), 2); };
  const size_t n = rows * cols;
  if (type == GgufType::kQ8_0 && cols % kQ8Block != 0) type = GgufType::kF16;
  switch (type) {
    case GgufType::kF32:
      *ggml_type = kGgmlF32;
      out.assign(reinterpret_cast<const char*>(x), n * sizeof(float));
      break;
    case GgufType::kF16:
      *ggml_type = kGgmlF16;
      for (size_t i = 0; i < n; ++i) put16(float_to_f16(x[i]));
      break;
    case GgufType::kBF16:
      *ggml_type = kGgmlBF16;
      for (size_t i = 0; i < n; ++i) put16(float_to_bf16(x[i]));
      break;
    case GgufType::kQ8_0:
      // block_q8_0 { f16 d; int8 qs[32]; }: x ~ d * q, d = max|x| / 127.
      *ggml_type = kGgmlQ8_0;
      for (size_t b = 0; b < n; b += kQ8Block) {
        float amax = 0;
        for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[b + j]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        put16(float_to_f16(d));
        for (int j = 0; j < kQ8Block; ++j)
          out += static_cast<char>(static_cast<int8_t>(std::lround(x[b + j] * id)));
      }
      break;
  }
  return out;
}

// llama.cpp tokenizes SentencePiece BPE with its "llama" tokenizer (bigram merges by score) and
// unigram with its "t5" tokenizer (Viterbi over piece scores); it has nothing for word or char
// models, and its GGUF keys cannot say that spaces stay unescaped or trail the piece.
Status check_llama_cpp_can_tokenize(const SentencePieceSpec& spec) {
  const std::string type = sentencepiece_model_type_name(spec.model_type);
  if (spec.model_type != SentencePieceSpec::ModelType::kBpe &&
      spec.model_type != SentencePieceSpec::ModelType::kUnigram)
    return invalid_argument("GGUF export: the tokenizer is a SentencePiece '" + type +
                            "' model, which llama.cpp cannot tokenize (it reads SentencePiece "
                            "bpe and unigram models only); export the Hugging Face directory "
                            "alone with --format hf, or use a bpe or unigram tokenizer");
  const char* unsupported = !spec.escape_whitespaces          ? "escape_whitespaces = false"
                            : spec.treat_whitespace_as_suffix ? "treat_whitespace_as_suffix = true"
                                                              : nullptr;
  if (unsupported != nullptr)
    return invalid_argument(std::string("GGUF export: the tokenizer sets ") + unsupported +
                            ", which llama.cpp's GGUF tokenizer metadata cannot express; "
                            "export the Hugging Face directory alone with --format hf");
  return Status::ok();
}

// tokenizer.ggml.*: the vocabulary with SentencePiece's scores and piece types (the same numbers
// as llama_token_type), the special ids and the normalizer. For a unigram model ("t5") llama.cpp
// also applies the precompiled normalization rules and reads remove_extra_whitespaces; its
// "llama" tokenizer uses neither, so BPE exports do not carry them.
void add_tokenizer(Metadata& md, const SentencePieceModel& tok, const SentencePieceSpec& spec) {
  const bool unigram = spec.model_type == SentencePieceSpec::ModelType::kUnigram;
  md.str("tokenizer.ggml.model", unigram ? "t5" : "llama");
  const int n = tok.vocab_size();
  std::vector<std::string> pieces(n);
  std::vector<float> scores(n);
  std::vector<int32_t> types(n);
  for (int i = 0; i < n; ++i) {
    pieces[i] = tok.piece(i);
    scores[i] = tok.score(i);
    types[i] = static_cast<int32_t>(tok.piece_type(i));
  }
  md.str_array("tokenizer.ggml.tokens", pieces);
  md.f32_array("tokenizer.ggml.scores", scores);
  md.i32_array("tokenizer.ggml.token_type", types);
  if (tok.bos_id() >= 0) md.u32("tokenizer.ggml.bos_token_id", tok.bos_id());
  if (tok.eos_id() >= 0) md.u32("tokenizer.ggml.eos_token_id", tok.eos_id());
  if (tok.unk_id() >= 0) md.u32("tokenizer.ggml.unknown_token_id", tok.unk_id());
  if (tok.pad_id() >= 0) md.u32("tokenizer.ggml.padding_token_id", tok.pad_id());
  md.boolean("tokenizer.ggml.add_space_prefix", spec.add_dummy_prefix);
  if (unigram) {
    md.boolean("tokenizer.ggml.remove_extra_whitespaces", spec.remove_extra_whitespaces);
    // Absent means no normalization (llama.cpp's converter omits an empty charsmap too).
    if (!spec.precompiled_charsmap.empty())
      md.u8_array("tokenizer.ggml.precompiled_charsmap", spec.precompiled_charsmap);
  }
  // dipaco's token files hold <s> document </s>: a prompt starts with <s> and stays open. Both
  // keys are written because llama.cpp's "t5" default is the opposite (no <s>, adds </s>).
  md.boolean("tokenizer.ggml.add_bos_token", true);
  md.boolean("tokenizer.ggml.add_eos_token", false);
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kF32: return "f32";
    case GgufType::kF16: return "f16";
    case GgufType::kBF16: return "bf16";
    case GgufType::kQ8_0: return "q8_0";
  }
  return "?";
}

Result<GgufType> parse_gguf_type(const std::string& name) {
  for (GgufType t : {GgufType::kF32, GgufType::kF16, GgufType::kBF16, GgufType::kQ8_0})
    if (name == gguf_type_name(t)) return t;
  return invalid_argument("unknown GGUF tensor type '" + name + "' (f32, f16, bf16 or q8_0)");
}

std::vector<float> permute_rope_rows_for_gguf(const float* w, int n_heads, int head_dim, int cols) {
  std::vector<float> out(static_cast<size_t>(n_heads) * head_dim * cols);
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        const float* src = w + (static_cast<size_t>(h) * head_dim + j * half + i) * cols;
        float* dst = out.data() + (static_cast<size_t>(h) * head_dim + 2 * i + j) * cols;
        std::memcpy(dst, src, cols * sizeof(float));
      }
    }
  }
  return out;
}

Status write_gguf_llama(const std::string& path, const ModelConfig& c,
                        const std::vector<float>& params, const SentencePieceModel& tok,
                        GgufType type, const std::string& name) {
  ParamLayout layout(c);
  if (params.size() != layout.total())
    return internal_error("write_gguf_llama: parameter count does not match the config");
  if (tok.vocab_size() != c.vocab_size)
    return invalid_argument("the tokenizer has " + std::to_string(tok.vocab_size()) +
                            " pieces but the model's vocab_size is " +
                            std::to_string(c.vocab_size) + "; export with the run's tokenizer");
  DIPACO_ASSIGN_OR_RETURN(SentencePieceSpec spec, read_sentencepiece_spec(tok.serialized()));
  DIPACO_RETURN_IF_ERROR(check_llama_cpp_can_tokenize(spec));

  Metadata md;
  md.str("general.architecture", "llama");
  md.str("general.name", name);
  md.u32("general.file_type", file_type(type));
  md.u32("general.quantization_version", 2);
  md.u32("general.alignment", kAlignment);
  md.u32("llama.vocab_size", c.vocab_size);
  md.u32("llama.context_length", c.max_seq_len);
  md.u32("llama.embedding_length", c.d_model);
  md.u32("llama.block_count", c.n_layers);
  md.u32("llama.feed_forward_length", c.d_ff);
  md.u32("llama.rope.dimension_count", c.head_dim());
  md.u32("llama.attention.head_count", c.n_heads);
  md.u32("llama.attention.head_count_kv", c.n_kv_heads);
  md.f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps));
  md.f32("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  add_tokenizer(md, tok, spec);

  std::vector<Tensor> tensors;
  auto add = [&](std::string gguf_name, const float* x, int64_t rows, int64_t cols) {
    Tensor t;
    t.name = std::move(gguf_name);
    if (rows == 1) {
      t.ne = {static_cast<uint64_t>(cols)};
      t.bytes = encode(x, 1, cols, GgufType::kF32, &t.type);
    } else {
      t.ne = {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
      t.bytes = encode(x, rows, cols, type, &t.type);
    }
    tensors.push_back(std::move(t));
  };
  const float* p = params.data();
  const int64_t C = c.d_model, F = c.d_ff, V = c.vocab_size, hd = c.head_dim();
  const int64_t H = c.n_heads, KVH = c.n_kv_heads;
  add("token_embd.weight", p + layout.embedding(), V, C);
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockOffsets& b = layout.block(i);
    const std::string blk = "blk." + std::to_string(i) + ".";
    add(blk + "attn_norm.weight", p + b.attn_norm, 1, C);
    auto q = permute_rope_rows_for_gguf(p + b.wqkv, c.n_heads, c.head_dim(), c.d_model);
    auto k =
        permute_rope_rows_for_gguf(p + b.wqkv + H * hd * C, c.n_kv_heads, c.head_dim(), c.d_model);
    add(blk + "attn_q.weight", q.data(), H * hd, C);
    add(blk + "attn_k.weight", k.data(), KVH * hd, C);
    add(blk + "attn_v.weight", p + b.wqkv + (H + KVH) * hd * C, KVH * hd, C);
    add(blk + "attn_output.weight", p + b.wo, C, H * hd);
    add(blk + "ffn_norm.weight", p + b.mlp_norm, 1, C);
    add(blk + "ffn_gate.weight", p + b.w13, F, C);
    add(blk + "ffn_up.weight", p + b.w13 + F * C, F, C);
    add(blk + "ffn_down.weight", p + b.w_down, C, F);
  }
  add("output_norm.weight", p + layout.final_norm(), 1, C);
  add("output.weight", p + layout.lm_head(), V, C);

  Bytes head;
  head.data() = "GGUF";
  head.pod<uint32_t>(3);
  head.pod<uint64_t>(tensors.size());
  head.pod<uint64_t>(md.count());
  head.data() += md.bytes();
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    head.str(t.name);
    head.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) head.pod(d);
    head.pod(t.type);
    head.pod(offset);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  head.pad(kAlignment);
  DIPACO_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  DIPACO_RETURN_IF_ERROR(file.write(head.data()));
  static const char kZeros[kAlignment] = {};
  for (const Tensor& t : tensors) {
    DIPACO_RETURN_IF_ERROR(file.write(t.bytes));
    size_t padding = (kAlignment - t.bytes.size() % kAlignment) % kAlignment;
    DIPACO_RETURN_IF_ERROR(file.write(kZeros, padding));
  }
  return file.commit();
}

}  // namespace dipaco
