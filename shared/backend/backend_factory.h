// Which backend a trainer or worker runs on, from the words people write in configs:
// "cpu", "cuda" (GPU 0), "cuda:N", or "auto" (the first GPU when this host has a usable one,
// otherwise the CPU). A CUDA choice that cannot be met is an error naming why, unless
// fallback_to_cpu is set: then the CPU backend runs and the reason is kept in the note.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "backend/cuda_runtime.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

struct BackendChoice {
  enum class Kind { kCpu, kCuda, kAuto };
  Kind kind = Kind::kAuto;
  int device = 0;       // for kCuda
  int cpu_threads = 0;  // 0 = all cores
  CudaMatmulPrecision precision = CudaMatmulPrecision::kBf16;
  bool fallback_to_cpu = false;
};

// Parses "cpu" | "cuda" | "cuda:N" | "auto" into choice->kind and choice->device.
Status parse_backend_name(std::string_view text, BackendChoice* choice);

struct CreatedBackend {
  std::unique_ptr<Backend> backend;
  std::string note;  // why the CPU runs instead of the asked-for GPU; empty otherwise
};

Result<CreatedBackend> create_backend(const BackendChoice& choice);

}  // namespace dipaco
