// Product k-means (DiPaCo): the feature vector is split into two halves, [0, d1) and [d1, d),
// d1 = ⌊d/2⌋; one k-means with K clusters is fitted per half, and a document whose halves fall
// in clusters i and j goes to shard i·K + j, giving K×K shards from two K-means (a 2-level
// grid with K modules per level: level 1 follows i, level 2 follows j).
//
// Because the halves use disjoint coordinates, the distance to "product centroid" (i, j) is
// dist₁(i) + dist₂(j), so the nearest product centroid is (nearest i, nearest j) and the
// second nearest is the better of (second i, nearest j) and (nearest i, second j).
// The balanced option balances each half's K clusters (≤ ⌈n/K⌉ each); the K² shards are then
// only as balanced as the two halves are independent.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "routing/kmeans.h"

namespace dipaco {

struct ProductKMeansModel {
  size_t k = 0;        // K clusters per half; shards = K·K
  size_t d_first = 0;  // d1 = ⌊d/2⌋ features in the first half
  KMeansModel first;   // over columns [0, d1)
  KMeansModel second;  // over columns [d1, d)

  size_t shards() const { return k * k; }
  size_t d() const { return first.d + second.d; }
  int32_t shard(const float* x) const;                       // i·K + j for one d-vector
  std::array<int32_t, 2> nearest_two(const float* x) const;  // two nearest shards (K >= 2)
};

struct ProductKMeansResult {
  ProductKMeansModel model;
  std::vector<int32_t> assignment;  // n shard ids in [0, K²)
  KMeansResult first, second;       // the per-half fits (their assignment = i resp. j)
};

// options.k is K (per half); needs d >= 2 and n >= K. The halves use seeds derived from
// options.seed.
Result<ProductKMeansResult> fit_product_kmeans(const FeatureMatrix& x,
                                               const KMeansOptions& options);

Result<std::vector<int32_t>> assign_product(const ProductKMeansModel& model,
                                            const FeatureMatrix& x);
// Balanced over the K² shards themselves (capacity ⌈n/K²⌉ each), with the product distance
// dist₁(i) + dist₂(j) as the cost: per-half balance alone leaves the K² shards as unbalanced as
// the halves are correlated (on real features they are: a run of ours put 7, 230, 231 and 7
// Brown documents in a 2×2 grid's shards).
Result<std::vector<int32_t>> assign_product_balanced(const ProductKMeansModel& model,
                                                     const FeatureMatrix& x);
Result<std::vector<std::array<int32_t, 2>>> assign_product_top2(const ProductKMeansModel& model,
                                                                const FeatureMatrix& x);

}  // namespace dipaco
