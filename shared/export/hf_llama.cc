#include "export/hf_llama.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "compress/bf16.h"
#include "data/tokenizer.h"
#include "export/half.h"
#include "export/json_value.h"
#include "model/param_layout.h"
#include "tensor/safetensors.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace fs = std::filesystem;

namespace {

JsonValue num(double d) {
  return JsonValue::number(d);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string join(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

}  // namespace

std::string hf_config_json(const ModelConfig& c) {
  JsonValue j = JsonValue::object();
  j.set("architectures", JsonValue::array({JsonValue::string("LlamaForCausalLM")}));
  j.set("model_type", JsonValue::string("llama"));
  j.set("vocab_size", num(c.vocab_size));
  j.set("hidden_size", num(c.d_model));
  j.set("intermediate_size", num(c.d_ff));
  j.set("num_hidden_layers", num(c.n_layers));
  j.set("num_attention_heads", num(c.n_heads));
  j.set("num_key_value_heads", num(c.n_kv_heads));
  j.set("head_dim", num(c.head_dim()));
  j.set("max_position_embeddings", num(c.max_seq_len));
  j.set("rms_norm_eps", num(c.norm_eps));
  j.set("rope_theta", num(c.rope_theta));
  j.set("rope_scaling", JsonValue::null());
  j.set("hidden_act", JsonValue::string("silu"));
  j.set("attention_bias", JsonValue::boolean(false));
  j.set("attention_dropout", num(0.0));
  j.set("mlp_bias", JsonValue::boolean(false));
  j.set("tie_word_embeddings", JsonValue::boolean(false));
  j.set("pretraining_tp", num(1));
  j.set("initializer_range", num(0.02));
  j.set("bos_token_id", num(kBosId));
  j.set("eos_token_id", num(kEosId));
  j.set("use_cache", JsonValue::boolean(true));
  j.set("torch_dtype", JsonValue::string("float32"));
  return j.dump();
}

Status write_hf_llama_dir(const std::string& dir, const ModelConfig& config,
                          const std::vector<float>& params, const SentencePieceModel* tokenizer) {
  ParamLayout layout(config);
  if (params.size() != layout.total())
    return internal_error("write_hf_llama_dir: parameter count does not match the config");
  DIPACO_RETURN_IF_ERROR(write_file_atomically(join(dir, "config.json"), hf_config_json(config)));
  std::vector<SafetensorsWriteItem> items;
  for (const ParamTensor& t : layout.tensors())
    items.push_back({t.name, "F32", t.shape, params.data() + t.offset, t.numel * sizeof(float)});
  DIPACO_RETURN_IF_ERROR(
      write_safetensors(join(dir, "model.safetensors"), items, {{"format", "pt"}}));

  JsonValue gen = JsonValue::object();
  gen.set("bos_token_id", num(kBosId));
  gen.set("eos_token_id", num(kEosId));
  gen.set("max_length", num(config.max_seq_len));
  gen.set("do_sample", JsonValue::boolean(true));
  gen.set("temperature", num(0.8));
  gen.set("top_k", num(40));
  gen.set("top_p", num(0.95));
  DIPACO_RETURN_IF_ERROR(write_file_atomically(join(dir, "generation_config.json"), gen.dump()));

  if (tokenizer == nullptr) return Status::ok();
  DIPACO_RETURN_IF_ERROR(
      write_file_atomically(join(dir, "tokenizer.model"), tokenizer->serialized()));
  auto piece_or = [&](int id, const char* fallback) {
    return id >= 0 && id < tokenizer->vocab_size() ? tokenizer->piece(id) : std::string(fallback);
  };
  std::string bos = piece_or(tokenizer->bos_id(), "<s>");
  std::string eos = piece_or(tokenizer->eos_id(), "</s>");
  std::string unk = piece_or(tokenizer->unk_id(), "<unk>");
  JsonValue tc = JsonValue::object();
  tc.set("tokenizer_class", JsonValue::string("LlamaTokenizer"));
  tc.set("bos_token", JsonValue::string(bos));
  tc.set("eos_token", JsonValue::string(eos));
  tc.set("unk_token", JsonValue::string(unk));
  tc.set("pad_token", JsonValue::null());
  tc.set("add_bos_token", JsonValue::boolean(true));
  tc.set("add_eos_token", JsonValue::boolean(false));
  tc.set("model_max_length", num(config.max_seq_len));
  tc.set("clean_up_tokenization_spaces", JsonValue::boolean(false));
  // legacy: encode exactly as SentencePiece does (dipaco's own encoding, dummy prefix included).
  tc.set("legacy", JsonValue::boolean(true));
  tc.set("sp_model_kwargs", JsonValue::object());
  DIPACO_RETURN_IF_ERROR(write_file_atomically(join(dir, "tokenizer_config.json"), tc.dump()));
  JsonValue sm = JsonValue::object();
  sm.set("bos_token", JsonValue::string(bos));
  sm.set("eos_token", JsonValue::string(eos));
  sm.set("unk_token", JsonValue::string(unk));
  return write_file_atomically(join(dir, "special_tokens_map.json"), sm.dump());
}

Result<ModelConfig> parse_hf_config(const std::string& text, const std::string& source) {
  auto parsed = parse_json(text);
  if (!parsed.is_ok()) return parsed.status().with_context(source);
  const JsonValue& j = *parsed;
  auto err = [&](const std::string& key, const std::string& what) {
    return invalid_argument(source + ": " + key + ": " + what);
  };
  if (!j.is_object()) return err("(top level)", "expected an object");
  if (const JsonValue* mt = j.find("model_type"); mt == nullptr || mt->as_string() != "llama")
    return err("model_type", "expected \"llama\" (dipaco loads Llama models only)");
  auto get_int = [&](const char* key, int* out, bool required) -> Status {
    const JsonValue* v = j.find(key);
    if (v == nullptr || v->is_null()) {
      return required ? err(key, "missing") : Status::ok();
    }
    double d = v->as_number(NAN);
    if (!(d == std::floor(d)) || d < 0 || d > 2e9) return err(key, "expected an integer");
    *out = static_cast<int>(d);
    return Status::ok();
  };
  ModelConfig c;
  DIPACO_RETURN_IF_ERROR(get_int("vocab_size", &c.vocab_size, true));
  DIPACO_RETURN_IF_ERROR(get_int("hidden_size", &c.d_model, true));
  DIPACO_RETURN_IF_ERROR(get_int("intermediate_size", &c.d_ff, true));
  DIPACO_RETURN_IF_ERROR(get_int("num_hidden_layers", &c.n_layers, true));
  DIPACO_RETURN_IF_ERROR(get_int("num_attention_heads", &c.n_heads, true));
  c.n_kv_heads = c.n_heads;
  DIPACO_RETURN_IF_ERROR(get_int("num_key_value_heads", &c.n_kv_heads, false));
  DIPACO_RETURN_IF_ERROR(get_int("max_position_embeddings", &c.max_seq_len, true));
  int head_dim = 0;
  DIPACO_RETURN_IF_ERROR(get_int("head_dim", &head_dim, false));
  if (const JsonValue* v = j.find("rope_theta")) c.rope_theta = v->as_number(c.rope_theta);
  if (const JsonValue* v = j.find("rms_norm_eps")) c.norm_eps = v->as_number(c.norm_eps);
  if (const JsonValue* v = j.find("hidden_act"); v != nullptr && v->as_string() != "silu")
    return err("hidden_act", "\"" + v->as_string() + "\" is not supported (dipaco uses silu)");
  if (const JsonValue* v = j.find("tie_word_embeddings"); v != nullptr && v->as_bool())
    return err("tie_word_embeddings", "tied embeddings are not supported");
  if (const JsonValue* v = j.find("attention_bias"); v != nullptr && v->as_bool())
    return err("attention_bias", "attention biases are not supported");
  if (const JsonValue* v = j.find("mlp_bias"); v != nullptr && v->as_bool())
    return err("mlp_bias", "MLP biases are not supported");
  if (const JsonValue* v = j.find("rope_scaling"); v != nullptr && !v->is_null())
    return err("rope_scaling", "RoPE scaling is not supported");
  if (Status s = c.validate(); !s) return s.with_context(source);
  if (head_dim != 0 && head_dim != c.head_dim())
    return err("head_dim", std::to_string(head_dim) + " is not hidden_size / num_attention_heads");
  return c;
}

Result<HfExport> load_hf_export(const std::string& dir) {
  std::string config_file = join(dir, "config.json");
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(config_file));
  HfExport out;
  DIPACO_ASSIGN_OR_RETURN(out.config, parse_hf_config(text, config_file));
  std::string weights = join(dir, "model.safetensors");
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::open(weights));
  ParamLayout layout(out.config);
  out.params.resize(layout.total());
  for (const ParamTensor& t : layout.tensors()) {
    const SafetensorsTensor* s = st.find(t.name);
    if (s == nullptr)
      return data_loss(weights + ": tensor '" + t.name +
                       "' is missing (config.json: " + out.config.to_string() + ")");
    if (s->shape != t.shape)
      return data_loss(weights + ": tensor '" + t.name + "' has shape " + shape_string(s->shape) +
                       ", config.json implies " + shape_string(t.shape));
    float* dst = out.params.data() + t.offset;
    const uint8_t* src = st.data(*s);
    if (s->dtype == "F32") {
      std::memcpy(dst, src, t.numel * sizeof(float));
    } else if (s->dtype == "F16" || s->dtype == "BF16") {
      for (size_t i = 0; i < t.numel; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = s->dtype == "F16" ? f16_to_float(h) : bf16_to_float(h);
      }
    } else {
      return data_loss(weights + ": tensor '" + t.name + "' has dtype " + s->dtype +
                       "; dipaco reads F32, F16 and BF16");
    }
  }
  return out;
}

}  // namespace dipaco
