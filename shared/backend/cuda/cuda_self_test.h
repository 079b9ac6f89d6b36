// A quick end-to-end check that kernels launch and memory round-trips on a device: computes
// y = a*x + y for n elements on the GPU and compares with the same loop on the CPU.
#pragma once

#include <string>

namespace dipaco {

// Returns an empty string on success, otherwise what went wrong.
std::string cuda_axpy_self_test(int device, int n);

}  // namespace dipaco
