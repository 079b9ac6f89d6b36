// Which CUDA devices and libraries this host has, asked of the CUDA backend plugin.
//
// The CUDA backend is a plugin (libdipaco_cuda.so) so that dipaco starts on hosts without the
// NVIDIA runtime: these calls load it on first use and, when it cannot be loaded or no device
// is present, say why instead of failing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/backend.h"
#include "tensor/island_all_reduce.h"
#include "util/status.h"

namespace dipaco {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
  int multiprocessors = 0;
};

struct CudaRuntimeInfo {
  bool plugin_loaded = false;  // false: no CUDA backend here (not built, or runtime missing)
  int driver_version = 0;      // e.g. 13000 for 13.0; 0 when no driver is installed
  int runtime_version = 0;     // the cudart the plugin links
  size_t cudnn_version = 0;
  size_t cublaslt_version = 0;
  int nccl_version = 0;
  std::vector<CudaDeviceInfo> devices;  // free_bytes only when probed with_free_memory
  std::string unavailable_reason;       // empty when at least one device is usable
};

// with_free_memory: also each device's free memory, which makes a CUDA context (some hundreds
// of MiB) on every device for the rest of the process: for reports (dipaco doctor), not for a
// process that trains on one of them.
CudaRuntimeInfo probe_cuda(bool with_free_memory = false);

// Which of info's GPUs the CUDA backend can use (compute capability 8.0 or newer), in index
// order; how many; and, when none, why not (the probe's reason, or the first GPU's compute
// capability).
std::vector<int> usable_gpu_indices(const CudaRuntimeInfo& info);
int usable_gpu_count(const CudaRuntimeInfo& info);
std::string no_usable_gpu_reason(const CudaRuntimeInfo& info);

// Runs y = a*x + y for n elements on `device` and compares with the same loop on the CPU.
// Returns "" on success, otherwise what went wrong.
std::string cuda_axpy_self_test(int device, int n);

// How the CUDA backend multiplies matrices. Storage stays fp32 (master weights, activations);
// bf16 converts the operands and accumulates in fp32 (tensor cores, the default), tf32 runs the
// tensor cores on fp32 memory, fp32 is the exact reference the cross-backend tests use.
enum class CudaMatmulPrecision { kBf16, kTf32, kFp32 };

inline const char* cuda_precision_name(CudaMatmulPrecision p) {
  switch (p) {
    case CudaMatmulPrecision::kBf16: return "bf16";
    case CudaMatmulPrecision::kTf32: return "tf32";
    case CudaMatmulPrecision::kFp32: return "fp32";
  }
  return "?";
}

// "bf16" | "tf32" | "fp32"; anything else is an error naming the choices.
Result<CudaMatmulPrecision> parse_cuda_precision(std::string_view text);

// How the CUDA backend computes attention: batched cuBLASLt products around our softmax
// kernels (tensor cores), our own fused kernels only (the fallback, and the twin the
// cross-backend tests hold the others against), or cuDNN's fused flash attention (bf16
// operands, no T x T buffers; a shape cuDNN refuses, or whose probe against the cuBLASLt path
// fails, stays on cuBLASLt with the reason printed). Training backends take it from the
// environment variable DIPACO_CUDA_ATTENTION (backend_factory.h), or else
// default_training_attention.
enum class CudaAttention { kGemm, kKernels, kCudnn };

// "gemm" | "kernels" | "cudnn"; anything else is an error naming the choices.
Result<CudaAttention> parse_cuda_attention(std::string_view text);

// The attention path of a training backend when DIPACO_CUDA_ATTENTION is not set: cuDNN in
// bf16 (its operands are bf16 anyway), the cuBLASLt path in tf32 and fp32, whose users asked
// for more precision than bf16 attention gives.
CudaAttention default_training_attention(CudaMatmulPrecision precision);

struct CudaBackendOptions {
  int device = 0;
  CudaMatmulPrecision precision = CudaMatmulPrecision::kBf16;
  CudaAttention attention = CudaAttention::kGemm;
  // bf16 matmuls read the model's weights from a bf16 copy that AdamW refreshes (see
  // Backend::bind_matmul_weights) instead of converting them in every product: the same bf16
  // operands either way (see cuda_weight_copies.cu); false is for the tests and the benchmark.
  bool bf16_weight_copies = true;
};

// A Backend on one GPU, or why not (no plugin, no driver, no such device, compute capability
// below 8.0, set-up failure).
Result<std::unique_ptr<Backend>> create_cuda_backend(const CudaBackendOptions& options);

// NCCL all-reduce over an island: backends[i] (from create_cuda_backend) on GPU devices[i], all
// different (one works too: create_island then makes no all-reduce, the tests do). The backends
// must outlive it. Fails with NCCL's reason (no plugin, communicators that cannot be made).
Result<std::unique_ptr<IslandAllReduce>> create_cuda_island_all_reduce(
    const std::vector<Backend*>& backends, const std::vector<int>& devices);

}  // namespace dipaco
