// HostIslandAllReduce: the island all-reduce through host memory, for any backends (the CPU
// replicas of tests and demos; the reference the NCCL island is tested against).
#pragma once

#include <vector>

#include "tensor/backend.h"
#include "tensor/island_all_reduce.h"

namespace dipaco {

class HostIslandAllReduce final : public IslandAllReduce {
 public:
  // backends[i] owns replica i's buffers; the backends outlive this object.
  explicit HostIslandAllReduce(std::vector<Backend*> backends);

  std::string name() const override;
  int size() const override { return static_cast<int>(backends_.size()); }

  // Sums in float in replica order, ((b0 + b1) + b2) + ..., chunk by chunk through two host
  // staging buffers, then copies the sum back to every replica.
  Status all_reduce_sum(const std::vector<float*>& buffers, size_t count) override;

 private:
  std::vector<Backend*> backends_;
  std::vector<float> sum_, part_;  // host staging, one chunk each
};

}  // namespace dipaco
