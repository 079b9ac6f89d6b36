// dipaco doctor: what this host can run, and whether it works.
#include <cblas.h>

#include <cstdio>

#include "backend/backend_self_test.h"
#include "backend/cpu/blas_runtime.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cuda_runtime.h"
#include "cli/commands.h"
#include "util/arg_parser.h"

namespace dipaco::cli {
namespace {

double gib(size_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
}

std::string version_text(long long encoded, int major_div, int minor_div, int minor_mod) {
  return std::to_string(encoded / major_div) + "." +
         std::to_string((encoded / minor_div) % minor_mod);
}

}  // namespace

int cmd_doctor(const Args& args) {
  ArgParser parser("dipaco doctor",
                   "Check this host: CPU features, BLAS, CUDA devices and libraries.");
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco doctor: %s\n\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  std::printf("dipaco %s\n", DIPACO_VERSION);
  std::printf("cpu:    %s\n", describe_cpu_features(cpu_features()).c_str());
  std::printf("blas:   %s, kernels %s, %d threads\n", openblas_get_config(),
              blas_core_name().c_str(), openblas_get_num_threads());
  int failures = 0;
  CudaRuntimeInfo cuda = probe_cuda(/*with_free_memory=*/true);
  if (!cuda.plugin_loaded) {
    std::printf("cuda:   %s\n", cuda.unavailable_reason.c_str());
  } else {
    std::printf("cuda:   runtime %s, cuDNN %zu, cuBLASLt %zu, NCCL %d\n",
                version_text(cuda.runtime_version, 1000, 10, 100).c_str(), cuda.cudnn_version,
                cuda.cublaslt_version, cuda.nccl_version);
  }
  if (cuda.plugin_loaded && cuda.devices.empty()) {
    std::printf("gpu:    none (%s); training runs on the CPU backend\n",
                cuda.unavailable_reason.c_str());
  }
  for (const auto& device : cuda.devices) {
    std::printf("gpu %d:  %s, sm_%d%d, %.1f GiB (%.1f GiB free), %d SMs, driver %s\n", device.index,
                device.name.c_str(), device.compute_major, device.compute_minor,
                gib(device.total_bytes), gib(device.free_bytes), device.multiprocessors,
                version_text(cuda.driver_version, 1000, 10, 100).c_str());
    std::string error = cuda_axpy_self_test(device.index, 1 << 20);
    std::printf("        kernel self-test: %s\n", error.empty() ? "ok" : error.c_str());
    if (!error.empty()) ++failures;
    BackendSelfTest check = cuda_backend_self_test(device.index);
    if (check.error.empty()) {
      std::printf(
          "        backend self-test: ok (vs the CPU backend: matmul %.1e, attention %.1e, model "
          "gradients %.1e); bf16 matmul %.0f TFLOP/s\n",
          check.matmul_error, check.attention_error, check.model_error, check.bf16_tflops);
      if (check.cudnn_attention_used) {
        std::printf("        cuDNN attention (the bf16 default): ok, vs the CPU backend %.1e\n",
                    check.cudnn_attention_error);
      } else {
        std::printf(
            "        cuDNN attention (the bf16 default): not used here (reason above); the "
            "cuBLASLt path runs instead\n");
      }
    } else {
      std::printf("        backend self-test: %s\n", check.error.c_str());
      ++failures;
    }
  }
  return failures == 0 ? kExitOk : kExitFailure;
}

}  // namespace dipaco::cli
