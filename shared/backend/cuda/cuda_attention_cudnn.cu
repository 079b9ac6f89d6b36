// Attention through cuDNN's fused flash attention, forward and backward (the graphs are in
// cudnn_sdpa_graphs.h). Nothing T x T reaches memory: the forward saves the log-sum-exp
// statistics [B, H, T] instead of the probabilities (attention_saved_floats), and the backward
// recomputes P from them. cuDNN reads bf16 copies of our fp32 qkv / out / dout, in their own
// layouts (no transposes).
//
// Plans are built per shape and cached. The first time a (T, H, KVH, hd) is seen, a batch-1
// graph runs on random inputs against the cuBLASLt path; only when forward and backward agree
// does that shape use cuDNN. Any refusal (the graph, an engine, a mismatch) is printed once
// with cuDNN's reason and that shape stays on the cuBLASLt path. cuDNN's backward accumulates
// dQ with atomics, so this path is not bit-deterministic; DIPACO_CUDA_ATTENTION=gemm gives runs
// that repeat bit for bit. It is the training default in bf16 (default_training_attention).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"
#include "backend/cuda/cudnn_sdpa_graphs.h"

namespace dipaco {

namespace {

using cudnn::SdpaShape;

// Relative L2 distance the probe accepts between cuDNN (bf16 operands) and cuBLASLt (TF32).
constexpr double kProbeTolerance = 3e-2;

// DIPACO_CUDNN_DEBUG=1 prints a refused graph's tensors and operations with the reason.
std::unique_ptr<cudnn::Plan> finalize_or_describe(cudnn::GraphBuilder& g, const char* which,
                                                  std::string* error) {
  std::unique_ptr<cudnn::Plan> plan = g.finalize(error);
  const char* debug = std::getenv("DIPACO_CUDNN_DEBUG");
  if (plan == nullptr && debug != nullptr && *debug == '1') {
    std::fprintf(stderr, "dipaco: cuDNN refused the attention %s graph (%s):\n%s", which,
                 error->c_str(), g.describe().c_str());
  }
  return plan;
}

}  // namespace

// Both plans of a shape; nullptr and *error ("forward graph: ..." or "backward graph: ...")
// when cuDNN refuses either.
std::unique_ptr<CudaBackend::CudnnAttention> CudaBackend::build_cudnn_plans(const SdpaShape& s,
                                                                            std::string* error) {
  auto plans = std::make_unique<CudnnAttention>();
  cudnn::GraphBuilder forward(cudnn_);
  cudnn::declare_sdpa_forward(forward, s);
  plans->forward = finalize_or_describe(forward, "forward", error);
  if (plans->forward == nullptr) {
    *error = "forward graph: " + *error;
    return nullptr;
  }
  cudnn::GraphBuilder backward(cudnn_);
  cudnn::declare_sdpa_backward(backward, s);
  plans->backward = finalize_or_describe(backward, "backward", error);
  if (plans->backward == nullptr) {
    *error = "backward graph: " + *error;
    return nullptr;
  }
  return plans;
}

namespace {

__global__ void bf16_to_float_kernel(float* dst, const __nv_bfloat16* src, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = __bfloat162float(src[i]);
}

size_t align_up(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// Deterministic inputs for the probe: uniform in [-1, 1).
std::vector<float> probe_values(size_t count, uint64_t seed) {
  std::vector<float> v(count);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    f = static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return v;
}

double relative_distance(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / (ref > 0 ? ref : 1.0));
}

}  // namespace

void CudaBackend::bf16_to_float(float* dst, const __nv_bfloat16* src, size_t count) {
  if (count == 0) return;
  bf16_to_float_kernel<<<cuda::grid_for(count, 256), 256, 0, stream_>>>(dst, src, count);
  DIPACO_CUDA_CHECK_LAUNCH();
}

std::string CudaBackend::ensure_cudnn_handle() {
  if (cudnn_ != nullptr) return "";
  // Versions before 9.16 need workarounds for this graph that dipaco does not make (the
  // backward with sequence lengths that are not a multiple of 128; 9.10.0 and 9.10.1 have bugs
  // in both directions), as NVIDIA's cudnn-frontend notes.
  if (const size_t version = cudnnGetVersion(); version < 91600) {
    return "cuDNN " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) +
           "." + std::to_string(version % 100) +
           " is older than 9.16, the first whose fused attention dipaco's graphs are written for";
  }
  if (cudnnStatus_t st = cudnnCreate(&cudnn_); st != CUDNN_STATUS_SUCCESS) {
    cudnn_ = nullptr;
    return std::string("cudnnCreate: ") + cudnnGetErrorString(st);
  }
  // Without our stream cuDNN would run on the legacy stream, unordered with stream_.
  if (cudnnStatus_t st = cudnnSetStream(cudnn_, stream_); st != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(cudnn_);
    cudnn_ = nullptr;
    return std::string("cudnnSetStream: ") + cudnnGetErrorString(st);
  }
  return "";
}

