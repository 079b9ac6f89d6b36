// Which CUDA devices and libraries this host has, asked of the CUDA backend plugin.
//
// The CUDA backend is a plugin (libdipaco_cuda.so) so that dipaco starts on hosts without the
// NVIDIA runtime: these calls load it on first use and, when it cannot be loaded or no device
// is present, say why instead of failing.
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
  bool plugin_loaded = false;  // false: no CUDA backend here (not built, or runtime missing)
  int driver_version = 0;      // e.g. 13000 for 13.0; 0 when no driver is installed
  int runtime_version = 0;     // the cudart the plugin links
  size_t cudnn_version = 0;
  size_t cublaslt_version = 0;
  int nccl_version = 0;
  std::vector<CudaDeviceInfo> devices;
  std::string unavailable_reason;  // empty when at least one device is usable
};

CudaRuntimeInfo probe_cuda();

// Runs y = a*x + y for n elements on `device` and compares with the same loop on the CPU.
// Returns "" on success, otherwise what went wrong.
std::string cuda_axpy_self_test(int device, int n);

}  // namespace dipaco
