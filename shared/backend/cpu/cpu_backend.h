// CpuBackend: the reference backend, and a real one for small hosts.
//
// Matmuls go to OpenBLAS sgemm; everything else is a fused loop over rows, split across a
// persistent ThreadPool. OpenBLAS is switched to one thread per call (process-wide) and the
// pool hands each of its threads a slice of every sgemm instead, so BLAS threads and ours
// never compete for the same cores. Memory is ordinary 64-byte aligned host memory.
#pragma once

#include <memory>
#include <string>

#include "backend/cpu/thread_pool.h"
#include "tensor/backend.h"

namespace dipaco {

// Not final: tests/train/test_matmul_weight_copies.cc builds a backend with weight copies on it.
class CpuBackend : public Backend {
 public:
  // n_threads <= 0: one per logical core. min_work_per_thread: how much work (about one float
  // operation per unit) an op needs before it is split across threads; tests pass 1 to run
  // every op threaded.
  explicit CpuBackend(int n_threads = 0,
                      int64_t min_work_per_thread = ThreadPool::kDefaultMinWorkPerThread);
  ~CpuBackend() override;

  int threads() const { return pool_.size(); }
  ThreadPool& pool() { return pool_; }

  std::string name() const override;

  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void fill_zero(void* dst, size_t bytes) override;
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy_device(void* dst, const void* src, size_t bytes) override;
  void synchronize() override {}

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

  void attention_forward(float* out, float* att, const float* qkv, int B, int T, int H, int KVH,
                         int hd) override;
  void attention_backward(float* dqkv, float* workspace, const float* dout, const float* qkv,
                          const float* out, const float* att, int B, int T, int H, int KVH,
                          int hd) override;
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

 private:
  ThreadPool pool_;
};

}  // namespace dipaco