const CudaBackend::CudnnAttention* CudaBackend::cudnn_plans_for(int B, int T, int H, int KVH,
                                                                int hd) {
  if (attention_ != CudaAttention::kCudnn) return nullptr;
  const std::array<int, 4> shape = {T, H, KVH, hd};
  auto decided = cudnn_shape_ok_.find(shape);
  if (decided == cudnn_shape_ok_.end()) {
    std::string why = probe_cudnn_attention(T, H, KVH, hd);
    if (!why.empty()) {
      std::fprintf(
          stderr,
          "dipaco: cuDNN attention refused for T=%d heads=%d kv_heads=%d head_dim=%d (%s); "
          "this shape uses the cuBLASLt attention path\n",
          T, H, KVH, hd, why.c_str());
    }
    decided = cudnn_shape_ok_.emplace(shape, why.empty()).first;
  }
  if (!decided->second) return nullptr;
  const std::array<int, 5> key = {B, T, H, KVH, hd};
  auto found = cudnn_plans_.find(key);
  if (found != cudnn_plans_.end()) return found->second.get();  // nullptr: refused at this B
  // The shape passed its probe at batch 1; a larger batch is the same graph with a larger
  // leading dimension, so a refusal here is unexpected: printed, and this batch size falls back.
  std::string error;
  std::unique_ptr<CudnnAttention> plans = build_cudnn_plans(SdpaShape{B, T, H, KVH, hd}, &error);
  if (plans == nullptr) {
    std::fprintf(stderr,
                 "dipaco: cuDNN attention refused batch %d (T=%d) after batch 1 passed its probe "
                 "(%s); this batch size uses the cuBLASLt attention path\n",
                 B, T, error.c_str());
  }
  return cudnn_plans_.emplace(key, std::move(plans)).first->second.get();
}

const CudaBackend::CudnnAttention* CudaBackend::cudnn_attention(int B, int T, int H, int KVH,
                                                                int hd, bool backward) {
  const CudnnAttention* plans = cudnn_plans_for(B, T, H, KVH, hd);
  if (plans != nullptr || attention_ != CudaAttention::kCudnn) return plans;
  // The cuBLASLt path saves B·H·T² probabilities, and its backward needs as many floats of
  // workspace. A caller that sized its buffers for cuDNN's statistics at these heads (B_s·H·T_s
  // saved floats, no workspace) may have neither: stop with the reason rather than write past
  // them, unless the call fits what was sized (a forward into the statistics' room, or a
  // sizing for the probabilities).
  auto sized = attention_sizing_.find({H, KVH, hd});
  const size_t needed = static_cast<size_t>(B) * T * T;
  const bool fits = sized == attention_sizing_.end() || sized->second.stats_rows == 0 ||
                    needed <= sized->second.prob_elements ||
                    (!backward && needed <= sized->second.stats_rows);
  if (!fits) {
    const std::string what =
        "cuDNN attention refuses batch " + std::to_string(B) + " x T=" + std::to_string(T) +
        " (the reason is printed above) after the buffers were sized for it at another shape; "
        "run with DIPACO_CUDA_ATTENTION=gemm";
    cuda::fail("choosing the attention path", what.c_str(), __FILE__, __LINE__);
  }
  return nullptr;
}

