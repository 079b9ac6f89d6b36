// Synthetic document features for routing tests: Gaussian blobs and cluster-agreement scores.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <vector>

namespace dipaco::test {

struct Blobs {
  std::vector<float> x;        // n × d row-major
  std::vector<int32_t> label;  // true cluster of each row
  size_t n = 0, d = 0;
};

// sizes[c] rows around center c; centers drawn uniformly in [-spread, spread]^d, noise N(0, 1).
inline Blobs gaussian_blobs(const std::vector<size_t>& sizes, size_t d, float spread,
                            uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-spread, spread);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  Blobs b;
  b.d = d;
  for (size_t c = 0; c < sizes.size(); ++c) {
    std::vector<float> center(d);
    for (float& v : center) v = u(gen);
    for (size_t i = 0; i < sizes[c]; ++i) {
      for (size_t j = 0; j < d; ++j) b.x.push_back(center[j] + noise(gen));
      b.label.push_back(static_cast<int32_t>(c));
    }
  }
  b.n = b.label.size();
  return b;
}

// Adjusted Rand index of two labelings (1 = identical up to renaming, ~0 = chance).
inline double adjusted_rand_index(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::map<std::pair<int32_t, int32_t>, double> joint;
  std::map<int32_t, double> ca, cb;
  for (size_t i = 0; i < a.size(); ++i) {
    joint[{a[i], b[i]}] += 1;
    ca[a[i]] += 1;
    cb[b[i]] += 1;
  }
  auto pairs = [](double m) { return m * (m - 1) / 2; };
  double index = 0, sa = 0, sb = 0;
  for (auto& [key, m] : joint) index += pairs(m);
  for (auto& [key, m] : ca) sa += pairs(m);
  for (auto& [key, m] : cb) sb += pairs(m);
  double expected = sa * sb / pairs(static_cast<double>(a.size()));
  double max_index = (sa + sb) / 2;
  return (index - expected) / (max_index - expected);
}

inline std::vector<size_t> cluster_sizes(const std::vector<int32_t>& ids, size_t k) {
  std::vector<size_t> s(k, 0);
  for (int32_t id : ids) ++s[static_cast<size_t>(id)];
  return s;
}

}  // namespace dipaco::test
