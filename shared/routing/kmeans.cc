#include "routing/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "data/shuffle.h"
#include "routing/balanced_assignment.h"

namespace dipaco {
namespace {

double uniform01(SplitMix64& g) {
  return static_cast<double>(g.next() >> 11) * 0x1.0p-53;
}

Status check_model_input(const KMeansModel& model, const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (x.cols != model.d) {
    return invalid_argument("features have " + std::to_string(x.cols) +
                            " dimensions but the router's centroids have " +
                            std::to_string(model.d));
  }
  return Status::ok();
}

// Greedy k-means++ (as scikit-learn): the first centroid is a uniformly drawn row; for each
// next one, 2 + ⌊ln k⌋ candidate rows are drawn with probability proportional to their squared
// distance to the nearest centroid chosen so far, and the candidate that lowers the total of
// those distances most is kept. The extra candidates make a second centroid inside an
// already covered cluster much less likely than with plain k-means++.
Result<std::vector<float>> kmeans_plus_plus(const FeatureMatrix& x, size_t k, SplitMix64& g) {
  size_t n = x.rows, d = x.cols;
  std::vector<float> c(k * d);
  size_t first = static_cast<size_t>(g.below(n));
  std::copy(x.row(first), x.row(first) + d, c.begin());
  std::vector<double> dist(n), trial(n), best_trial(n);
  for (size_t i = 0; i < n; ++i) dist[i] = squared_distance(x.row(i), c.data(), d);
  size_t trials = 2 + static_cast<size_t>(std::log(static_cast<double>(k)));
  for (size_t m = 1; m < k; ++m) {
    double total = 0;
    for (double v : dist) total += v;
    if (!(total > 0)) {
      return invalid_argument("features have fewer than k=" + std::to_string(k) +
                              " distinct rows (found " + std::to_string(m) +
                              "): reduce k or check the feature extraction");
    }
    size_t pick = n;
    double best_potential = std::numeric_limits<double>::infinity();
    for (size_t t = 0; t < trials; ++t) {
      double target = uniform01(g) * total;
      size_t candidate = n;
      double acc = 0;
      for (size_t i = 0; i < n; ++i) {
        acc += dist[i];
        if (dist[i] > 0 && acc > target) {
          candidate = i;
          break;
        }
      }
      if (candidate == n) {  // rounding left target at the very end: the last row with mass
        for (size_t i = n; i-- > 0;) {
          if (dist[i] > 0) {
            candidate = i;
            break;
          }
        }
      }
      double potential = 0;
      for (size_t i = 0; i < n; ++i) {
        trial[i] =
            std::min(dist[i], static_cast<double>(squared_distance(x.row(i), x.row(candidate), d)));
        potential += trial[i];
      }
      if (potential < best_potential) {
        best_potential = potential;
        pick = candidate;
        best_trial.swap(trial);
      }
    }
    std::copy(x.row(pick), x.row(pick) + d, c.data() + m * d);
    dist.swap(best_trial);
  }
  return c;
}

void all_distances(const FeatureMatrix& x, const KMeansModel& m, std::vector<float>* out) {
  out->resize(x.rows * m.k);
  for (size_t i = 0; i < x.rows; ++i) {
    for (size_t c = 0; c < m.k; ++c) {
      (*out)[i * m.k + c] = squared_distance(x.row(i), m.centroid(c), m.d);
    }
  }
}

double mean_feature_variance(const FeatureMatrix& x) {
  double total = 0;
  for (size_t j = 0; j < x.cols; ++j) {
    double mean = 0, sq = 0;
    for (size_t i = 0; i < x.rows; ++i) mean += x.row(i)[j];
    mean /= static_cast<double>(x.rows);
    for (size_t i = 0; i < x.rows; ++i) {
      double t = x.row(i)[j] - mean;
      sq += t * t;
    }
    total += sq / static_cast<double>(x.rows);
  }
  return total / static_cast<double>(x.cols);
}

}  // namespace

int32_t KMeansModel::nearest(const float* x) const {
  int32_t best = 0;
  float best_d = std::numeric_limits<float>::infinity();
  for (size_t c = 0; c < k; ++c) {
    float dc = squared_distance(x, centroid(c), d);
    if (dc < best_d) {
      best_d = dc;
      best = static_cast<int32_t>(c);
    }
  }
  return best;
}

std::array<int32_t, 2> KMeansModel::nearest_two(const float* x) const {
  std::array<int32_t, 2> best = {0, k > 1 ? 1 : 0};
  float d0 = std::numeric_limits<float>::infinity(), d1 = d0;
  for (size_t c = 0; c < k; ++c) {
    float dc = squared_distance(x, centroid(c), d);
    if (dc < d0) {
      d1 = d0;
      best[1] = best[0];
      d0 = dc;
      best[0] = static_cast<int32_t>(c);
    } else if (dc < d1) {
      d1 = dc;
      best[1] = static_cast<int32_t>(c);
    }
  }
  return best;
}

Result<KMeansResult> fit_kmeans(const FeatureMatrix& x, const KMeansOptions& options) {
  size_t k = options.k, n = x.rows, d = x.cols;
  if (k == 0) return invalid_argument("k-means needs k >= 1 clusters");
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (n < k) {
    return invalid_argument("k-means with k=" + std::to_string(k) + " needs at least " +
                            std::to_string(k) + " documents, got " + std::to_string(n));
  }
  if (!(options.tol >= 0)) return invalid_argument("k-means tol must be >= 0");
  if (options.max_iterations == 0) return invalid_argument("k-means max_iterations must be >= 1");
  SplitMix64 g(mix_seed(options.seed, 0x6b6d65616e73ULL));  // "kmeans"
  KMeansResult r;
  r.model.k = k;
  r.model.d = d;
  DIPACO_ASSIGN_OR_RETURN(r.model.centroids, kmeans_plus_plus(x, k, g));

  double threshold = options.tol * mean_feature_variance(x);
  size_t capacity = balanced_capacity(n, k);
  std::vector<float> dist;
  std::vector<int32_t> previous;
  std::vector<double> sums(k * d);
  std::vector<size_t> counts(k);
  std::vector<float> updated(d);
  for (size_t it = 0; it < options.max_iterations; ++it) {
    all_distances(x, r.model, &dist);
    if (options.balanced) {
      DIPACO_ASSIGN_OR_RETURN(r.assignment, balanced_assignment(dist, n, k, capacity));
    } else {
      r.assignment.resize(n);
      for (size_t i = 0; i < n; ++i) {
        const float* di = dist.data() + i * k;
        r.assignment[i] = static_cast<int32_t>(std::min_element(di, di + k) - di);
      }
    }
    r.iterations = it + 1;
    if (r.assignment == previous || it + 1 == options.max_iterations) {
      r.converged = r.assignment == previous;
      break;
    }
    previous = r.assignment;
    // Update: each centroid becomes the mean of its rows. An empty cluster takes the row
    // farthest from its own centroid (deterministic), so k clusters stay in use.
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      size_t c = static_cast<size_t>(r.assignment[i]);
      ++counts[c];
      const float* xi = x.row(i);
      for (size_t j = 0; j < d; ++j) sums[c * d + j] += xi[j];
    }
    double shift = 0;
    std::vector<bool> taken(n, false);
    for (size_t c = 0; c < k; ++c) {
      float* cc = r.model.centroids.data() + c * d;
      if (counts[c] > 0) {
        for (size_t j = 0; j < d; ++j) {
          updated[j] = static_cast<float>(sums[c * d + j] / static_cast<double>(counts[c]));
        }
      } else {
        size_t far = 0;
        float far_d = -1;
        for (size_t i = 0; i < n; ++i) {
          float di = dist[i * k + static_cast<size_t>(r.assignment[i])];
          if (!taken[i] && di > far_d) {
            far_d = di;
            far = i;
          }
        }
        taken[far] = true;
        std::copy(x.row(far), x.row(far) + d, updated.begin());
      }
      shift += squared_distance(cc, updated.data(), d);
      std::copy(updated.begin(), updated.end(), cc);
    }
    if (shift <= threshold) {
      // Centroids settled: one more assignment against them ends the fit.
      all_distances(x, r.model, &dist);
      if (options.balanced) {
        DIPACO_ASSIGN_OR_RETURN(r.assignment, balanced_assignment(dist, n, k, capacity));
      } else {
        for (size_t i = 0; i < n; ++i) {
          const float* di = dist.data() + i * k;
          r.assignment[i] = static_cast<int32_t>(std::min_element(di, di + k) - di);
        }
      }
      r.converged = true;
      break;
    }
  }
  r.inertia = 0;
  for (size_t i = 0; i < n; ++i) {
    r.inertia += squared_distance(x.row(i), r.model.centroid(r.assignment[i]), d);
  }
  return r;
}

Result<std::vector<int32_t>> assign_nearest(const KMeansModel& model, const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_model_input(model, x));
  std::vector<int32_t> out(x.rows);
  for (size_t i = 0; i < x.rows; ++i) out[i] = model.nearest(x.row(i));
  return out;
}

Result<std::vector<int32_t>> assign_balanced(const KMeansModel& model, const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_model_input(model, x));
  std::vector<float> dist;
  all_distances(x, model, &dist);
  return balanced_assignment(dist, x.rows, model.k, balanced_capacity(x.rows, model.k));
}

Result<std::vector<std::array<int32_t, 2>>> assign_top2(const KMeansModel& model,
                                                        const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_model_input(model, x));
  if (model.k < 2) return invalid_argument("top-2 routing needs at least 2 centroids, got 1");
  std::vector<std::array<int32_t, 2>> out(x.rows);
  for (size_t i = 0; i < x.rows; ++i) out[i] = model.nearest_two(x.row(i));
  return out;
}

}  // namespace dipaco
