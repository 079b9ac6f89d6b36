#include "run/module_delta.h"

#include <cstring>

#include "compress/quantized_delta.h"
#include "tensor/safetensors.h"
#include "util/sha256.h"

namespace dipaco {

namespace {

constexpr const char* kFormat = "dipaco-module-delta/1";

}  // namespace

Status write_module_delta(const std::string& path, const ModuleDelta& d) {
  if (d.payload.size() != encoded_size(d.dtype, d.num_params)) {
    return invalid_argument(path + ": delta payload of " + std::to_string(d.payload.size()) +
                            " bytes, " + wire_dtype_name(d.dtype) + " of " +
                            std::to_string(d.num_params) + " values takes " +
                            std::to_string(encoded_size(d.dtype, d.num_params)));
  }
  std::vector<SafetensorsWriteItem> items;
  if (!d.payload.empty()) {
    items.push_back({"payload",
                     "U8",
                     {static_cast<int64_t>(d.payload.size())},
                     d.payload.data(),
                     d.payload.size()});
  }
  return write_safetensors(path, items,
                           {{"format", kFormat},
                            {"module_id", std::to_string(d.module_id)},
                            {"version", std::to_string(d.version)},
                            {"dtype", wire_dtype_name(d.dtype)},
                            {"num_params", std::to_string(d.num_params)},
                            {"base_sha256", d.base_sha256},
                            {"target_sha256", d.target_sha256},
                            {"target_params_sha256", d.target_params_sha256}});
}

Result<ModuleDelta> read_module_delta(const std::string& path, uint32_t module_id, uint64_t version,
                                      uint64_t num_params) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  const auto& meta = f.metadata();
  auto text = [&](const std::string& key) -> std::string {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  if (text("format") != kFormat) return data_loss(path + ": not a dipaco module delta file");
  ModuleDelta d;
  DIPACO_ASSIGN_OR_RETURN(uint64_t id, f.metadata_uint("module_id"));
  DIPACO_ASSIGN_OR_RETURN(d.version, f.metadata_uint("version"));
  DIPACO_ASSIGN_OR_RETURN(d.num_params, f.metadata_uint("num_params"));
  if (id != module_id || d.version != version || d.num_params != num_params) {
    return data_loss(path + ": holds module " + std::to_string(id) + " version " +
                     std::to_string(d.version) + " of " + std::to_string(d.num_params) +
                     " values, expected module " + std::to_string(module_id) + " version " +
                     std::to_string(version) + " of " + std::to_string(num_params));
  }
  d.module_id = module_id;
  auto dtype = parse_wire_dtype(text("dtype"));
  if (!dtype.is_ok()) return data_loss(path + ": dtype: " + dtype.status().message());
  d.dtype = *dtype;
  d.base_sha256 = text("base_sha256");
  d.target_sha256 = text("target_sha256");
  d.target_params_sha256 = text("target_params_sha256");
  if (d.target_params_sha256.size() != 64)
    return data_loss(path + ": target_params_sha256 is missing or not a sha256");
  const size_t expected = encoded_size(d.dtype, num_params);
  const SafetensorsTensor* t = f.find("payload");
  const size_t bytes = t == nullptr ? 0 : t->bytes;
  if ((t != nullptr && t->dtype != "U8") || bytes != expected) {
    return data_loss(path + ": tensor 'payload' must be U8 [" + std::to_string(expected) + "] (" +
                     wire_dtype_name(d.dtype) + " of " + std::to_string(num_params) + " values)");
  }
  if (t != nullptr) d.payload.assign(f.data(*t), f.data(*t) + bytes);
  return d;
}

std::string params_sha256_hex(std::span<const float> params) {
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(params.data()),
                                     params.size() * sizeof(float)));
}

Result<std::vector<float>> rebuild_module_version(const ModuleDelta& d,
                                                  std::span<const float> base) {
  const std::string where =
      "module " + std::to_string(d.module_id) + " version " + std::to_string(d.version);
  if (base.size() != d.num_params) {
    return invalid_argument(where + ": the base version has " + std::to_string(base.size()) +
                            " values, the delta " + std::to_string(d.num_params));
  }
  std::vector<float> next;
  if (Status s = apply_quantized_delta(base, d.payload, d.dtype, &next); !s)
    return s.with_context(where + " delta");
  if (params_sha256_hex(next) != d.target_params_sha256) {
    return data_loss(where +
                     ": the version rebuilt from the delta does not hash to the "
                     "published one (garbled delta or wrong base); fetch it whole");
  }
  return next;
}

uint64_t max_delta_chain(WireDtype dtype, uint64_t num_params) {
  if (dtype == WireDtype::kFp32 || num_params == 0) return 0;
  const uint64_t whole = num_params * sizeof(float);
  const uint64_t delta = encoded_size(dtype, num_params);
  return (whole - 1) / delta;  // chains of this many deltas cost less than the whole version
}

}  // namespace dipaco
