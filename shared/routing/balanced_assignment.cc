#include "routing/balanced_assignment.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace dipaco {

Result<std::vector<int32_t>> balanced_assignment(std::span<const float> distances, size_t n,
                                                 size_t k, size_t capacity) {
  if (k == 0 || distances.size() != n * k) {
    return invalid_argument("balanced assignment: " + std::to_string(distances.size()) +
                            " distances for " + std::to_string(n) + " points and " +
                            std::to_string(k) + " clusters");
  }
  if (capacity == 0 || (n + capacity - 1) / capacity > k) {
    return invalid_argument("balanced assignment: " + std::to_string(k) + " clusters of at most " +
                            std::to_string(capacity) + " cannot hold " + std::to_string(n) +
                            " points");
  }
  // Each point's clusters, nearest first, and its margin.
  std::vector<int32_t> order(n * k);
  std::vector<float> margin(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    const float* d = distances.data() + i * k;
    int32_t* o = order.data() + i * k;
    std::iota(o, o + k, 0);
    std::stable_sort(o, o + k, [d](int32_t a, int32_t b) { return d[a] < d[b]; });
    if (k > 1) margin[i] = d[o[1]] - d[o[0]];
  }
  std::vector<size_t> points(n);
  std::iota(points.begin(), points.end(), size_t{0});
  std::stable_sort(points.begin(), points.end(),
                   [&margin](size_t a, size_t b) { return margin[a] > margin[b]; });
  std::vector<size_t> load(k, 0);
  std::vector<int32_t> assignment(n, -1);
  for (size_t i : points) {
    const int32_t* o = order.data() + i * k;
    for (size_t r = 0; r < k; ++r) {
      if (load[o[r]] < capacity) {
        assignment[i] = o[r];
        ++load[o[r]];
        break;
      }
    }
  }
  return assignment;
}

}  // namespace dipaco