std::string CudaBackend::probe_cudnn_attention(int T, int H, int KVH, int hd) {
  if (hd % 8 != 0 || hd > 128) {
    return "head_dim " + std::to_string(hd) + " is not a multiple of 8 up to 128";
  }
  if (T < 2) return "T=1: cuDNN's fused backward needs at least 2 positions";
  if (std::string why = ensure_cudnn_handle(); !why.empty()) return why;
  const SdpaShape s{1, T, H, KVH, hd};
  std::string error;
  std::unique_ptr<CudnnAttention> plans = build_cudnn_plans(s, &error);
  if (plans == nullptr) return error;

  // Batch 1 on random inputs, through cuDNN and through the cuBLASLt path.
  const size_t n_qkv = static_cast<size_t>(T) * s.row(), n_out = static_cast<size_t>(T) * H * hd;
  const size_t n_att = static_cast<size_t>(H) * T * T;
  const size_t n_ws = n_att;  // the cuBLASLt backward's dS (not the query: it would recurse)
  // Each piece starts 256-byte aligned, as cuDNN's tensors are declared (16 at least).
  auto up = [](size_t n) { return (n + 63) / 64 * 64; };
  const size_t floats =
      2 * up(n_qkv) + 3 * up(n_out) + up(n_att) + up(n_ws) + up(static_cast<size_t>(H) * T);
  float* mem = nullptr;
  if (cudaMalloc(&mem, floats * sizeof(float)) != cudaSuccess) {
    cudaGetLastError();
    return "no device memory for the probe (" + std::to_string(floats * 4 >> 20) + " MiB)";
  }
  float *qkv = mem, *dqkv = qkv + up(n_qkv), *out = dqkv + up(n_qkv), *dout = out + up(n_out);
  float* out_ref = dout + up(n_out);
  float *att = out_ref + up(n_out), *ws = att + up(n_att), *stats = ws + up(n_ws);
  std::vector<float> host_qkv = probe_values(n_qkv, 1), host_dout = probe_values(n_out, 2);
  copy_to_device(qkv, host_qkv.data(), n_qkv * sizeof(float));
  copy_to_device(dout, host_dout.data(), n_out * sizeof(float));

  std::string why;
  std::vector<float> out_cudnn(n_out), out_gemm(n_out), dqkv_cudnn(n_qkv), dqkv_gemm(n_qkv);
  const CudnnAttention& p = *plans;
  why = run_cudnn_forward(p, out, stats, qkv, 1, T, H, KVH, hd);
  if (why.empty()) why = run_cudnn_backward(p, dqkv, dout, qkv, out, stats, 1, T, H, KVH, hd);
  if (why.empty()) {
    copy_to_host(out_cudnn.data(), out, n_out * sizeof(float));
    copy_to_host(dqkv_cudnn.data(), dqkv, n_qkv * sizeof(float));
    attention_forward_gemm(out_ref, att, qkv, 1, T, H, KVH, hd);
    attention_backward_gemm(dqkv, ws, dout, qkv, att, 1, T, H, KVH, hd);
    copy_to_host(out_gemm.data(), out_ref, n_out * sizeof(float));
    copy_to_host(dqkv_gemm.data(), dqkv, n_qkv * sizeof(float));
    const double e_out = relative_distance(out_cudnn, out_gemm);
    const double e_grad = relative_distance(dqkv_cudnn, dqkv_gemm);
    if (!(e_out < kProbeTolerance && e_grad < kProbeTolerance)) {
      char text[160];
      std::snprintf(text, sizeof(text),
                    "its results differ from the cuBLASLt path: out %.3g, dqkv %.3g relative "
                    "(tolerance %.3g)",
                    e_out, e_grad, kProbeTolerance);
      why = text;
    }
  }
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  DIPACO_CUDA_CHECK(cudaFree(mem));
  if (why.empty()) cudnn_plans_.emplace(std::array<int, 5>{1, T, H, KVH, hd}, std::move(plans));
  return why;
}

CudaBackend::CudnnBackwardLayout CudaBackend::cudnn_backward_layout(const CudnnAttention& plans,
                                                                    const SdpaShape& s) {
  CudnnBackwardLayout l;
  l.n_qkv = static_cast<size_t>(s.B) * s.T * s.row();
  l.n_out = static_cast<size_t>(s.B) * s.T * s.H * s.hd;
  l.qkv_bytes = align_up(l.n_qkv * sizeof(__nv_bfloat16));
  l.out_bytes = align_up(l.n_out * sizeof(__nv_bfloat16));
  l.plan_bytes = align_up(static_cast<size_t>(plans.backward->workspace_bytes()));
  l.sum_bytes = align_up(static_cast<size_t>(s.B) * s.H * s.T * sizeof(float));
  l.accum_bytes = l.n_out * sizeof(float);
  return l;
}

size_t CudaBackend::attention_scratch_bytes(int B, int T, int H, int KVH, int hd) const {
  auto* self = const_cast<CudaBackend*>(this);
  self->use_device();
  const CudnnAttention* plans = self->cudnn_plans_for(B, T, H, KVH, hd);
  if (plans == nullptr) return 0;  // the cuBLASLt and kernel paths use the caller's workspace
  const CudnnBackwardLayout l = cudnn_backward_layout(*plans, SdpaShape{B, T, H, KVH, hd});
  const size_t workspace =
      std::max(static_cast<size_t>(plans->forward->workspace_bytes()) + 1, l.workspace_bytes());
  return scratch_held(l.bf16_bytes()) + scratch_held(workspace);
}

