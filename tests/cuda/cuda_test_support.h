// Shared by the CUDA tests: device arrays on any backend, error measures, and the skip that
// ctest reports (SKIP_REGULAR_EXPRESSION "skipped: no CUDA device") when no GPU is present.
#pragma once

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/cuda_runtime.h"
#include "engine/engine_test_util.h"
#include "tensor/backend.h"
#include "tensor/device_buffer.h"

#define DIPACO_SKIP_WITHOUT_CUDA()                                                             \
  do {                                                                                         \
    dipaco::CudaRuntimeInfo info_for_skip = dipaco::probe_cuda();                              \
    if (info_for_skip.devices.empty()) {                                                       \
      std::printf("skipped: no CUDA device (%s)\n", info_for_skip.unavailable_reason.c_str()); \
      std::fflush(stdout);                                                                     \
      QSKIP("skipped: no CUDA device");                                                        \
    }                                                                                          \
  } while (false)

namespace dipaco::test {

using dipaco::testing::random_floats;

// A host vector mirrored on a backend.
template <typename T>
class Mirror {
 public:
  Mirror(Backend* backend, const std::vector<T>& host)
      : backend_(backend), buffer_(backend, host.size() * sizeof(T)), size_(host.size()) {
    backend_->copy_to_device(buffer_.get(), host.data(), host.size() * sizeof(T));
  }
  T* get() const { return static_cast<T*>(buffer_.get()); }
  std::vector<T> host() const {
    std::vector<T> out(size_);
    backend_->copy_to_host(out.data(), buffer_.get(), size_ * sizeof(T));
    return out;
  }

 private:
  Backend* backend_;
  DeviceBuffer buffer_;
  size_t size_;
};

// max |a - b| / max(max |b|, tiny): the error relative to the reference's scale.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0.0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

}  // namespace dipaco::test

// QVERIFY with both errors printed.
#define DIPACO_EXPECT_CLOSE(gpu, cpu, tolerance)                                               \
  do {                                                                                         \
    double err_ = dipaco::test::relative_error((gpu), (cpu));                                  \
    QVERIFY2(                                                                                  \
        err_ <= (tolerance),                                                                   \
        qPrintable(QString("%1: relative error %2 > %3").arg(#gpu).arg(err_).arg(tolerance))); \
  } while (false)
