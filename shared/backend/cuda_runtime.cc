#include "backend/cuda_runtime.h"

#include <mutex>

#include "backend/cuda/cuda_plugin_api.h"
#include "util/plugin_library.h"

namespace dipaco {
namespace {

struct CudaPlugin {
  decltype(&dipaco_cuda_plugin_abi) abi = nullptr;
  decltype(&dipaco_cuda_probe) probe = nullptr;
  decltype(&dipaco_cuda_axpy_self_test) axpy_self_test = nullptr;
  decltype(&dipaco_cuda_create_backend) create_backend = nullptr;
  decltype(&dipaco_cuda_create_island_all_reduce) create_island_all_reduce = nullptr;
};

Result<const CudaPlugin*> plugin() {
  static std::once_flag once;
  static CudaPlugin api;
  static Status status;
  std::call_once(once, [] {
    auto handle = load_plugin({"libdipaco_cuda.so", "DIPACO_CUDA_PLUGIN",
                               DIPACO_CUDA_PLUGIN_INSTALL_PATH, DIPACO_CUDA_PLUGIN_BUILD_PATH},
                              RTLD_NOW | RTLD_LOCAL);
    if (!handle.is_ok()) {
      status = handle.status();
      return;
    }
    bool ok = bind_plugin_symbol(*handle, "dipaco_cuda_plugin_abi", &api.abi) &&
              bind_plugin_symbol(*handle, "dipaco_cuda_probe", &api.probe) &&
              bind_plugin_symbol(*handle, "dipaco_cuda_axpy_self_test", &api.axpy_self_test) &&
              bind_plugin_symbol(*handle, "dipaco_cuda_create_backend", &api.create_backend) &&
              bind_plugin_symbol(*handle, "dipaco_cuda_create_island_all_reduce",
                                 &api.create_island_all_reduce);
    if (!ok || api.abi() != DIPACO_CUDA_PLUGIN_ABI) {
      status = failed_precondition(
          "libdipaco_cuda.so is from another dipaco version (ABI mismatch); reinstall it");
    }
  });
  if (!status.is_ok()) return status;
  return &api;
}

}  // namespace

CudaRuntimeInfo probe_cuda(bool with_free_memory) {
  CudaRuntimeInfo info;
  auto api = plugin();
  if (!api.is_ok()) {
    info.unavailable_reason = "CUDA backend not available: " + api.status().message();
    return info;
  }
  (*api)->probe(&info, with_free_memory ? 1 : 0);
  return info;
}

std::vector<int> usable_gpu_indices(const CudaRuntimeInfo& info) {
  std::vector<int> usable;
  for (const CudaDeviceInfo& d : info.devices) {
    if (d.compute_major >= 8) usable.push_back(d.index);
  }
  return usable;
}

int usable_gpu_count(const CudaRuntimeInfo& info) {
  return static_cast<int>(usable_gpu_indices(info).size());
}

std::string no_usable_gpu_reason(const CudaRuntimeInfo& info) {
  if (info.devices.empty()) return info.unavailable_reason;
  const CudaDeviceInfo& d = info.devices.front();
  return "GPU " + std::to_string(d.index) + " (" + d.name + ") has compute capability " +
         std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor) +
         "; dipaco's CUDA backend needs 8.0 (Ampere) or newer";
}

std::string cuda_axpy_self_test(int device, int n) {
  auto api = plugin();
  if (!api.is_ok()) return api.status().message();
  char error[512] = {0};
  (*api)->axpy_self_test(device, n, error, sizeof error);
  return error;
}

Result<CudaMatmulPrecision> parse_cuda_precision(std::string_view text) {
  if (text == "bf16") return CudaMatmulPrecision::kBf16;
  if (text == "tf32") return CudaMatmulPrecision::kTf32;
  if (text == "fp32") return CudaMatmulPrecision::kFp32;
  return invalid_argument("unknown CUDA matmul precision '" + std::string(text) +
                          "' (choose bf16, tf32 or fp32)");
}

Result<CudaAttention> parse_cuda_attention(std::string_view text) {
  if (text == "gemm") return CudaAttention::kGemm;
  if (text == "kernels") return CudaAttention::kKernels;
  if (text == "cudnn") return CudaAttention::kCudnn;
  return invalid_argument("unknown CUDA attention path '" + std::string(text) +
                          "' (choose gemm, kernels or cudnn)");
}

CudaAttention default_training_attention(CudaMatmulPrecision precision) {
  return precision == CudaMatmulPrecision::kBf16 ? CudaAttention::kCudnn : CudaAttention::kGemm;
}

Result<std::unique_ptr<Backend>> create_cuda_backend(const CudaBackendOptions& options) {
  auto api = plugin();
  if (!api.is_ok()) return unavailable("CUDA backend not available: " + api.status().message());
  char error[512] = {0};
  std::unique_ptr<Backend> backend((*api)->create_backend(&options, error, sizeof error));
  if (backend == nullptr) return unavailable(std::string("CUDA backend: ") + error);
  return backend;
}

Result<std::unique_ptr<IslandAllReduce>> create_cuda_island_all_reduce(
    const std::vector<Backend*>& backends, const std::vector<int>& devices) {
  if (backends.size() != devices.size() || devices.empty()) {
    return invalid_argument("an NCCL island needs one backend per GPU and at least one GPU, got " +
                            std::to_string(backends.size()) + " backends for " +
                            std::to_string(devices.size()) + " GPUs");
  }
  auto api = plugin();
  if (!api.is_ok()) return unavailable("CUDA backend not available: " + api.status().message());
  char error[1024] = {0};
  std::unique_ptr<IslandAllReduce> island((*api)->create_island_all_reduce(
      backends.data(), devices.data(), static_cast<int>(devices.size()), error, sizeof error));
  if (island == nullptr) return unavailable(std::string("NCCL island: ") + error);
  return island;
}

}  // namespace dipaco