std::string CudaBackend::run_cudnn_forward(const CudnnAttention& plans, float* out, float* stats,
                                           const float* qkv, int B, int T, int H, int KVH, int hd) {
  const SdpaShape s{B, T, H, KVH, hd};
  const size_t n_qkv = static_cast<size_t>(B) * T * s.row();
  const size_t n_out = static_cast<size_t>(B) * T * H * hd;
  auto* base = static_cast<char*>(
      scratch(kAttentionBf16, align_up(n_qkv * sizeof(__nv_bfloat16)) + n_out * 2));
  auto* qkv16 = reinterpret_cast<__nv_bfloat16*>(base);
  auto* out16 = reinterpret_cast<__nv_bfloat16*>(base + align_up(n_qkv * sizeof(__nv_bfloat16)));
  convert_to_bf16(qkv16, qkv, n_qkv);
  void* ws = scratch(kCudnnWorkspace, static_cast<size_t>(plans.forward->workspace_bytes()) + 1);
  const std::string why = plans.forward->execute(
      cudnn_, {cudnn::kUidQ, cudnn::kUidK, cudnn::kUidV, cudnn::kUidO, cudnn::kUidStats},
      {qkv16, qkv16 + s.H * s.hd, qkv16 + (s.H + s.KVH) * s.hd, out16, stats}, ws);
  if (why.empty()) bf16_to_float(out, out16, n_out);
  return why;
}

std::string CudaBackend::run_cudnn_backward(const CudnnAttention& plans, float* dqkv,
                                            const float* dout, const float* qkv, const float* out,
                                            const float* stats, int B, int T, int H, int KVH,
                                            int hd) {
  const SdpaShape s{B, T, H, KVH, hd};
  const CudnnBackwardLayout l = cudnn_backward_layout(plans, s);
  auto* base = static_cast<char*>(scratch(kAttentionBf16, l.bf16_bytes()));
  auto* qkv16 = reinterpret_cast<__nv_bfloat16*>(base);
  auto* dqkv16 = reinterpret_cast<__nv_bfloat16*>(base + l.qkv_bytes);
  auto* out16 = reinterpret_cast<__nv_bfloat16*>(base + 2 * l.qkv_bytes);
  auto* dout16 = reinterpret_cast<__nv_bfloat16*>(base + 2 * l.qkv_bytes + l.out_bytes);
  convert_to_bf16(qkv16, qkv, l.n_qkv);
  convert_to_bf16(out16, out, l.n_out);  // exact: out holds bf16 values widened to fp32
  convert_to_bf16(dout16, dout, l.n_out);

  auto* ws = static_cast<char*>(scratch(kCudnnWorkspace, l.workspace_bytes()));
  void* softmax_sum = ws + l.plan_bytes;
  void* dq_accum = ws + l.plan_bytes + l.sum_bytes;
  DIPACO_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, l.accum_bytes, stream_));
  // The kv heads' gradients are sums over their group: cuDNN writes every element of dk and dv,
  // and dq, so dqkv16 needs no clearing.
  const std::string why = plans.backward->execute(
      cudnn_,
      {cudnn::kUidQ, cudnn::kUidK, cudnn::kUidV, cudnn::kUidO, cudnn::kUidDO, cudnn::kUidStats,
       cudnn::kUidDQ, cudnn::kUidDK, cudnn::kUidDV, cudnn::kUidSoftmaxSum, cudnn::kUidDQAccum},
      {qkv16, qkv16 + s.H * s.hd, qkv16 + (s.H + s.KVH) * s.hd, out16, dout16,
       const_cast<float*>(stats), dqkv16, dqkv16 + s.H * s.hd, dqkv16 + (s.H + s.KVH) * s.hd,
       softmax_sum, dq_accum},
      ws);
  if (why.empty()) bf16_to_float(dqkv, dqkv16, l.n_qkv);
  return why;
}

void CudaBackend::attention_forward_cudnn(const CudnnAttention& plans, float* out, float* stats,
                                          const float* qkv, int B, int T, int H, int KVH, int hd) {
  const std::string why = run_cudnn_forward(plans, out, stats, qkv, B, T, H, KVH, hd);
  if (!why.empty()) cuda::fail("cuDNN attention forward", why.c_str(), __FILE__, __LINE__);
}

void CudaBackend::attention_backward_cudnn(const CudnnAttention& plans, float* dqkv,
                                           const float* dout, const float* qkv, const float* out,
                                           const float* stats, int B, int T, int H, int KVH,
                                           int hd) {
  const std::string why = run_cudnn_backward(plans, dqkv, dout, qkv, out, stats, B, T, H, KVH, hd);
  if (!why.empty()) cuda::fail("cuDNN attention backward", why.c_str(), __FILE__, __LINE__);
}

void CudaBackend::release_cudnn() {
  cudnn_plans_.clear();
  if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
  cudnn_ = nullptr;
}

}  // namespace dipaco
