#include "tensor/island_host_all_reduce.h"

#include <algorithm>

namespace dipaco {
namespace {
// 4 MiB of floats per chunk: big enough for full-speed copies, small enough to stay in cache
// for the adds on a CPU island.
constexpr size_t kChunkFloats = size_t{1} << 20;
}  // namespace

HostIslandAllReduce::HostIslandAllReduce(std::vector<Backend*> backends)
    : backends_(std::move(backends)) {}

std::string HostIslandAllReduce::name() const {
  return "host (" + std::to_string(backends_.size()) + " replicas)";
}

Status HostIslandAllReduce::all_reduce_sum(const std::vector<float*>& buffers, size_t count) {
  if (buffers.size() != backends_.size()) {
    return invalid_argument("island all-reduce: " + std::to_string(buffers.size()) +
                            " buffers for " + std::to_string(backends_.size()) + " replicas");
  }
  if (backends_.size() < 2 || count == 0) return Status::ok();
  const size_t chunk = std::min(count, kChunkFloats);
  sum_.resize(chunk);
  part_.resize(chunk);
  for (size_t offset = 0; offset < count; offset += chunk) {
    const size_t n = std::min(chunk, count - offset);
    backends_[0]->copy_to_host(sum_.data(), buffers[0] + offset, n * sizeof(float));
    for (size_t r = 1; r < backends_.size(); ++r) {
      backends_[r]->copy_to_host(part_.data(), buffers[r] + offset, n * sizeof(float));
      for (size_t i = 0; i < n; ++i) sum_[i] += part_[i];
    }
    for (size_t r = 0; r < backends_.size(); ++r)
      backends_[r]->copy_to_device(buffers[r] + offset, sum_.data(), n * sizeof(float));
  }
  return Status::ok();
}

}  // namespace dipaco
