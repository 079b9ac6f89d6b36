#include "backend/cpu/blas_runtime.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_features.h"

extern "C" char* openblas_get_corename(void);

namespace dipaco {

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name == nullptr ? std::string() : std::string(name);
}

std::string preferred_blas_core() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  std::string core = blas_core_name();
  // Generic fallbacks OpenBLAS uses for CPUs it cannot identify.
  bool generic = core == "Prescott" || core == "Core2" || core == "Nehalem" || core == "Atom" ||
                 core == "Katmai" || core == "Coppermine" || core == "Northwood" || core.empty();
  if (!generic) return "";
  const CpuFeatures& cpu = cpu_features();
  if (cpu.avx512f) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

void ensure_fast_blas_kernels(char** argv) {
  if (std::getenv("DIPACO_BLAS_REEXEC") != nullptr) return;
  std::string core = preferred_blas_core();
  if (core.empty()) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  setenv("DIPACO_BLAS_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with the slow kernels rather than not at all.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace dipaco
