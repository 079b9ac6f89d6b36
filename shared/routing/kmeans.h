// k-means over document features: k-means++ initialization and Lloyd iterations, optionally
// with balanced (capacity ⌈n/k⌉) assignments, and routing of documents to the nearest
// centroid (or the two nearest, for overlapping shards).
//
// Determinism: the result depends only on the features, the options and the seed (SplitMix64
// draws, fixed iteration order), not on the platform's standard library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "routing/feature_matrix.h"
#include "util/status.h"

namespace dipaco {

struct KMeansOptions {
  size_t k = 8;  // clusters (shards)
  size_t max_iterations = 100;
  // Converged when the total squared movement of the centroids in one iteration is at most
  // tol · (mean per-feature variance of the data), as scikit-learn does, or when no
  // assignment changed.
  double tol = 1e-4;
  uint64_t seed = 0;
  // Each Lloyd assignment step uses balanced_assignment() with capacity ⌈n/k⌉ instead of the
  // nearest centroid, so the final shards have at most ⌈n/k⌉ documents each.
  bool balanced = false;
};

// Centroids of a fitted k-means: k × d row-major.
struct KMeansModel {
  size_t k = 0;
  size_t d = 0;
  std::vector<float> centroids;

  const float* centroid(size_t c) const { return centroids.data() + c * d; }
  // Nearest centroid of one d-vector (ties: lower id). x must be finite: the assign_*
  // functions below check that; callers routing one document at a time check it themselves.
  int32_t nearest(const float* x) const;
  // The two nearest centroids, nearest first (k >= 2).
  std::array<int32_t, 2> nearest_two(const float* x) const;
};

struct KMeansResult {
  KMeansModel model;
  std::vector<int32_t> assignment;  // n cluster ids: the final assignment step
  double inertia = 0;               // Σ squared distance of each row to its assigned centroid
  size_t iterations = 0;
  bool converged = false;
};

// Errors: k = 0, n < k ("k-means with k=8 needs at least 8 documents, got 5"), d = 0,
// non-finite features, fewer than k distinct rows.
Result<KMeansResult> fit_kmeans(const FeatureMatrix& x, const KMeansOptions& options);

// Nearest centroid of each row. Errors when x's width differs from the model's or x has
// non-finite values.
Result<std::vector<int32_t>> assign_nearest(const KMeansModel& model, const FeatureMatrix& x);
// Nearest centroid of each row with at most ⌈n/k⌉ rows per centroid (balanced_assignment).
Result<std::vector<int32_t>> assign_balanced(const KMeansModel& model, const FeatureMatrix& x);
// Top-2 overlap: the two nearest centroids of each row (a document trains both paths).
Result<std::vector<std::array<int32_t, 2>>> assign_top2(const KMeansModel& model,
                                                        const FeatureMatrix& x);

}  // namespace dipaco
