#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda/cuda_plugin_api.h"

namespace dipaco {
namespace {

__global__ void axpy_kernel(int n, float a, const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

std::string cuda_error(const char* what, cudaError_t err) {
  return std::string(what) + ": " + cudaGetErrorString(err);
}

}  // namespace

std::string axpy_self_test(int device, int n) {
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return cuda_error("cudaSetDevice", err);
  }
  std::vector<float> x(n), y(n), expected(n);
  const float a = 0.5f;
  for (int i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 97) * 0.25f;
    y[i] = static_cast<float>(i % 13) - 6.0f;
    expected[i] = a * x[i] + y[i];  // the CPU twin of axpy_kernel
  }
  float* dx = nullptr;
  float* dy = nullptr;
  size_t bytes = sizeof(float) * static_cast<size_t>(n);
  std::string failure;
  if (cudaError_t err = cudaMalloc(&dx, bytes); err != cudaSuccess)
    return cuda_error("cudaMalloc", err);
  if (cudaError_t err = cudaMalloc(&dy, bytes); err != cudaSuccess) {
    cudaFree(dx);
    return cuda_error("cudaMalloc", err);
  }
  cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dy, y.data(), bytes, cudaMemcpyHostToDevice);
  axpy_kernel<<<(n + 255) / 256, 256>>>(n, a, dx, dy);
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) failure = cuda_error("launch", err);
  if (failure.empty()) {
    if (cudaError_t err = cudaMemcpy(y.data(), dy, bytes, cudaMemcpyDeviceToHost);
        err != cudaSuccess) {
      failure = cuda_error("cudaMemcpy", err);
    }
  }
  cudaFree(dx);
  cudaFree(dy);
  if (!failure.empty()) return failure;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(y[i] - expected[i]) > 1e-6f) {
      return "axpy mismatch at " + std::to_string(i) + ": got " + std::to_string(y[i]) +
             ", expected " + std::to_string(expected[i]);
    }
  }
  return "";
}

}  // namespace dipaco

void dipaco_cuda_axpy_self_test(int device, int n, char* error, size_t error_size) {
  std::string failure = dipaco::axpy_self_test(device, n);
  std::snprintf(error, error_size, "%s", failure.c_str());
}
