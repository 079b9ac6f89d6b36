// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. Written atomically (temp file + fsync + rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // "F32", "BF16", "I32", ...
  std::vector<int64_t> shape;
  size_t offset = 0;  // bytes from the start of the data section (reading)
  size_t bytes = 0;
};

// One tensor to write: `data` points to `bytes` bytes on the host.
struct SafetensorsWriteItem {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

// Writes the tensors (in the given order) and metadata to `path` atomically: on any error the
// previous file at `path`, if any, is untouched.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                         const std::map<std::string, std::string>& metadata);

// A safetensors file read into memory and validated (offsets inside the file, sizes matching
// dtype x shape, no overlaps). Errors name the file and the tensor.
class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A metadata value that must be a decimal unsigned integer; errors (kDataLoss) name the file
  // and the key when it is missing or not a number.
  Result<uint64_t> metadata_uint(const std::string& key) const;
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const SafetensorsTensor* find(const std::string& name) const;
  // The tensor's bytes (valid while this object lives).
  const uint8_t* data(const SafetensorsTensor& t) const;

 private:
  std::string path_;
  std::string contents_;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
};

// Bytes per element of a safetensors dtype name, 0 if unknown.
size_t safetensors_dtype_size(const std::string& dtype);

}  // namespace dipaco
