// Helpers shared by the engine tests: random tensors, host <-> device copies through the
// Backend interface, tolerant comparisons and central finite differences in double precision.
#pragma once

#include <QtTest>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/device_buffer.h"

namespace dipaco::testing {

inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

template <typename T>
DeviceBuffer upload(Backend& be, const std::vector<T>& host) {
  DeviceBuffer buf(&be, host.size() * sizeof(T));
  be.copy_to_device(buf.get(), host.data(), host.size() * sizeof(T));
  return buf;
}

inline std::vector<float> download(Backend& be, const DeviceBuffer& buf, size_t n) {
  std::vector<float> host(n);
  be.copy_to_host(host.data(), buf.get(), n * sizeof(float));
  return host;
}

// Fails the test when |a - b| > atol + rtol * |b| anywhere; names the first bad index.
inline bool close(const std::vector<float>& got, const std::vector<double>& want, double rtol,
                  double atol, const std::string& what) {
  if (got.size() != want.size()) {
    qWarning("%s: size %zu != %zu", what.c_str(), got.size(), want.size());
    return false;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    double diff = std::fabs(got[i] - want[i]);
    if (!(diff <= atol + rtol * std::fabs(want[i]))) {
      qWarning("%s[%zu]: got %.8g want %.8g (diff %.3g)", what.c_str(), i, got[i], want[i], diff);
      return false;
    }
  }
  return true;
}

// Central finite differences of loss at x, for `samples` indices (all when samples == 0 or
// >= x.size()), compared with the analytic gradient `grad`.
inline bool check_gradient(const std::function<double(const std::vector<double>&)>& loss,
                           std::vector<double> x, const std::vector<float>& grad,
                           const std::string& what, size_t samples = 0, double rtol = 2e-3,
                           double atol = 2e-4) {
  if (grad.size() != x.size()) {
    qWarning("%s: gradient size %zu != %zu", what.c_str(), grad.size(), x.size());
    return false;
  }
  std::vector<size_t> idx;
  if (samples == 0 || samples >= x.size()) {
    for (size_t i = 0; i < x.size(); ++i) idx.push_back(i);
  } else {
    std::mt19937_64 rng(1234);
    std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
    for (size_t s = 0; s < samples; ++s) idx.push_back(pick(rng));
  }
  const double h = 1e-5;
  for (size_t i : idx) {
    double saved = x[i];
    x[i] = saved + h;
    double up = loss(x);
    x[i] = saved - h;
    double down = loss(x);
    x[i] = saved;
    double fd = (up - down) / (2 * h);
    double diff = std::fabs(grad[i] - fd);
    if (!(diff <= atol + rtol * std::fabs(fd))) {
      qWarning("%s: d/dx[%zu] analytic %.8g finite-difference %.8g (diff %.3g)", what.c_str(), i,
               grad[i], fd, diff);
      return false;
    }
  }
  return true;
}

inline double dot(const std::vector<double>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace dipaco::testing
