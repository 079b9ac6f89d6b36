// Which CUDA devices and libraries this host has. Safe to call on hosts without a driver:
// the answer then says why there is no device instead of failing.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

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
  int driver_version = 0;   // e.g. 13000 for 13.0; 0 when no driver is installed
  int runtime_version = 0;  // the cudart we link
  size_t cudnn_version = 0;
  size_t cublaslt_version = 0;
  int nccl_version = 0;
  std::vector<CudaDeviceInfo> devices;
  std::string unavailable_reason;  // empty when at least one device is usable
};

CudaRuntimeInfo probe_cuda();

}  // namespace dipaco
