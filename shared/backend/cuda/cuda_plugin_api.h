// Entry points of libdipaco_cuda.so, resolved with dlsym by shared/backend/cuda_runtime.cc.
// The plugin and the binaries are built together from one tree, so C++ types may cross this
// boundary; the ABI number guards against mixing installs.
#pragma once

#include <cstddef>

#include "backend/cuda_runtime.h"
#include "tensor/island_all_reduce.h"

// 3: dipaco_cuda_create_island_all_reduce.
// 4: Backend's matmul weight copies and scratch queries; CudaBackendOptions::bf16_weight_copies;
//    dipaco_cuda_probe's with_free_memory.
#define DIPACO_CUDA_PLUGIN_ABI 4

extern "C" {
int dipaco_cuda_plugin_abi();
// with_free_memory != 0: also cudaMemGetInfo on every device (which makes a context on each).
void dipaco_cuda_probe(dipaco::CudaRuntimeInfo* info, int with_free_memory);
// Writes "" or the failure into error (NUL-terminated, at most error_size bytes).
void dipaco_cuda_axpy_self_test(int device, int n, char* error, size_t error_size);
// A CudaBackend for options->device, owned by the caller; nullptr and the reason in error.
dipaco::Backend* dipaco_cuda_create_backend(const dipaco::CudaBackendOptions* options, char* error,
                                            size_t error_size);
// An NCCL all-reduce over an island of `count` >= 1 backends made by dipaco_cuda_create_backend,
// backends[i] on GPU devices[i] (all different); owned by the caller, the backends outlive it.
// nullptr and the reason in error (NCCL's own words) when the communicators cannot be made.
dipaco::IslandAllReduce* dipaco_cuda_create_island_all_reduce(dipaco::Backend* const* backends,
                                                              const int* devices, int count,
                                                              char* error, size_t error_size);
}
