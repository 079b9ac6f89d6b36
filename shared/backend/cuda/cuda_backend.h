// CudaBackend: the Backend interface on one NVIDIA GPU (lives in libdipaco_cuda.so).
//
// Storage is fp32 everywhere (master weights, gradients, optimizer state, activations), as the
// model code expects; the matmuls run on tensor cores through cuBLASLt in the precision the
// options ask for: bf16 operands with fp32 accumulation (default), TF32, or full fp32 (the
// reference, used by the cross-backend tests). In bf16 the model's weights also have a bf16
// compute copy, written by the AdamW kernel next to the fp32 master weights. Every other op is a
// kernel of our own, one file per op family, each with its CPU twin in backend/cpu/ and a
// cross-backend test in tests/cuda.
//
// All work is queued on one stream; copies to the host and the reductions that return a value
// synchronize it. Results are deterministic for a given GPU and precision: no atomics, and every
// sum has a fixed order. A CUDA error inside an op means the context is lost: the op prints
// what failed and where and aborts the process (a worker's supervisor restarts it).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cuda/cudnn_graph.h"
#include "backend/cuda/cudnn_sdpa_graphs.h"
#include "backend/cuda_runtime.h"
#include "tensor/backend.h"

namespace dipaco::cuda {

[[noreturn]] void fail(const char* call, const char* error, const char* file, int line);

}  // namespace dipaco::cuda

