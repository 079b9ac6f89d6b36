// Random routing, the control for learned routing: documents go to shards by a seeded shuffle
// dealt round-robin, so shard sizes differ by at most one and the split ignores content.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/status.h"

namespace dipaco {

// n shard ids in [0, shards). Errors when shards == 0.
Result<std::vector<int32_t>> random_routing(size_t n, size_t shards, uint64_t seed);

}  // namespace dipaco
