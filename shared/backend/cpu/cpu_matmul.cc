// Linear layers on OpenBLAS sgemm. Each pool thread runs a single-threaded sgemm on its slice:
// forward and dinp split the N rows, dweight splits the OC rows of the weight gradient.
#include <cblas.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace dipaco {

// out[N, OC] = inp[N, C] @ weight[OC, C]^T
void CpuBackend::matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                                int OC) {
  pool_.parallel_for(N, int64_t{C} * OC, [&](int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(end - begin), OC, C, 1.0f,
                inp + begin * C, C, weight, C, 0.0f, out + begin * OC, OC);
  });
}

// out[N, OC] = residual + inp @ weight^T: each row block copies its residual rows (unless out
// is the residual) and lets sgemm add the product into them (beta = 1).
void CpuBackend::matmul_forward_residual(float* out, const float* inp, const float* weight,
                                         const float* residual, int N, int C, int OC) {
  pool_.parallel_for(N, int64_t{C} * OC, [&](int64_t begin, int64_t end) {
    if (out != residual) {
      std::memcpy(out + begin * OC, residual + begin * OC,
                  static_cast<size_t>(end - begin) * OC * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(end - begin), OC, C, 1.0f,
                inp + begin * C, C, weight, C, 1.0f, out + begin * OC, OC);
  });
}

// dinp[N, C] = dout[N, OC] @ weight[OC, C]; dweight[OC, C] += dout^T @ inp[N, C]
void CpuBackend::matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                 const float* weight, int N, int C, int OC) {
  if (dinp != nullptr) {
    pool_.parallel_for(N, int64_t{C} * OC, [&](int64_t begin, int64_t end) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(end - begin), C, OC,
                  1.0f, dout + begin * OC, OC, weight, C, 0.0f, dinp + begin * C, C);
    });
  }
  pool_.parallel_for(OC, int64_t{N} * C, [&](int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(end - begin), C, N, 1.0f,
                dout + begin, OC, inp, C, 1.0f, dweight + begin * C, C);
  });
}

}  // namespace dipaco
