// IslandAllReduce: the one collective an island needs. An island is N backends in one process
// (N GPUs of a node, or N CPU replicas in tests) that train one path together, data parallel:
// each replica runs its share of a batch's rows, then the replicas' gradients are summed so
// that every replica applies the same update and the replicas stay bit-identical.
//
// Implementations: HostIslandAllReduce (tensor/island_host_all_reduce.h; any backends, through
// host memory, the reference) and the NCCL one in the CUDA plugin
// (backend/cuda/cuda_island_nccl.cc, made by create_island in backend/backend_factory.h).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

class IslandAllReduce {
 public:
  virtual ~IslandAllReduce() = default;

  // "host (4 replicas)", "nccl 2.28.3 (GPUs 0,1,2,3)"
  virtual std::string name() const = 0;
  // Replicas in the island.
  virtual int size() const = 0;

  // buffers[i] (size() of them) is a device buffer of `count` floats on replica i's backend.
  // Afterwards every buffer holds sum_i buffers[i], the same bits on every replica, and the
  // same bits again for the same inputs (a fixed summation order). Returns when the sums are
  // in place and visible to each backend's later ops. Work already queued on the backends is
  // waited for first. An error (a collective that failed) leaves the buffers undefined.
  virtual Status all_reduce_sum(const std::vector<float*>& buffers, size_t count) = 0;
};

}  // namespace dipaco
