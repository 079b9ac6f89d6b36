#include "routing/random_routing.h"

#include <numeric>

#include "data/shuffle.h"

namespace dipaco {

Result<std::vector<int32_t>> random_routing(size_t n, size_t shards, uint64_t seed) {
  if (shards == 0) return invalid_argument("random routing needs at least 1 shard");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  deterministic_shuffle(order, mix_seed(seed, 0x72616e646f6dULL));  // "random"
  std::vector<int32_t> out(n);
  for (size_t r = 0; r < n; ++r) out[order[r]] = static_cast<int32_t>(r % shards);
  return out;
}

}  // namespace dipaco
