// Module versions as quantized deltas on the downlink (compress/quantized_delta.h): the file the
// coordinator writes beside each version k ≥ 1, and its checks on the worker's side.
//
//   modules/m<id>/delta-v<k>.safetensors
//     tensor "payload" U8 [encoded_size(dtype, n)]: decode(payload) = θ_k − θ_{k−1}
//     metadata format "dipaco-module-delta/1", module_id, version (k; the base is k−1), dtype,
//              num_params, base_sha256 (the file of θ_{k−1}), target_sha256 (the file of θ_k,
//              as the coordinator recorded it), target_params_sha256 (θ_k's float bytes)
//
// A worker holding θ_{k−1} (checked against base_sha256 where it knows its file's hash) rebuilds
// θ_k and checks the result against target_params_sha256: a garbled or mismatched delta is
// refused (kDataLoss) and the worker fetches the whole version instead.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compress/wire_dtype.h"
#include "util/status.h"

namespace dipaco {

struct ModuleDelta {
  uint32_t module_id = 0;
  uint64_t version = 0;  // the version it builds; its base is version − 1
  WireDtype dtype = WireDtype::kInt8;
  uint64_t num_params = 0;
  std::string base_sha256;           // hex
  std::string target_sha256;         // hex
  std::string target_params_sha256;  // hex
  std::vector<uint8_t> payload;
};

// Writes the delta atomically (temp + fsync + rename).
Status write_module_delta(const std::string& path, const ModuleDelta& delta);
// Reads a delta file and checks it is version `version` of `module_id` with `num_params` values
// and a payload of encoded_size(dtype, num_params) bytes.
Result<ModuleDelta> read_module_delta(const std::string& path, uint32_t module_id, uint64_t version,
                                      uint64_t num_params);

// θ_k from θ_{k−1}; kDataLoss when the payload does not decode or the result does not hash to
// target_params_sha256.
Result<std::vector<float>> rebuild_module_version(const ModuleDelta& delta,
                                                  std::span<const float> base);

// sha256 (hex) of the values' bytes in memory order (little-endian floats).
std::string params_sha256_hex(std::span<const float> params);

// How many deltas in a row cost fewer bytes than the whole version (4n): a worker further
// behind fetches the whole version. 0 for fp32.
uint64_t max_delta_chain(WireDtype dtype, uint64_t num_params);

}  // namespace dipaco