#define DIPACO_CUDA_CHECK(call)                                                         \
  do {                                                                                  \
    cudaError_t dipaco_err_ = (call);                                                   \
    if (dipaco_err_ != cudaSuccess)                                                     \
      ::dipaco::cuda::fail(#call, cudaGetErrorString(dipaco_err_), __FILE__, __LINE__); \
  } while (false)

#define DIPACO_CUBLAS_CHECK(call)                                                               \
  do {                                                                                          \
    cublasStatus_t dipaco_status_ = (call);                                                     \
    if (dipaco_status_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::dipaco::cuda::fail(#call, cublasLtGetStatusString(dipaco_status_), __FILE__, __LINE__); \
  } while (false)

// After every kernel launch: catches bad launch configurations at the op that made them.
#define DIPACO_CUDA_CHECK_LAUNCH() DIPACO_CUDA_CHECK(cudaGetLastError())

namespace dipaco {

class CudaBackend final : public Backend {
 public:
  // Sets up `options.device`: stream, cuBLASLt handle and workspace. nullptr and *error on failure.
  static std::unique_ptr<CudaBackend> create(const CudaBackendOptions& options, std::string* error);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;
  size_t available_memory_bytes() const override;

  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void fill_zero(void* dst, size_t bytes) override;
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy_device(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;

  void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                         int C) override;
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                          int C) override;

  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                       float eps) override;
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                        const float* weight, const float* rstd, int N, int C) override;

  void matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                      int OC) override;
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC) override;
  void matmul_forward_residual(float* out, const float* inp, const float* weight,
                               const float* residual, int N, int C, int OC) override;

  void rope_forward(float* x, const float* cos, const float* sin, int N, int T, int n_heads, int hd,
                    int row_stride) override;
  void rope_backward(float* dx, const float* cos, const float* sin, int N, int T, int n_heads,
                     int hd, int row_stride) override;

  void attention_forward(float* out, float* saved, const float* qkv, int B, int T, int H, int KVH,
                         int hd) override;
  void attention_backward(float* dqkv, float* workspace, const float* dout, const float* qkv,
                          const float* out, const float* saved, int B, int T, int H, int KVH,
                          int hd) override;
  size_t attention_saved_floats(int B, int T, int H, int KVH, int hd) const override;
  size_t attention_workspace_floats(int B, int T, int H, int KVH, int hd) const override;

  void swiglu_forward(float* out, const float* h13, int N, int F) override;
  void swiglu_backward(float* dh13, const float* dout, const float* h13, int N, int F) override;

  void residual_forward(float* out, const float* a, const float* b, size_t count) override;
  void add_inplace(float* dst, const float* src, size_t count) override;
  void scale_inplace(float* x, float s, size_t count) override;

  void crossentropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                            int N, int V) override;
  void crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                             const int32_t* targets, int N, int V, float dloss) override;

  double sum_squares(const float* x, size_t count) override;
  double sum(const float* x, size_t count) override;

  void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, float lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                    int64_t step) override;

  void subtract(float* out, const float* a, const float* b, size_t count) override;
  bool error_feedback_encode(uint8_t* payload, float* residual, void* workspace, const float* x,
                             size_t count, WireDtype dtype) override;
  size_t error_feedback_workspace_bytes(size_t count) const override;

  size_t matmul_scratch_bytes(size_t max_input, size_t max_output,
                              size_t max_weight) const override;
  size_t attention_scratch_bytes(int B, int T, int H, int KVH, int hd) const override;
  size_t matmul_weight_copy_bytes(size_t count) const override;
  bool bind_matmul_weights(const float* weights, size_t count) override;
  void refresh_matmul_weights(const float* slice, size_t count) override;
  void release_matmul_weights(const float* weights) override;

 private:
  // Scratch owned by the backend, grown on first use of a larger shape (so only the first
  // training step allocates), never shrunk. One slot per concurrent use.
  enum ScratchSlot {
    kBf16A,
    kBf16B,
    kPartials,
    kAttentionBf16,   // cuDNN attention's bf16 copies of qkv, out, dout and dqkv
    kCudnnWorkspace,  // cuDNN attention's workspace, row sums and fp32 dq accumulator
    kScratchSlots
  };
  void* scratch(ScratchSlot slot, size_t bytes);
  // What scratch() holds after requests of up to `bytes` (it grows by a quarter more).
  static size_t scratch_held(size_t bytes) { return bytes + bytes / 4; }

  // Column-major C[m, n] = alpha op(A) op(B) + beta C, all fp32 in memory, `batch` times with
  // the strides (in floats) between the batches' matrices. lda/ldb/ldc in elements.
  struct GemmCall {
    bool transpose_a = false, transpose_b = false;
    int m = 0, n = 0, k = 0;
    const float* A = nullptr;
    int lda = 0;
    const float* B = nullptr;
    int ldb = 0;
    float* C = nullptr;
    int ldc = 0;
    // What beta scales when it is not C itself (same layout): C = alpha op(A) op(B) + beta C_in.
    const float* C_in = nullptr;
    // bf16 only: A or B already converted (the same elements and layout), not converted again.
    const __nv_bfloat16* A_bf16 = nullptr;
    const __nv_bfloat16* B_bf16 = nullptr;
    int batch = 1;
    int64_t stride_a = 0, stride_b = 0, stride_c = 0;
    float alpha = 1.0f, beta = 0.0f;
  };
  // bf16 converts A and B into scratch first (unbatched calls only).
  void gemm(const GemmCall& call, CudaMatmulPrecision precision);
  // x[0, count) as a bf16 operand: its weight copy, or converted into `slot`.
  const __nv_bfloat16* bf16_operand(const float* x, size_t count, ScratchSlot slot);
  // The linear layer's forward product, out = inp @ weight^T, as a GemmCall (beta 0).
  static GemmCall forward_call(float* out, const float* inp, const float* weight, int N, int C,
                               int OC);
  // cuBLASLt descriptors of one product shape and the algorithm its heuristic picked.
  struct GemmPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    GemmPlan() = default;
    GemmPlan(const GemmPlan&) = delete;
    GemmPlan& operator=(const GemmPlan&) = delete;
    ~GemmPlan() {
      if (desc) cublasLtMatmulDescDestroy(desc);
      if (a) cublasLtMatrixLayoutDestroy(a);
      if (b) cublasLtMatrixLayoutDestroy(b);
      if (c) cublasLtMatrixLayoutDestroy(c);
    }
  };
  struct GemmAlignment {
    int a, b, c;  // bytes, powers of two in [2, 256]
  };
  using GemmKey = std::array<int64_t, 16>;
  const GemmPlan& gemm_plan(const GemmCall& call, CudaMatmulPrecision precision,
                            const GemmAlignment& align);
  // Attention on cuBLASLt batched products (the default) or on our own kernels (the fallback).
  CudaMatmulPrecision attention_precision() const;
  void attention_forward_gemm(float* out, float* att, const float* qkv, int B, int T, int H,
                              int KVH, int hd);
  void attention_backward_gemm(float* dqkv, float* workspace, const float* dout, const float* qkv,
                               const float* att, int B, int T, int H, int KVH, int hd);
  void attention_forward_kernels(float* out, float* att, const float* qkv, int B, int T, int H,
                                 int KVH, int hd);
  void attention_backward_kernels(float* dqkv, float* workspace, const float* dout,
                                  const float* qkv, const float* att, int B, int T, int H, int KVH,
                                  int hd);
  // cuDNN fused attention (cuda_attention_cudnn.cu): the plans of one shape, or nullptr when
  // this backend does not use cuDNN for it (not asked to, refused, or its probe failed).
  struct CudnnAttention {
    std::unique_ptr<cudnn::Plan> forward, backward;
  };
  // Decides on first sight of a shape (probe, plans); what the sizing queries ask.
  const CudnnAttention* cudnn_plans_for(int B, int T, int H, int KVH, int hd);
  // The same for an op about to run: a refusal whose cuBLASLt fallback does not fit what the
  // caller sized (attention_sizing_) is fatal, with the reason.
  const CudnnAttention* cudnn_attention(int B, int T, int H, int KVH, int hd, bool backward);
  // The sizing queries' answer for the shape: true when cuDNN takes it, so the caller keeps only
  // the statistics; remembered per heads for cudnn_attention.
  bool sizes_for_statistics(int B, int T, int H, int KVH, int hd);
  // Builds batch-1 graphs for the shape and checks them against the cuBLASLt path on random
  // inputs; "" when they agree, else the reason.
  std::string probe_cudnn_attention(int T, int H, int KVH, int hd);
  std::string ensure_cudnn_handle();
  std::unique_ptr<CudnnAttention> build_cudnn_plans(const cudnn::SdpaShape& s, std::string* error);
  // How a shape's backward lays out its kAttentionBf16 scratch (bf16 qkv, dqkv, out, dout) and
  // its kCudnnWorkspace scratch (plan workspace, softmax row sums, fp32 dQ accumulator); the
  // forward takes less of both. Used to run the backward and to budget it.
  struct CudnnBackwardLayout {
    size_t n_qkv = 0, n_out = 0;  // elements
    size_t qkv_bytes = 0, out_bytes = 0, plan_bytes = 0, sum_bytes = 0, accum_bytes = 0;
    size_t bf16_bytes() const { return 2 * qkv_bytes + 2 * out_bytes; }
    size_t workspace_bytes() const { return plan_bytes + sum_bytes + accum_bytes; }
  };
  static CudnnBackwardLayout cudnn_backward_layout(const CudnnAttention& plans,
                                                   const cudnn::SdpaShape& s);
  std::string run_cudnn_forward(const CudnnAttention& plans, float* out, float* stats,
                                const float* qkv, int B, int T, int H, int KVH, int hd);
  std::string run_cudnn_backward(const CudnnAttention& plans, float* dqkv, const float* dout,
                                 const float* qkv, const float* out, const float* stats, int B,
                                 int T, int H, int KVH, int hd);
  void attention_forward_cudnn(const CudnnAttention& plans, float* out, float* stats,
                               const float* qkv, int B, int T, int H, int KVH, int hd);
  void attention_backward_cudnn(const CudnnAttention& plans, float* dqkv, const float* dout,
                                const float* qkv, const float* out, const float* stats, int B,
                                int T, int H, int KVH, int hd);
  void release_cudnn();
  // The bf16 copy of x[0, count) when that range lies inside the bound matmul weights (and the
  // backend keeps copies), else nullptr (cuda_weight_copies.cu).
  __nv_bfloat16* weight_copy_of(const float* x, size_t count) const;
  void convert_to_bf16(__nv_bfloat16* dst, const float* src, size_t count);
  void bf16_to_float(float* dst, const __nv_bfloat16* src, size_t count);
  double reduce(const float* x, size_t count, bool squares);
  // Makes this backend's GPU current on the calling thread (ops may come from any thread).
  void use_device() const { DIPACO_CUDA_CHECK(cudaSetDevice(device_)); }

  CudaBackend() = default;

  int device_ = 0;
  CudaMatmulPrecision precision_ = CudaMatmulPrecision::kBf16;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  size_t lt_workspace_bytes_ = 0;
  void* scratch_[kScratchSlots] = {};
  size_t scratch_bytes_[kScratchSlots] = {};
  double* reduce_partials_ = nullptr;  // device, kReduceBlocks doubles
  double* reduce_host_ = nullptr;      // pinned host copy of the partials
  CudaAttention attention_ = CudaAttention::kGemm;
  bool keep_weight_copies_ = false;  // bf16 matmuls with options.bf16_weight_copies
  // The bound matmul weights (one per model on this backend) and their bf16 copies.
  struct WeightCopy {
    const float* weights;
    size_t count;
    __nv_bfloat16* bf16;
  };
  std::vector<WeightCopy> weight_copies_;
  std::map<GemmKey, std::unique_ptr<GemmPlan>> plans_;
  cudnnHandle_t cudnn_ = nullptr;
  std::map<std::array<int, 4>, bool> cudnn_shape_ok_;  // (T, H, KVH, hd) -> probe passed
  // Per (H, KVH, hd): the largest B·T a caller sized for statistics only and the largest B·T²
  // one sized for probabilities (the sizing queries' answers).
  struct AttentionSizing {
    size_t stats_rows = 0, prob_elements = 0;
  };
  std::map<std::array<int, 3>, AttentionSizing> attention_sizing_;
  std::map<std::array<int, 5>, std::unique_ptr<CudnnAttention>> cudnn_plans_;  // (B, T, H, ...)
};

}  // namespace dipaco
