#include "backend/backend_factory.h"

#include <charconv>

#include "backend/cpu/cpu_backend.h"

namespace dipaco {

Status parse_backend_name(std::string_view text, BackendChoice* choice) {
  if (text == "cpu") {
    choice->kind = BackendChoice::Kind::kCpu;
    return Status::ok();
  }
  if (text == "auto") {
    choice->kind = BackendChoice::Kind::kAuto;
    return Status::ok();
  }
  if (text == "cuda") {
    choice->kind = BackendChoice::Kind::kCuda;
    choice->device = 0;
    return Status::ok();
  }
  if (text.starts_with("cuda:")) {
    std::string_view index = text.substr(5);
    int device = -1;
    auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), device);
    if (ec == std::errc() && end == index.data() + index.size() && device >= 0) {
      choice->kind = BackendChoice::Kind::kCuda;
      choice->device = device;
      return Status::ok();
    }
  }
  return invalid_argument("unknown backend '" + std::string(text) +
                          "' (choose cpu, cuda, cuda:N for GPU N, or auto)");
}

Result<CreatedBackend> create_backend(const BackendChoice& choice) {
  CreatedBackend created;
  if (choice.kind != BackendChoice::Kind::kCpu) {
    CudaBackendOptions options;
    options.device = choice.device;
    options.precision = choice.precision;
    std::string reason;
    if (choice.kind == BackendChoice::Kind::kAuto) {
      CudaRuntimeInfo info = probe_cuda();
      if (info.devices.empty()) reason = info.unavailable_reason;
    }
    if (reason.empty()) {
      auto gpu = create_cuda_backend(options);
      if (gpu.is_ok()) {
        created.backend = std::move(gpu).value();
        return created;
      }
      reason = gpu.status().message();
    }
    if (choice.kind == BackendChoice::Kind::kCuda && !choice.fallback_to_cpu) {
      return unavailable(reason + " (set the backend to cpu, or allow falling back to the CPU)");
    }
    created.note = (choice.kind == BackendChoice::Kind::kAuto ? "no usable GPU, training on the "
                                                                "CPU: "
                                                              : "falling back to the CPU: ") +
                   reason;
  }
  created.backend = std::make_unique<CpuBackend>(choice.cpu_threads);
  return created;
}

}  // namespace dipaco
