// CpuBackend: construction, memory, and the simple elementwise ops and reductions.
// The other ops live in one file each (cpu_<op>.cc).
#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>

#include "backend/cpu/blas_runtime.h"
#include "backend/cpu/cpu_features.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace dipaco {

namespace {
int resolve_threads(int n) {
  return n > 0 ? n : cpu_features().logical_cores;
}
}  // namespace

CpuBackend::CpuBackend(int n_threads, int64_t min_work_per_thread)
    : pool_(resolve_threads(n_threads), min_work_per_thread) {
  // Each pool thread calls sgemm on its own slice; OpenBLAS's own threads would oversubscribe.
  openblas_set_num_threads(1);
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const {
  return "cpu (" + std::to_string(pool_.size()) + " threads, OpenBLAS " + blas_core_name() + ")";
}

void* CpuBackend::alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  return std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
}

void CpuBackend::free(void* ptr) {
  std::free(ptr);
}

void CpuBackend::fill_zero(void* dst, size_t bytes) {
  std::memset(dst, 0, bytes);
}

void CpuBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  std::memcpy(dst, host_src, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  std::memcpy(host_dst, src, bytes);
}

void CpuBackend::copy_device(void* dst, const void* src, size_t bytes) {
  std::memmove(dst, src, bytes);
}

void CpuBackend::residual_forward(float* out, const float* a, const float* b, size_t count) {
  pool_.parallel_for(static_cast<int64_t>(count), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

void CpuBackend::add_inplace(float* dst, const float* src, size_t count) {
  pool_.parallel_for(static_cast<int64_t>(count), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dst[i] += src[i];
  });
}

void CpuBackend::scale_inplace(float* x, float s, size_t count) {
  pool_.parallel_for(static_cast<int64_t>(count), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

namespace {
// Sums f(x[i]) over [0, count) in double: each thread a fixed chunk, 8 lanes per chunk, chunks
// combined in order, so the result depends only on count and the thread count.
template <bool kSquare>
double reduce(ThreadPool& pool, const float* x, size_t count) {
  constexpr int kMaxThreads = 256;
  double partial[kMaxThreads] = {};
  int parts = pool.threads_for(static_cast<int64_t>(count));
  parts = parts < kMaxThreads ? parts : kMaxThreads;
  auto chunk = [&](int t) {
    size_t begin = count * t / parts;
    size_t end = count * (t + 1) / parts;
    double acc[8] = {};
    size_t i = begin;
    for (; i + 8 <= end; i += 8)
      for (int j = 0; j < 8; ++j) {
        double v = x[i + j];
        acc[j] += kSquare ? v * v : v;
      }
    double s = 0.0;
    for (; i < end; ++i) {
      double v = x[i];
      s += kSquare ? v * v : v;
    }
    for (int j = 0; j < 8; ++j) s += acc[j];
    partial[t] = s;
  };
  if (parts == 1) {
    chunk(0);
  } else {
    pool.run([&](int t) {
      if (t < parts) chunk(t);
    });
  }
  double total = 0.0;
  for (int t = 0; t < parts; ++t) total += partial[t];
  return total;
}
}  // namespace

double CpuBackend::sum_squares(const float* x, size_t count) {
  return reduce<true>(pool_, x, count);
}

double CpuBackend::sum(const float* x, size_t count) {
  return reduce<false>(pool_, x, count);
}

}  // namespace dipaco
