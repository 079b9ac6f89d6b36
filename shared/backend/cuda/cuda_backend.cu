// CudaBackend: device set-up, memory, copies, and the plugin's entry point for creating one.
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_plugin_api.h"

namespace dipaco {
namespace cuda {

void fail(const char* call, const char* error, const char* file, int line) {
  std::fprintf(stderr,
               "dipaco: CUDA backend: %s failed: %s (%s:%d); the CUDA context cannot be trusted "
               "after this, stopping\n",
               call, error, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace cuda

namespace {
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's advice for Hopper
constexpr size_t kReduceBlocks = 1024;

std::string describe(const char* what, cudaError_t err) {
  return std::string(what) + ": " + cudaGetErrorString(err);
}

const char* attention_label(CudaAttention attention) {
  switch (attention) {
    case CudaAttention::kGemm: return "";
    case CudaAttention::kKernels: return ", attention kernels";
    case CudaAttention::kCudnn: return ", attention cuDNN";
  }
  return "";
}
}  // namespace

std::unique_ptr<CudaBackend> CudaBackend::create(const CudaBackendOptions& options,
                                                 std::string* error) {
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess || count == 0) {
    *error = err != cudaSuccess ? describe("no CUDA device", err) : "no CUDA device";
    return nullptr;
  }
  if (options.device < 0 || options.device >= count) {
    *error = "CUDA device " + std::to_string(options.device) + " does not exist (this host has " +
             std::to_string(count) + ": 0.." + std::to_string(count - 1) + ")";
    return nullptr;
  }
  cudaDeviceProp prop{};
  if (cudaError_t err = cudaGetDeviceProperties(&prop, options.device); err != cudaSuccess) {
    *error = describe("cudaGetDeviceProperties", err);
    return nullptr;
  }
  // bf16 tensor cores and the kernels' shuffles need Ampere (sm_80) or newer; the plugin is
  // built for sm_80 and sm_90 (+ PTX).
  if (prop.major < 8) {
    *error = std::string("GPU ") + std::to_string(options.device) + " (" + prop.name +
             ") has compute capability " + std::to_string(prop.major) + "." +
             std::to_string(prop.minor) + "; dipaco's CUDA backend needs 8.0 (Ampere) or newer";
    return nullptr;
  }
  std::unique_ptr<CudaBackend> be(new CudaBackend());
  be->device_ = options.device;
  be->precision_ = options.precision;
  be->attention_ = options.attention;
  be->keep_weight_copies_ =
      options.precision == CudaMatmulPrecision::kBf16 && options.bf16_weight_copies;
  be->device_name_ = prop.name;
  if (cudaError_t err = cudaSetDevice(options.device); err != cudaSuccess) {
    *error = describe("cudaSetDevice", err);
    return nullptr;
  }
  if (cudaError_t err = cudaStreamCreateWithFlags(&be->stream_, cudaStreamNonBlocking);
      err != cudaSuccess) {
    *error = describe("cudaStreamCreate", err);
    return nullptr;
  }
  if (cublasStatus_t st = cublasLtCreate(&be->lt_); st != CUBLAS_STATUS_SUCCESS) {
    *error = std::string("cublasLtCreate: ") + cublasLtGetStatusString(st);
    return nullptr;
  }
  if (cudaError_t err = cudaMalloc(&be->lt_workspace_, kLtWorkspaceBytes); err != cudaSuccess) {
    *error = describe("allocating the cuBLASLt workspace", err);
    return nullptr;
  }
  be->lt_workspace_bytes_ = kLtWorkspaceBytes;
  if (cudaError_t err = cudaMalloc(&be->reduce_partials_, kReduceBlocks * sizeof(double));
      err != cudaSuccess) {
    *error = describe("allocating reduction partials", err);
    return nullptr;
  }
  if (cudaError_t err = cudaMallocHost(&be->reduce_host_, kReduceBlocks * sizeof(double));
      err != cudaSuccess) {
    *error = describe("allocating pinned host memory", err);
    return nullptr;
  }
  return be;
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  plans_.clear();
  release_cudnn();
  for (void* p : scratch_) cudaFree(p);
  for (const WeightCopy& c : weight_copies_) cudaFree(c.bf16);
  cudaFree(lt_workspace_);
  cudaFree(reduce_partials_);
  cudaFreeHost(reduce_host_);
  if (lt_ != nullptr) cublasLtDestroy(lt_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  return "cuda:" + std::to_string(device_) + " (" + device_name_ + ", matmuls " +
         cuda_precision_name(precision_) + attention_label(attention_) + ")";
}

size_t CudaBackend::available_memory_bytes() const {
  use_device();
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return 0;
  return free_bytes;
}

void* CudaBackend::alloc(size_t bytes) {
  use_device();
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky: clear it and report nullptr
    return nullptr;
  }
  return ptr;
}

void CudaBackend::free(void* ptr) {
  use_device();
  // The stream may still use the memory: wait before giving it back.
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  DIPACO_CUDA_CHECK(cudaFree(ptr));
}

void* CudaBackend::scratch(ScratchSlot slot, size_t bytes) {
  if (bytes > scratch_bytes_[slot]) {
    DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
    DIPACO_CUDA_CHECK(cudaFree(scratch_[slot]));
    scratch_[slot] = nullptr;
    size_t grown = scratch_held(bytes);
    if (cudaMalloc(&scratch_[slot], grown) != cudaSuccess) {
      cuda::fail("cudaMalloc (backend scratch)",
                 ("out of GPU memory for " + std::to_string(grown >> 20) +
                  " MiB of scratch (another process may be using the GPU): lower the batch size")
                     .c_str(),
                 __FILE__, __LINE__);
    }
    scratch_bytes_[slot] = grown;
  }
  return scratch_[slot];
}

void CudaBackend::fill_zero(void* dst, size_t bytes) {
  use_device();
  DIPACO_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
}

// The host buffer may be reused as soon as this returns, whatever kind of memory it is.
void CudaBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  use_device();
  DIPACO_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  use_device();
  DIPACO_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_device(void* dst, const void* src, size_t bytes) {
  use_device();
  DIPACO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() {
  use_device();
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace dipaco

dipaco::Backend* dipaco_cuda_create_backend(const dipaco::CudaBackendOptions* options, char* error,
                                            size_t error_size) {
  std::string failure;
  std::unique_ptr<dipaco::CudaBackend> backend = dipaco::CudaBackend::create(*options, &failure);
  std::snprintf(error, error_size, "%s", failure.c_str());
  return backend.release();
}
