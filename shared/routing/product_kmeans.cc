#include "routing/product_kmeans.h"

#include <limits>
#include <string>

#include "data/shuffle.h"
#include "routing/balanced_assignment.h"

namespace dipaco {
namespace {

// Copies columns [begin, begin + width) of x into a dense n × width matrix.
std::vector<float> columns(const FeatureMatrix& x, size_t begin, size_t width) {
  std::vector<float> out(x.rows * width);
  for (size_t i = 0; i < x.rows; ++i) {
    const float* r = x.row(i) + begin;
    std::copy(r, r + width, out.begin() + static_cast<std::ptrdiff_t>(i * width));
  }
  return out;
}

Status check_input(const ProductKMeansModel& model, const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (x.cols != model.d()) {
    return invalid_argument("features have " + std::to_string(x.cols) +
                            " dimensions but the product router was fitted on " +
                            std::to_string(model.d()));
  }
  return Status::ok();
}

// Distances of one row to the K centroids of one half.
void half_distances(const KMeansModel& m, const float* x, std::vector<float>* out) {
  out->resize(m.k);
  for (size_t c = 0; c < m.k; ++c) (*out)[c] = squared_distance(x, m.centroid(c), m.d);
}

}  // namespace

int32_t ProductKMeansModel::shard(const float* x) const {
  return first.nearest(x) * static_cast<int32_t>(k) + second.nearest(x + d_first);
}

std::array<int32_t, 2> ProductKMeansModel::nearest_two(const float* x) const {
  std::vector<float> d1, d2;
  half_distances(first, x, &d1);
  half_distances(second, x + d_first, &d2);
  std::array<int32_t, 2> i = first.nearest_two(x);
  std::array<int32_t, 2> j = second.nearest_two(x + d_first);
  int32_t kk = static_cast<int32_t>(k);
  int32_t best = i[0] * kk + j[0];
  float via_i = d1[i[1]] + d2[j[0]];  // (second i, nearest j)
  float via_j = d1[i[0]] + d2[j[1]];  // (nearest i, second j)
  int32_t second_best = via_j <= via_i ? i[0] * kk + j[1] : i[1] * kk + j[0];
  return {best, second_best};
}

Result<ProductKMeansResult> fit_product_kmeans(const FeatureMatrix& x,
                                               const KMeansOptions& options) {
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (x.cols < 2) {
    return invalid_argument(
        "product k-means splits the features in two halves: it needs at "
        "least 2 dimensions, got " +
        std::to_string(x.cols));
  }
  size_t d1 = x.cols / 2, d2 = x.cols - d1;
  std::vector<float> a = columns(x, 0, d1), b = columns(x, d1, d2);
  KMeansOptions o1 = options, o2 = options;
  o1.seed = mix_seed(options.seed, 1);
  o2.seed = mix_seed(options.seed, 2);
  ProductKMeansResult r;
  auto f1 = fit_kmeans(FeatureMatrix{a, x.rows, d1}, o1);
  if (!f1) return f1.status().with_context("product k-means, first half");
  auto f2 = fit_kmeans(FeatureMatrix{b, x.rows, d2}, o2);
  if (!f2) return f2.status().with_context("product k-means, second half");
  r.first = std::move(f1).value();
  r.second = std::move(f2).value();
  r.model.k = options.k;
  r.model.d_first = d1;
  r.model.first = r.first.model;
  r.model.second = r.second.model;
  r.assignment.resize(x.rows);
  int32_t kk = static_cast<int32_t>(options.k);
  for (size_t i = 0; i < x.rows; ++i) {
    r.assignment[i] = r.first.assignment[i] * kk + r.second.assignment[i];
  }
  return r;
}

Result<std::vector<int32_t>> assign_product(const ProductKMeansModel& model,
                                            const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_input(model, x));
  std::vector<int32_t> out(x.rows);
  for (size_t i = 0; i < x.rows; ++i) out[i] = model.shard(x.row(i));
  return out;
}

Result<std::vector<std::array<int32_t, 2>>> assign_product_top2(const ProductKMeansModel& model,
                                                                const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_input(model, x));
  if (model.k < 2) return invalid_argument("top-2 product routing needs K >= 2");
  std::vector<std::array<int32_t, 2>> out(x.rows);
  for (size_t i = 0; i < x.rows; ++i) out[i] = model.nearest_two(x.row(i));
  return out;
}

Result<std::vector<int32_t>> assign_product_balanced(const ProductKMeansModel& model,
                                                     const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (x.cols != model.d()) {
    return invalid_argument("features have " + std::to_string(x.cols) +
                            " columns, the product k-means model " + std::to_string(model.d()));
  }
  const size_t K = model.k, shards = K * K, d1 = model.first.d, d2 = model.second.d;
  std::vector<float> cost(x.rows * shards);
  std::vector<float> first(K), second(K);
  for (size_t r = 0; r < x.rows; ++r) {
    const float* row = x.row(r);
    for (size_t c = 0; c < K; ++c) {
      first[c] = squared_distance(row, model.first.centroid(c), d1);
      second[c] = squared_distance(row + d1, model.second.centroid(c), d2);
    }
    for (size_t i = 0; i < K; ++i)
      for (size_t j = 0; j < K; ++j) cost[r * shards + i * K + j] = first[i] + second[j];
  }
  return balanced_assignment(cost, x.rows, shards, balanced_capacity(x.rows, shards));
}

}  // namespace dipaco
