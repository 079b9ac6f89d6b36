// OpenBLAS kernel selection. OpenBLAS picks its kernels when the library loads, from the CPU
// model it recognizes. On CPUs it does not know (new models, many cloud VMs reporting a
// generic "Intel Xeon Processor") it falls back to Prescott SSE3 kernels: 44 GFLOP/s instead
// of 255 on the same 2-core AVX-512 VM. Our binaries fix that before any BLAS call by
// re-executing themselves once with OPENBLAS_CORETYPE set from the features the CPU reports.
#pragma once

#include <string>

namespace dipaco {

// The OpenBLAS kernel family in use, e.g. "SkylakeX", "Haswell", "Prescott".
std::string blas_core_name();

// The OPENBLAS_CORETYPE this CPU should use, or "" when OpenBLAS's own choice is fine
// (it recognized the CPU, or the user set OPENBLAS_CORETYPE themselves).
std::string preferred_blas_core();

// Call first thing in main(): when preferred_blas_core() is non-empty, sets OPENBLAS_CORETYPE
// and re-executes /proc/self/exe with the same arguments (once; DIPACO_BLAS_REEXEC guards
// against loops). Returns only when no re-exec was needed or it failed.
void ensure_fast_blas_kernels(char** argv);

}  // namespace dipaco
