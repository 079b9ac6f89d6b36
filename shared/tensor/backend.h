// Backend: the seam between model code and a compute device.
//
// Model, optimizer and trainer code call only this interface. Pointers passed to the ops are
// *device* pointers obtained from alloc(); model code never dereferences them (a CUDA backend
// hands out GPU memory). Data crosses the seam only through copy_to_device / copy_to_host.
//
// Conventions for every op below:
//   - Shapes are row-major and given in brackets: [N, C] means N rows of C floats.
//   - N is the number of token positions, B * T, laid out batch-major: row n = b * T + t.
//   - "+=" outputs accumulate (weight gradients, so micro-batches add up; the residual
//     stream's gradient); "=" outputs are overwritten.
//   - Ops never allocate. Scratch memory an op needs is passed in by the caller, sized by the
//     matching *_workspace_floats() query, so a training step allocates nothing.
//   - Results are deterministic for a given backend and thread count (no atomics-order sums),
//     except the CUDA backend's cuDNN attention (its bf16 default), whose backward adds dQ
//     with atomics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "compress/wire_dtype.h"

namespace dipaco {

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu (2 threads, OpenBLAS SkylakeX)"
  virtual std::string name() const = 0;
  // How many more bytes alloc() can hand out now (a GPU's free memory); SIZE_MAX when the
  // backend cannot tell (host memory). Model::create checks its budget against this first.
  virtual size_t available_memory_bytes() const { return SIZE_MAX; }

  // ---- memory -------------------------------------------------------------------------------
  // Device memory, 64-byte aligned. Returns nullptr only when out of memory.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy_device(void* dst, const void* src, size_t bytes) = 0;
  // Waits until all queued work is done (a no-op for the CPU backend).
  virtual void synchronize() = 0;

