// Linear layers on cuBLASLt: out = inp @ W^T and its two backward products.
//
// Memory is row-major fp32; cuBLASLt is column-major, so each row-major product is issued as
// the transposed column-major one (a row-major X[N, C] is a column-major X^T[C, N]). In bf16
// mode the operands are converted to bf16 in backend scratch first and multiplied with fp32
// accumulation into fp32 outputs (weights come from their bf16 copy, cuda_weight_copies.cu);
// TF32 and fp32 modes multiply the fp32 memory directly.
#include <algorithm>

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
// aligned operands unless told otherwise, and parameter slices are only 4-byte aligned (their
// bf16 copies 2-byte aligned at an odd offset).
int alignment_of(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 2 && a % align != 0) align /= 2;
  return align;
}

// A column-major operand of rows x cols with leading dimension ld spans this many elements.
size_t span(int rows, int cols, int ld) {
  return static_cast<size_t>(ld) * (cols - 1) + rows;
}

}  // namespace

// Built once per shape and kept: descriptors plus the algorithm cuBLASLt's heuristic picks.
const CudaBackend::GemmPlan& CudaBackend::gemm_plan(const GemmCall& g,
                                                    CudaMatmulPrecision precision,
                                                    const GemmAlignment& align) {
  const GemmKey key = {g.transpose_a, g.transpose_b, g.m,        g.n,
                       g.k,           g.lda,         g.ldb,      g.ldc,
                       g.batch,       g.stride_a,    g.stride_b, g.stride_c,
                       align.a,       align.b,       align.c,    static_cast<int64_t>(precision)};
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto plan = std::make_unique<GemmPlan>();
  const bool bf16 = precision == CudaMatmulPrecision::kBf16;
  const cudaDataType_t operand = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      precision == CudaMatmulPrecision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DIPACO_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F));
  cublasOperation_t op_a = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  // Stored shapes (before op): A is m x k (or k x m transposed), B is k x n (or n x k).
  DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, operand, g.transpose_a ? g.k : g.m,
                                                 g.transpose_a ? g.m : g.k, g.lda));
  DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, operand, g.transpose_b ? g.n : g.k,
                                                 g.transpose_b ? g.k : g.n, g.ldb));
  DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, g.m, g.n, g.ldc));
  if (g.batch > 1) {
    const int32_t batch = g.batch;
    const cublasLtMatrixLayout_t layouts[3] = {plan->a, plan->b, plan->c};
    const int64_t strides[3] = {g.stride_a, g.stride_b, g.stride_c};
    for (int i = 0; i < 3; ++i) {
      DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
      DIPACO_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]));
    }
  }

  cublasLtMatmulPreference_t pref = nullptr;
  DIPACO_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  DIPACO_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                           &lt_workspace_bytes_, sizeof lt_workspace_bytes_));
  const uint32_t align_bytes[4] = {static_cast<uint32_t>(align.a), static_cast<uint32_t>(align.b),
                                   static_cast<uint32_t>(align.c), static_cast<uint32_t>(align.c)};
  const cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    DIPACO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &align_bytes[i],
                                                             sizeof(uint32_t)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, plan->desc, plan->a, plan->b, plan->c,
                                                     plan->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    std::string shape = "m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) +
                        " k=" + std::to_string(g.k) + " batch=" + std::to_string(g.batch) + " (" +
                        cuda_precision_name(precision) + ")";
    cuda::fail(
        "cublasLtMatmulAlgoGetHeuristic",
        (std::string("no algorithm for ") + shape + ": " + cublasLtGetStatusString(st)).c_str(),
        __FILE__, __LINE__);
  }
  plan->algo = result.algo;
  return *plans_.emplace(key, std::move(plan)).first->second;
}

void CudaBackend::convert_to_bf16(__nv_bfloat16* dst, const float* src, size_t count) {
  if (count == 0) return;  // an empty grid is not a valid launch
  if (reinterpret_cast<uintptr_t>(src) % 16 == 0) {
    to_bf16_kernel<<<cuda::grid_for((count + 3) / 4, 256), 256, 0, stream_>>>(dst, src, count);
  } else {
    to_bf16_scalar_kernel<<<cuda::grid_for(count, 256), 256, 0, stream_>>>(dst, src, count);
  }
  DIPACO_CUDA_CHECK_LAUNCH();
}

// Weights are read from their bf16 copy; everything else is converted into `slot` now.
const __nv_bfloat16* CudaBackend::bf16_operand(const float* x, size_t count, ScratchSlot slot) {
  if (const __nv_bfloat16* copy = weight_copy_of(x, count)) return copy;
  auto* converted = static_cast<__nv_bfloat16*>(scratch(slot, count * sizeof(__nv_bfloat16)));
  convert_to_bf16(converted, x, count);
  return converted;
}

