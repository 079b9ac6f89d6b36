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
  release_matmul_weights(weights);  // bound again: a fresh copy
  use_device();
  WeightCopy bound{weights, count, nullptr};
  if (cudaMalloc(&bound.bf16, count * sizeof(__nv_bfloat16)) != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky
    return false;
  }
  convert_to_bf16(bound.bf16, weights, count);
  weight_copies_.push_back(bound);
  return true;
}

void CudaBackend::refresh_matmul_weights(const float* slice, size_t count) {
  if (__nv_bfloat16* copy = weight_copy_of(slice, count)) {
    use_device();
    convert_to_bf16(copy, slice, count);
  }
}

// The copy's memory goes with the binding, so that the next model's budget sees it free.
void CudaBackend::release_matmul_weights(const float* weights) {
  for (auto it = weight_copies_.begin(); it != weight_copies_.end(); ++it) {
    if (it->weights != weights) continue;
    use_device();
    DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued products may still read it
    DIPACO_CUDA_CHECK(cudaFree(it->bf16));
    weight_copies_.erase(it);
    return;
  }
}

__nv_bfloat16* CudaBackend::weight_copy_of(const float* x, size_t count) const {
  if (x == nullptr || count == 0) return nullptr;
  // Pointers into different allocations are compared through std::less, a total order.
  std::less<const float*> before;
  for (const WeightCopy& c : weight_copies_) {
    if (before(x, c.weights) || before(c.weights + c.count, x)) continue;
    const size_t offset = static_cast<size_t>(x - c.weights);
    if (count <= c.count - offset) return c.bf16 + offset;
  }
  return nullptr;
}

}  // namespace dipaco