  // ---- embedding ----------------------------------------------------------------------------
  // out[N, C] = wte[tokens[n], :]. tokens[N] (device int32) must be in [0, V).
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                                 int C) = 0;
  // dwte[V, C] += scatter of dout[N, C] by tokens[N].
  virtual void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                                  int C) = 0;

  // ---- RMSNorm (Llama): y = x / sqrt(mean(x^2) + eps) * weight ------------------------------
  // out[N, C], rstd[N] (saved for backward), inp[N, C], weight[C].
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight,
                               int N, int C, float eps) = 0;
  // dinp[N, C] +=, dweight[C] +=; dout[N, C], inp[N, C], weight[C], rstd[N].
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int N, int C) = 0;

  // ---- linear (no bias) ---------------------------------------------------------------------
  // out[N, OC] = inp[N, C] @ weight[OC, C]^T.
  virtual void matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                              int OC) = 0;
  // dinp[N, C] = dout[N, OC] @ weight[OC, C]   (overwritten; skipped when dinp is null)
  // dweight[OC, C] += dout[N, OC]^T @ inp[N, C]
  virtual void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                               const float* weight, int N, int C, int OC) = 0;
  // out[N, OC] = residual[N, OC] + inp[N, C] @ weight[OC, C]^T: a projection added into the
  // residual stream in the matmul's epilogue (no separate pass). out may alias residual. Its
  // backward is matmul_backward plus the identity into the residual's gradient.
  virtual void matmul_forward_residual(float* out, const float* inp, const float* weight,
                                       const float* residual, int N, int C, int OC) = 0;

  // ---- rotary position embedding, in place ---------------------------------------------------
  // Layout: the HF/Llama "rotate_half" convention. A head vector x[hd] is split in halves;
  // for i < hd/2, with angle a = t * theta^(-2i/hd):
  //   y[i]        = x[i] cos a - x[i + hd/2] sin a
  //   y[i + hd/2] = x[i + hd/2] cos a + x[i] sin a
  // x[N, row_stride]: the first n_heads * hd floats of each row are rotated (for a fused qkv
  // row that is the q heads followed by the k heads); t = n % T.
  // cos[T_max, hd/2], sin[T_max, hd/2]: tables from rope_tables() for positions 0..T_max-1.
  virtual void rope_forward(float* x, const float* cos, const float* sin, int N, int T, int n_heads,
                            int hd, int row_stride) = 0;
  // The inverse rotation applied to the gradient dx (in place): dx = R(-a) dy.
  virtual void rope_backward(float* dx, const float* cos, const float* sin, int N, int T,
                             int n_heads, int hd, int row_stride) = 0;

  // ---- causal multi-head attention with grouped-query heads ---------------------------------
  // qkv[B, T, (H + 2 * KVH) * hd]: q heads, then k heads, then v heads (RoPE already applied).
  // q head h reads kv head h / (H / KVH). Softmax scale 1/sqrt(hd).
  // out[B, T, H * hd] = softmax(q k^T * scale + causal mask) v.
  // saved[attention_saved_floats(B, T, H, KVH, hd)]: what the backward needs besides qkv and
  // out, in a layout of the backend's choosing: the probabilities att[B, H, T, T] (entries above
  // the diagonal 0) on the CPU and the cuBLASLt path; the softmax log-sum-exp [B, H, T] where a
  // fused kernel recomputes the probabilities (cuDNN).
  virtual void attention_forward(float* out, float* saved, const float* qkv, int B, int T, int H,
                                 int KVH, int hd) = 0;
  // dqkv[B, T, (H + 2 * KVH) * hd] = (overwritten); dout[B, T, H * hd]; qkv, out and saved as
  // the forward left them. workspace: attention_workspace_floats(B, T, H, KVH, hd) floats.
  virtual void attention_backward(float* dqkv, float* workspace, const float* dout,
                                  const float* qkv, const float* out, const float* saved, int B,
                                  int T, int H, int KVH, int hd) = 0;
  // Sizes for a shape; callers ask before allocating and pass buffers at least this large to
  // every call with that shape or a smaller B and T.
  virtual size_t attention_saved_floats(int B, int T, int H, int KVH, int hd) const {
    (void)KVH, (void)hd;
    return static_cast<size_t>(B) * H * T * T;
  }
  virtual size_t attention_workspace_floats(int B, int T, int H, int KVH, int hd) const = 0;

  // ---- SwiGLU: out = silu(gate) * up ---------------------------------------------------------
  // h13[N, 2F] holds gate in columns [0, F) and up in [F, 2F) (one fused projection);
  // out[N, F].
  virtual void swiglu_forward(float* out, const float* h13, int N, int F) = 0;
  // dh13[N, 2F] = (overwritten); dout[N, F].
  virtual void swiglu_backward(float* dh13, const float* dout, const float* h13, int N, int F) = 0;

  // ---- residual ------------------------------------------------------------------------------
  // out[n] = a[n] + b[n] for n < count. Its backward is the identity (callers add dout into
  // both inputs' gradients with add_inplace).
  virtual void residual_forward(float* out, const float* a, const float* b, size_t count) = 0;
  // dst[n] += src[n].
  virtual void add_inplace(float* dst, const float* src, size_t count) = 0;
  // x[n] *= s.
  virtual void scale_inplace(float* x, float s, size_t count) = 0;

  // ---- cross-entropy fused with softmax -----------------------------------------------------
  // logits[N, V]; targets[N] (device int32, -1 = ignore: loss 0, no gradient).
  // losses[N] = logsumexp(logits[n]) - logits[n, targets[n]]; lse[N] saved for backward.
  virtual void crossentropy_forward(float* losses, float* lse, const float* logits,
                                    const int32_t* targets, int N, int V) = 0;
  // dlogits[N, V] = (softmax(logits[n]) - onehot(targets[n])) * dloss (overwritten).
  // dlogits may alias logits (in place). dloss is d(total loss)/d(losses[n]), e.g. 1/N.
  virtual void crossentropy_backward(float* dlogits, const float* logits, const float* lse,
                                     const int32_t* targets, int N, int V, float dloss) = 0;

  // ---- reductions (result on the host) --------------------------------------------------------
  // sum of x[n]^2, accumulated in double.
  virtual double sum_squares(const float* x, size_t count) = 0;
  // sum of x[n], accumulated in double.
  virtual double sum(const float* x, size_t count) = 0;

  // ---- optimizer ---------------------------------------------------------------------------
  // One AdamW step on count parameters, as torch.optim.AdamW does it:
  //   g = grad * grad_scale
  //   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
  //   param -= lr * weight_decay * param                       (decoupled decay)
  //   param -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
  // step counts from 1.
  virtual void adamw_update(float* param, const float* grad, float* m, float* v, size_t count,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            float grad_scale, int64_t step) = 0;

  // ---- the backend's own memory --------------------------------------------------------------
  // Device memory a backend allocates for itself on the first use of a shape and keeps
  // (conversion buffers, library workspaces; small per-row partials, a fraction of one
  // activation, aside), beyond the buffers callers pass in. Model::create
  // adds it to its budget, so that a model that fits does not run out at its first step.
  // Matmuls whose inputs [N, C] have at most max_input floats, outputs [N, OC] at most
  // max_output and weights [OC, C] at most max_weight:
  virtual size_t matmul_scratch_bytes(size_t /*max_input*/, size_t /*max_output*/,
                                      size_t /*max_weight*/) const {
    return 0;
  }
  // attention_forward and attention_backward of this shape:
  virtual size_t attention_scratch_bytes(int /*B*/, int /*T*/, int /*H*/, int /*KVH*/,
                                         int /*hd*/) const {
    return 0;
  }

  // ---- matmul weight copies ------------------------------------------------------------------
  // A backend whose matmuls read their operands in a narrower type (the CUDA backend in bf16)
  // keeps a converted copy of the model's parameter buffer, refreshed by adamw_update in the
  // same pass, so a training step converts each weight once instead of in every product that
  // reads it (two per micro-batch). The contract, kept by Model:
  //   - bind_matmul_weights(weights, count) once, after allocating the buffer: it is converted
  //     now, and matmul weight operands that point into it read the copy from then on;
  //   - refresh_matmul_weights(slice, n) after every write to the buffer other than
  //     adamw_update (adamw_update on a slice of the bound buffer refreshes it itself);
  //   - release_matmul_weights(weights) before the buffer is freed.
  // Each model on a backend binds its own buffer. Backends that multiply in fp32 keep nothing:
  // these defaults.
  // The bytes bind_matmul_weights would allocate for count floats (Model's budget counts them).
  virtual size_t matmul_weight_copy_bytes(size_t /*count*/) const { return 0; }
  // False when the copy cannot be allocated (then nothing is bound).
  virtual bool bind_matmul_weights(const float* /*weights*/, size_t /*count*/) { return true; }
  virtual void refresh_matmul_weights(const float* /*slice*/, size_t /*count*/) {}
  virtual void release_matmul_weights(const float* /*weights*/) {}

  // ---- outer gradients: delta and error-feedback encoding for the wire ----------------------
  // What a worker sends after H inner steps (run/path_task.h), computed where the parameters
  // live so that only the encoded payload crosses to the host. The CPU backend runs the host
  // codec itself (compress/error_feedback.h); other backends must match it byte for byte.

  // out[n] = a[n] - b[n] for n < count (the outer gradient θ_start − θ_end). out may alias a or b.
  virtual void subtract(float* out, const float* a, const float* b, size_t count) = 0;

  // One round of error feedback (compress/error_feedback.h) on count values, in the wire
  // layout of `dtype` (compress/wire_dtype.h):
  //   c = x + residual;  payload = encode(dtype, c);  residual = c - decode(payload)
  // x[count]: device floats. residual[count]: device floats, updated in place; nullptr for no
  // error feedback (then c = x). payload: device bytes, encoded_size(dtype, count) of them (=),
  // 4-byte aligned (as alloc() memory is; the scales and fp32 values are stored in place).
  // fp32: payload = the bytes of x and the residual is not touched (fp32 loses nothing).
  // workspace: error_feedback_workspace_bytes(count) device bytes.
  // Returns true when encoded. Returns false, having written neither payload nor residual,
  // when a value of c cannot be encoded (NaN, ±infinity, or beyond bf16's range);
  // compress/backend_encoder.h turns that into the codec's error. Synchronizes (the answer is
  // on the host).
  virtual bool error_feedback_encode(uint8_t* payload, float* residual, void* workspace,
                                     const float* x, size_t count, WireDtype dtype) = 0;
  virtual size_t error_feedback_workspace_bytes(size_t count) const = 0;
};

// Host-side helper: the cos/sin tables rope_forward expects, [T_max, hd/2] each, computed in
// double and rounded to float. angle(t, i) = t * theta^(-2i/hd).
void rope_tables(float* cos_out, float* sin_out, int T_max, int hd, double theta);

}  // namespace dipaco