void CudaBackend::gemm(const GemmCall& g, CudaMatmulPrecision precision) {
  const void* a = g.A;
  const void* b = g.B;
  if (precision == CudaMatmulPrecision::kBf16) {
    if (g.batch != 1)
      cuda::fail("gemm", "bf16 operands are converted unbatched", __FILE__, __LINE__);
    size_t a_count = g.transpose_a ? span(g.k, g.m, g.lda) : span(g.m, g.k, g.lda);
    size_t b_count = g.transpose_b ? span(g.n, g.k, g.ldb) : span(g.k, g.n, g.ldb);
    a = g.A_bf16 != nullptr ? g.A_bf16 : bf16_operand(g.A, a_count, kBf16A);
    b = g.B_bf16 != nullptr ? g.B_bf16 : bf16_operand(g.B, b_count, kBf16B);
  }
  // Every batch's matrix must have the alignment promised for the first.
  const int64_t operand_bytes = precision == CudaMatmulPrecision::kBf16 ? 2 : 4;
  auto align = [&](const void* p, int64_t stride_bytes) {
    int base = alignment_of(p);
    if (g.batch > 1)
      base = std::min(base, alignment_of(reinterpret_cast<const void*>(stride_bytes)));
    return base;
  };
  // cuBLASLt reads C and writes D through one layout: the alignment promised is both's.
  const float* c_in = g.C_in != nullptr ? g.C_in : g.C;
  const GemmPlan& plan =
      gemm_plan(g, precision,
                {align(a, g.stride_a * operand_bytes), align(b, g.stride_b * operand_bytes),
                 std::min(align(g.C, g.stride_c * 4), align(c_in, g.stride_c * 4))});
  DIPACO_CUBLAS_CHECK(cublasLtMatmul(lt_, plan.desc, &g.alpha, a, plan.a, b, plan.b, &g.beta, c_in,
                                     plan.c, g.C, plan.c, &plan.algo, lt_workspace_,
                                     lt_workspace_bytes_, stream_));
}

// In bf16, gemm() converts A and B into the kBf16A and kBf16B scratch: A is the weight in the
// forward and dinp products (unless read from its bf16 copy) and the input in the dweight
// product; B is the input in the forward product and dout in both backward ones.
//
// Every precision also counts the kernel modules that the CUDA runtime, cuBLASLt and cuDNN load
// into device memory at their first use (lazy loading): a first training step on an H100 (CUDA
// 13.0, cuDNN 9.19) used 14 MiB (cuBLASLt attention) and 28 MiB (cuDNN attention) more than the
// budget without this reserve.
size_t CudaBackend::matmul_scratch_bytes(size_t max_input, size_t max_output,
                                         size_t max_weight) const {
  constexpr size_t kLazyModuleReserveBytes = size_t{64} << 20;
  if (precision_ != CudaMatmulPrecision::kBf16) return kLazyModuleReserveBytes;
  const size_t a = std::max(max_input, keep_weight_copies_ ? 0 : max_weight);
  const size_t b = std::max(max_input, max_output);
  return kLazyModuleReserveBytes + scratch_held(a * sizeof(__nv_bfloat16)) +
         scratch_held(b * sizeof(__nv_bfloat16));
}

// out[N, OC] = inp[N, C] @ weight[OC, C]^T  <=>  out^T[OC, N] = (weight^T)^T[OC, C] inp^T[C, N]
CudaBackend::GemmCall CudaBackend::forward_call(float* out, const float* inp, const float* weight,
                                                int N, int C, int OC) {
  GemmCall g;
  g.transpose_a = true;
  g.m = OC, g.n = N, g.k = C;
  g.A = weight, g.lda = C;
  g.B = inp, g.ldb = C;
  g.C = out, g.ldc = OC;
  return g;
}

void CudaBackend::matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                                 int OC) {
  use_device();
  gemm(forward_call(out, inp, weight, N, C, OC), precision_);
}

// The residual is the product's C operand with beta = 1, out its D: cuBLASLt reads the
// residual and writes the sum in the epilogue, with no copy and no separate pass.
void CudaBackend::matmul_forward_residual(float* out, const float* inp, const float* weight,
                                          const float* residual, int N, int C, int OC) {
  use_device();
  GemmCall g = forward_call(out, inp, weight, N, C, OC);
  g.C_in = residual;
  g.beta = 1.0f;
  gemm(g, precision_);
}

// dinp[N, C] = dout[N, OC] @ weight[OC, C]  <=>  dinp^T[C, N] = weight^T[C, OC] dout^T[OC, N]
// dweight[OC, C] += dout^T inp  <=>  dweight^T[C, OC] += inp^T[C, N] (dout^T)^T[N, OC]
// Both products read dout as their B operand, so in bf16 it is converted once for both (for the
// LM head that is the [N, V] dlogits).
void CudaBackend::matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, int N, int C, int OC) {
  use_device();
  const __nv_bfloat16* dout16 = precision_ == CudaMatmulPrecision::kBf16 && dinp != nullptr
                                    ? bf16_operand(dout, static_cast<size_t>(N) * OC, kBf16B)
                                    : nullptr;
  if (dinp != nullptr) {
    GemmCall g;
    g.m = C, g.n = N, g.k = OC;
    g.A = weight, g.lda = C;
    g.B = dout, g.ldb = OC;
    g.B_bf16 = dout16;
    g.C = dinp, g.ldc = C;
    gemm(g, precision_);
  }
  GemmCall g;
  g.transpose_b = true;
  g.m = C, g.n = OC, g.k = N;
  g.A = inp, g.lda = C;
  g.B = dout, g.ldb = OC;
  g.B_bf16 = dout16;
  g.C = dweight, g.ldc = C;
  g.beta = 1.0f;
  gemm(g, precision_);
}

}  // namespace dipaco
