// Linear layers on cuBLASLt: out = inp @ W^T and its two backward products.
//
// Memory is row-major fp32; cuBLASLt is column-major, so each row-major product is issued as
// the transposed column-major one (a row-major X[N, C] is a column-major X^T[C, N]). In bf16
// mode the operands are converted to bf16 in backend scratch first and multiplied with fp32
// accumulation into fp32 outputs; TF32 and fp32 modes multiply the fp32 memory directly.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"

namespace dipaco {

namespace {

__global__ void to_bf16_scalar_kernel(__nv_bfloat16* dst, const float* src, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = __float2bfloat16(src[i]);
}

// Four floats per thread; src must be 16-byte aligned.
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, size_t count) {
  size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i + 3 < count) {
    float4 v = *reinterpret_cast<const float4*>(src + i);
    dst[i] = __float2bfloat16(v.x);
    dst[i + 1] = __float2bfloat16(v.y);
    dst[i + 2] = __float2bfloat16(v.z);
    dst[i + 3] = __float2bfloat16(v.w);
  } else {
    for (; i < count; ++i) dst[i] = __float2bfloat16(src[i]);
  }
}

// The largest power of two (at most 256) that divides the address: cuBLASLt assumes 256-byte
// aligned operands unless told otherwise, and parameter slices are only 4-byte aligned.
int alignment_of(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 4 && a % align != 0) align /= 2;
  return align;
}

// A column-major operand of rows x cols with leading dimension ld spans this many elements.
size_t span(int rows, int cols, int ld) {
  return static_cast<size_t>(ld) * (cols - 1) + rows;
}

}  // namespace

// Built once per shape and kept: descriptors plus the algorithm cuBLASLt's heuristic picks.
const CudaBackend::GemmPlan& CudaBackend::gemm_plan(bool transpose_a, bool transpose_b, int m,
                                                    int n, int k, int lda, int ldb, int ldc,
                                                    const GemmAlignment& align) {
  auto key =
      std::make_tuple(transpose_a, transpose_b, m, n, k, lda, ldb, ldc, align.a, align.b, align.c);
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto plan = std::make_unique<GemmPlan>();
  const bool bf16 = precision_ == CudaMatmulPrecision::kBf16;
  const cudaDataType_t operand = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      precision_ == CudaMatmulPrecision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DIPACO_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F));
  cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  // Stored shapes (before op): A is m x k (or k x m transposed), B is k x n (or n x k).
  DIPACO_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&plan->a, operand, transpose_a ? k : m, transpose_a ? m : k, lda));
  DIPACO_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&plan->b, operand, transpose_b ? n : k, transpose_b ? k : n, ldb));
  DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, m, n, ldc));

  cublasLtMatmulPreference_t pref = nullptr;
  DIPACO_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                           &lt_workspace_bytes_, sizeof lt_workspace_bytes_));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, plan->desc, plan->a, plan->b, plan->c,
                                                     plan->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    std::string shape = "m=" + std::to_string(m) + " n=" + std::to_string(n) +
                        " k=" + std::to_string(k) + " (" + cuda_precision_name(precision_) + ")";
    cuda::fail(
        "cublasLtMatmulAlgoGetHeuristic",
        (std::string("no algorithm for ") + shape + ": " + cublasLtGetStatusString(st)).c_str(),
        __FILE__, __LINE__);
  }
  plan->algo = result.algo;
  return *plans_.emplace(key, std::move(plan)).first->second;
}

void CudaBackend::convert_to_bf16(__nv_bfloat16* dst, const float* src, size_t count) {
  if (reinterpret_cast<uintptr_t>(src) % 16 == 0) {
    to_bf16_kernel<<<cuda::grid_for((count + 3) / 4, 256), 256, 0, stream_>>>(dst, src, count);
  } else {
    to_bf16_scalar_kernel<<<cuda::grid_for(count, 256), 256, 0, stream_>>>(dst, src, count);
  }
  DIPACO_CUDA_CHECK_LAUNCH();
}

void CudaBackend::gemm(bool transpose_a, bool transpose_b, int m, int n, int k, const float* A,
                       int lda, const float* B, int ldb, float* C, int ldc, float beta) {
  const void* a = A;
  const void* b = B;
  if (precision_ == CudaMatmulPrecision::kBf16) {
    size_t a_count = transpose_a ? span(k, m, lda) : span(m, k, lda);
    size_t b_count = transpose_b ? span(n, k, ldb) : span(k, n, ldb);
    auto* a16 = static_cast<__nv_bfloat16*>(scratch(kBf16A, a_count * sizeof(__nv_bfloat16)));
    auto* b16 = static_cast<__nv_bfloat16*>(scratch(kBf16B, b_count * sizeof(__nv_bfloat16)));
    convert_to_bf16(a16, A, a_count);
    convert_to_bf16(b16, B, b_count);
    a = a16;
    b = b16;
  }
  const GemmPlan& plan = gemm_plan(transpose_a, transpose_b, m, n, k, lda, ldb, ldc,
                                   {alignment_of(a), alignment_of(b), alignment_of(C)});
  const float alpha = 1.0f;
  DIPACO_CUBLAS_CHECK(cublasLtMatmul(lt_, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, C, plan.c,
                                     C, plan.c, &plan.algo, lt_workspace_, lt_workspace_bytes_,
                                     stream_));
}

// out[N, OC] = inp[N, C] @ weight[OC, C]^T  <=>  out^T[OC, N] = (weight^T)^T[OC, C] inp^T[C, N]
void CudaBackend::matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                                 int OC) {
  use_device();
  gemm(true, false, OC, N, C, weight, C, inp, C, out, OC, 0.0f);
}

// dinp[N, C] = dout[N, OC] @ weight[OC, C]  <=>  dinp^T[C, N] = weight^T[C, OC] dout^T[OC, N]
// dweight[OC, C] += dout^T inp  <=>  dweight^T[C, OC] += inp^T[C, N] (dout^T)^T[N, OC]
void CudaBackend::matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, int N, int C, int OC) {
  use_device();
  if (dinp != nullptr) gemm(false, false, C, N, OC, weight, C, dout, OC, dinp, C, 0.0f);
  gemm(false, true, C, OC, N, inp, C, dout, OC, dweight, C, 1.0f);
}

}  // namespace dipaco
