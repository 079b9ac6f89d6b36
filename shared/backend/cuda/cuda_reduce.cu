// Sums returned to the host, accumulated in double (CPU twin: reduce() in cpu_backend.cc).
// A fixed grid of blocks strides over the input; each block's partial goes to the host, which
// adds them in block order, so the result depends only on the input and its length.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

constexpr int kThreads = 256;
constexpr int kBlocks = 1024;  // == kReduceBlocks in cuda_backend.cu

__global__ void reduce_kernel(double* partials, const float* x, size_t count, bool squares) {
  __shared__ double shared[cuda::kWarp];
  double acc = 0.0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    double v = x[i];
    acc += squares ? v * v : v;
  }
  acc = cuda::block_sum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

}  // namespace

double CudaBackend::reduce(const float* x, size_t count, bool squares) {
  use_device();
  if (count == 0) return 0.0;
  int blocks = static_cast<int>(std::min<size_t>(kBlocks, cuda::grid_for(count, kThreads)));
  reduce_kernel<<<blocks, kThreads, 0, stream_>>>(reduce_partials_, x, count, squares);
  DIPACO_CUDA_CHECK_LAUNCH();
  DIPACO_CUDA_CHECK(cudaMemcpyAsync(reduce_host_, reduce_partials_, blocks * sizeof(double),
                                    cudaMemcpyDeviceToHost, stream_));
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  double total = 0.0;
  for (int b = 0; b < blocks; ++b) total += reduce_host_[b];
  return total;
}

double CudaBackend::sum_squares(const float* x, size_t count) {
  return reduce(x, count, true);
}

double CudaBackend::sum(const float* x, size_t count) {
  return reduce(x, count, false);
}

}  // namespace dipaco
