#include "spm/sentencepiece_library.h"

#include <dlfcn.h>

#include <mutex>

#include "spm/spm_shim.h"
#include "util/atomic_file.h"
#include "util/plugin_library.h"

#if defined(__SANITIZE_ADDRESS__)
#define DIPACO_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIPACO_UNDER_ASAN 1
#endif
#endif

namespace dipaco {
namespace {

struct ShimApi {
  decltype(&dipaco_spm_abi_version) abi_version = nullptr;
  decltype(&dipaco_spm_train) train = nullptr;
  decltype(&dipaco_spm_load) load = nullptr;
  decltype(&dipaco_spm_free_model) free_model = nullptr;
  decltype(&dipaco_spm_encode) encode = nullptr;
  decltype(&dipaco_spm_decode) decode = nullptr;
  decltype(&dipaco_spm_piece_count) piece_count = nullptr;
  decltype(&dipaco_spm_piece) piece = nullptr;
  decltype(&dipaco_spm_score) score = nullptr;
  decltype(&dipaco_spm_piece_type) piece_type = nullptr;
  decltype(&dipaco_spm_special_id) special_id = nullptr;
  decltype(&dipaco_spm_free_buffer) free_buffer = nullptr;
};

Result<const ShimApi*> shim() {
  static std::once_flag once;
  static ShimApi api;
  static Status load_status;
  std::call_once(once, [] {
    int flags = RTLD_NOW | RTLD_LOCAL;
#ifdef DIPACO_UNDER_ASAN
    // ASan refuses RTLD_DEEPBIND; without it SentencePiece is only safe where gRPC's protobuf
    // is not loaded.
    if (dlopen("libprotobuf.so.32", RTLD_LAZY | RTLD_NOLOAD) != nullptr) {
      load_status = failed_precondition(
          "SentencePiece cannot be used in an AddressSanitizer build of a binary that also loads "
          "gRPC's protobuf (RTLD_DEEPBIND is incompatible with ASan)");
      return;
    }
#else
    flags |= RTLD_DEEPBIND;
#endif
    auto handle = load_plugin({"libdipaco_sentencepiece.so", "DIPACO_SENTENCEPIECE_SHIM",
                               DIPACO_SPM_SHIM_INSTALL_PATH, DIPACO_SPM_SHIM_BUILD_PATH},
                              flags);
    if (!handle.is_ok()) {
      load_status = handle.status();
      return;
    }
    bool ok = bind_plugin_symbol(*handle, "dipaco_spm_abi_version", &api.abi_version) &&
              bind_plugin_symbol(*handle, "dipaco_spm_train", &api.train) &&
              bind_plugin_symbol(*handle, "dipaco_spm_load", &api.load) &&
              bind_plugin_symbol(*handle, "dipaco_spm_free_model", &api.free_model) &&
              bind_plugin_symbol(*handle, "dipaco_spm_encode", &api.encode) &&
              bind_plugin_symbol(*handle, "dipaco_spm_decode", &api.decode) &&
              bind_plugin_symbol(*handle, "dipaco_spm_piece_count", &api.piece_count) &&
              bind_plugin_symbol(*handle, "dipaco_spm_piece", &api.piece) &&
              bind_plugin_symbol(*handle, "dipaco_spm_score", &api.score) &&
              bind_plugin_symbol(*handle, "dipaco_spm_piece_type", &api.piece_type) &&
              bind_plugin_symbol(*handle, "dipaco_spm_special_id", &api.special_id) &&
              bind_plugin_symbol(*handle, "dipaco_spm_free_buffer", &api.free_buffer);
    if (!ok || api.abi_version() != DIPACO_SPM_ABI_VERSION) {
      load_status = failed_precondition(
          "libdipaco_sentencepiece.so is from another dipaco version (ABI mismatch); reinstall");
    }
  });
  if (!load_status.is_ok()) return load_status;
  return &api;
}

// Takes ownership of a shim error message.
Status shim_error(const ShimApi* api, char* error, const std::string& what) {
  std::string message = what + ": " + (error != nullptr ? error : "unknown SentencePiece error");
  api->free_buffer(error);
  return invalid_argument(message);
}

}  // namespace

void SentencePieceModel::Deleter::operator()(dipaco_spm_model* model) const {
  auto api = shim();
  if (api.is_ok() && model != nullptr) (*api)->free_model(model);
}

Status sentencepiece_available() {
  return shim().status();
}

Result<SentencePieceModel> SentencePieceModel::from_bytes(std::string serialized) {
  DIPACO_ASSIGN_OR_RETURN(const ShimApi* api, shim());
  dipaco_spm_model* raw = nullptr;
  char* error = nullptr;
  if (api->load(serialized.data(), serialized.size(), &raw, &error) != 0) {
    return data_loss(shim_error(api, error, "not a valid SentencePiece model").message());
  }
  SentencePieceModel model;
  model.serialized_ = std::move(serialized);
  model.model_.reset(raw);
  return model;
}

Result<SentencePieceModel> SentencePieceModel::load_file(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  auto model = from_bytes(std::move(bytes));
  if (!model.is_ok()) return model.status().with_context(path);
  return model;
}

Result<std::vector<int32_t>> SentencePieceModel::encode(std::string_view text) const {
  DIPACO_ASSIGN_OR_RETURN(const ShimApi* api, shim());
  int32_t* ids = nullptr;
  size_t count = 0;
  char* error = nullptr;
  if (api->encode(model_.get(), text.data(), text.size(), &ids, &count, &error) != 0) {
    return shim_error(api, error, "encode failed");
  }
  std::vector<int32_t> out(ids, ids + count);
  api->free_buffer(ids);
  return out;
}

Result<std::string> SentencePieceModel::decode(std::span<const int32_t> ids) const {
  DIPACO_ASSIGN_OR_RETURN(const ShimApi* api, shim());
  char* text = nullptr;
  size_t size = 0;
  char* error = nullptr;
  if (api->decode(model_.get(), ids.data(), ids.size(), &text, &size, &error) != 0) {
    return shim_error(api, error, "decode failed");
  }
  std::string out(text, size);
  api->free_buffer(text);
  return out;
}

// A loaded model implies a loaded shim, so the accessors below can use it directly.
int SentencePieceModel::vocab_size() const {
  return (*shim())->piece_count(model_.get());
}
std::string SentencePieceModel::piece(int id) const {
  size_t size = 0;
  const char* data = (*shim())->piece(model_.get(), id, &size);
  return std::string(data, size);
}
float SentencePieceModel::score(int id) const {
  return (*shim())->score(model_.get(), id);
}
SentencePieceModel::PieceType SentencePieceModel::piece_type(int id) const {
  return static_cast<PieceType>((*shim())->piece_type(model_.get(), id));
}
int SentencePieceModel::unk_id() const {
  return (*shim())->special_id(model_.get(), 0);
}
int SentencePieceModel::bos_id() const {
  return (*shim())->special_id(model_.get(), 1);
}
int SentencePieceModel::eos_id() const {
  return (*shim())->special_id(model_.get(), 2);
}
int SentencePieceModel::pad_id() const {
  return (*shim())->special_id(model_.get(), 3);
}

Result<std::string> train_sentencepiece(
    const std::vector<std::pair<std::string, std::string>>& options,
    const SentenceSource& sentences, uint32_t seed) {
  DIPACO_ASSIGN_OR_RETURN(const ShimApi* api, shim());
  std::string flat;
  for (const auto& [key, value] : options) {
    if (key.find_first_of("=\n") != std::string::npos || value.find('\n') != std::string::npos) {
      return invalid_argument("bad SentencePiece option '" + key + "'");
    }
    flat += key + "=" + value + "\n";
  }
  struct Context {
    const SentenceSource* source;
    std::string_view current;
  } context{&sentences, {}};
  auto next = [](void* raw, const char** data, size_t* size) -> int {
    auto* c = static_cast<Context*>(raw);
    if (!(*c->source)(&c->current)) return 0;
    *data = c->current.data();
    *size = c->current.size();
    return 1;
  };
  char* bytes = nullptr;
  size_t size = 0;
  char* error = nullptr;
  if (api->train(flat.c_str(), seed, next, &context, &bytes, &size, &error) != 0) {
    return shim_error(api, error, "SentencePiece training failed");
  }
  std::string model(bytes, size);
  api->free_buffer(bytes);
  return model;
}

}  // namespace dipaco
