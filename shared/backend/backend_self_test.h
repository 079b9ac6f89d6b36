// A quick check that a GPU computes what the CPU backend computes: one matmul (forward and
// backward), one attention (forward and backward) and a small model's gradients on the CUDA
// backend in fp32, each against the CpuBackend; plus the bf16 matmul rate. For `dipaco doctor`
// and a worker's preflight; the full cross-backend suite is tests/cuda.
#pragma once

#include <string>

namespace dipaco {

struct BackendSelfTest {
  std::string error;           // empty when every comparison is within tolerance
  double matmul_error = 0;     // max |gpu - cpu| / max |cpu|
  double attention_error = 0;  // same, over out and dqkv
  double model_error = 0;      // same, over the model's gradients
  double bf16_tflops = 0;      // 4096^3 bf16 products with fp32 accumulation
  // cuDNN fused attention (the bf16 training default) on the same attention shape:
  // whether the backend's probe let it run, and then its distance to the CPU backend.
  bool cudnn_attention_used = false;
  double cudnn_attention_error = 0;
};

BackendSelfTest cuda_backend_self_test(int device);

}  // namespace dipaco
