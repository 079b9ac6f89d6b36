// dipaco_cuda_probe: what the CUDA runtime, its libraries and the devices report.
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>

#include "backend/cuda/cuda_plugin_api.h"

int dipaco_cuda_plugin_abi() {
  return DIPACO_CUDA_PLUGIN_ABI;
}

void dipaco_cuda_probe(dipaco::CudaRuntimeInfo* result, int with_free_memory) {
  dipaco::CudaRuntimeInfo& info = *result;
  info.plugin_loaded = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  info.cudnn_version = cudnnGetVersion();
  info.cublaslt_version = cublasLtGetVersion();
  ncclGetVersion(&info.nccl_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess || info.driver_version == 0) {
    info.unavailable_reason = "no CUDA driver is installed";
    return;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    info.unavailable_reason = err != cudaSuccess
                                  ? std::string("no CUDA device: ") + cudaGetErrorString(err)
                                  : "no CUDA device";
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    dipaco::CudaDeviceInfo device;
    device.index = i;
    device.name = prop.name;
    device.compute_major = prop.major;
    device.compute_minor = prop.minor;
    device.total_bytes = prop.totalGlobalMem;
    device.multiprocessors = prop.multiProcessorCount;
    if (with_free_memory != 0 && cudaSetDevice(i) == cudaSuccess) {
      size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) device.free_bytes = free_bytes;
    }
    info.devices.push_back(device);
  }
  if (info.devices.empty()) info.unavailable_reason = "no CUDA device could be queried";
}
