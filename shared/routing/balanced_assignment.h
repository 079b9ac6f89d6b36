// Capacity-limited assignment of points to clusters (the balanced option of k-means routing).
//
// Greedy by margin: each point's margin is the distance to its second-nearest centroid minus
// the distance to its nearest (how much it loses if it does not get its first choice). Points
// are served in decreasing margin (ties: lower index first); each takes the nearest cluster
// that still has room. With capacity ⌈n/k⌉ every point finds room, no cluster exceeds the
// capacity, and points that are clearly in one cluster keep it; points near a boundary absorb
// the imbalance. It is a heuristic (not the optimal transport assignment) but deterministic
// and O(n·k·log k + n·log n).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"

namespace dipaco {

// distances: n × k row-major (any non-negative cost, e.g. squared distances). Returns one
// cluster id in [0, k) per point with no cluster holding more than `capacity` points. Fails
// when k · capacity < n or the sizes disagree.
Result<std::vector<int32_t>> balanced_assignment(std::span<const float> distances, size_t n,
                                                 size_t k, size_t capacity);

// ⌈n / k⌉, the capacity the balanced option uses.
inline size_t balanced_capacity(size_t n, size_t k) {
  return k == 0 ? 0 : (n + k - 1) / k;
}

}  // namespace dipaco
