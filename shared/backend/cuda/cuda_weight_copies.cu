// The bf16 compute copy of the model's weights (Backend::bind_matmul_weights).
//
// In bf16 every product converts its fp32 operands first. For the weights that conversion is
// the same every time until the optimizer changes them, so the backend keeps one bf16 copy of
// the bound parameter buffer: gemm() reads weight operands from it, the AdamW kernel writes it
// next to the fp32 master weights, and Model refreshes it after loading parameters. Both
// write __float2bfloat16 of the same fp32 value, so the operands are the same bf16 values. The
// products are bit for bit the same when each weight's copy is 256-byte aligned, as the
// converted scratch is (d_model a multiple of 128); otherwise cuBLASLt may choose another
// algorithm for the narrower alignment, which changes only the rounding (test_cuda_backend).
#include <functional>

#include "backend/cuda/cuda_backend.h"

namespace dipaco {

size_t CudaBackend::matmul_weight_copy_bytes(size_t count) const {
  return keep_weight_copies_ ? count * sizeof(__nv_bfloat16) : 0;
}

bool CudaBackend::bind_matmul_weights(const float* weights, size_t count) {
  if (!keep_weight_copies_) return true;
  use_device();
  if (count != bound_count_) {
    DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old copy may still be read
    DIPACO_CUDA_CHECK(cudaFree(weights_bf16_));
    weights_bf16_ = nullptr;
    bound_weights_ = nullptr;
    bound_count_ = 0;
    if (cudaMalloc(&weights_bf16_, count * sizeof(__nv_bfloat16)) != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky
      weights_bf16_ = nullptr;
      return false;
    }
  }
  bound_weights_ = weights;
  bound_count_ = count;
  convert_to_bf16(weights_bf16_, weights, count);
  return true;
}

void CudaBackend::refresh_matmul_weights(const float* slice, size_t count) {
  if (__nv_bfloat16* copy = weight_copy_of(slice, count)) {
    use_device();
    convert_to_bf16(copy, slice, count);
  }
}

void CudaBackend::release_matmul_weights(const float* weights) {
  if (weights == nullptr || weights != bound_weights_) return;
  // The memory is kept for the next model bound with the same size (the island's and the path
  // tasks' models come and go with the same shape); only the binding ends.
  bound_weights_ = nullptr;
}

__nv_bfloat16* CudaBackend::weight_copy_of(const float* x, size_t count) const {
  if (bound_weights_ == nullptr || x == nullptr || count == 0) return nullptr;
  // Pointers into different allocations are compared through std::less, which is a total order.
  std::less<const float*> before;
  if (before(x, bound_weights_) || before(bound_weights_ + bound_count_, x)) return nullptr;
  const size_t offset = static_cast<size_t>(x - bound_weights_);
  if (count > bound_count_ - offset) return nullptr;
  return weights_bf16_ + offset;
}

}  // namespace dipaco
