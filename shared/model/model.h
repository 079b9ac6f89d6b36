// Model: a Llama-style decoder with hand-written forward and backward over one parameter
// buffer, running on any Backend.
//
//   token embedding
//   N x [ x += attention(rope(rmsnorm(x)))  ;  x += swiglu_mlp(rmsnorm(x)) ]
//   final rmsnorm, untied LM head, no biases anywhere
//
// Parameters, gradients and activations each live in one device buffer carved by a size
// table; create() allocates everything for the largest batch (B x T), so forward/backward
// allocate nothing. Not thread-safe: one training loop drives one Model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model_config.h"
#include "model/param_layout.h"
#include "tensor/backend.h"
#include "tensor/device_buffer.h"
#include "util/status.h"

namespace dipaco {

class Model {
 public:
  // batch x seq_len is the largest forward this model will run; seq_len <= max_seq_len.
  // Before allocating, the model's memory plus extra_bytes (what the caller will allocate next,
  // e.g. optimizer state) is checked against backend->available_memory_bytes(): a model that
  // does not fit is refused with both figures instead of failing half-way.
  static Result<std::unique_ptr<Model>> create(Backend* backend, const ModelConfig& config,
                                               int batch, int seq_len, size_t extra_bytes = 0);

  const ModelConfig& config() const { return config_; }
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ParamLayout& layout() const { return layout_; }
  Backend& backend() const { return *backend_; }
  int max_batch() const { return max_B_; }
  int max_seq_len() const { return max_T_; }
  size_t num_params() const { return layout_.total(); }
  // The device memory create() budgeted for: its buffers, the backend's working copies and
  // scratch for this model's shapes, and the caller's extra_bytes.
  size_t budget_bytes() const { return budget_bytes_; }

  // Device buffers, layout() order. Write the parameters only through set_params() or the
  // backend's adamw_update: the backend may keep a copy of them for its matmuls (see
  // Backend::bind_matmul_weights) that other writes would leave stale.
  float* params() const { return params_.f32(); }
  float* grads() const { return grads_.f32(); }

  // Deterministic initialization from `seed`: matrices ~ N(0, 0.02), the residual output
  // projections (o_proj, down_proj) ~ N(0, 0.02 / sqrt(2 n_layers)) as in GPT-2, norm gains 1.
  // Each tensor draws from its own stream, so a tensor's values depend only on seed and name.
  void init_params(uint64_t seed);
  void set_params(const std::vector<float>& host);  // host.size() == num_params()
  std::vector<float> get_params() const;
  std::vector<float> get_grads() const;
  // One slice of the buffer (a DiPaCo module, see ParamLayout::module_range): host copies in and
  // out, so a module can be sent, averaged and checkpointed without touching the rest.
  std::vector<float> get_params(ParamRange range) const;
  void set_params(ParamRange range, const std::vector<float>& host);  // host.size() == range.count
  std::vector<float> get_grads(ParamRange range) const;

  // Runs the model on inputs[B, T] (host token ids in [0, vocab)). With targets[B, T] (host,
  // -1 = ignore) returns the mean cross-entropy over the counted positions and keeps what
  // backward() needs; without, returns 0 and only logits() are meaningful.
  double forward(const int32_t* inputs, const int32_t* targets, int B, int T);
  // logits [B, T, V] of the last forward (device memory; overwritten by backward()).
  const float* logits() const { return logits_; }
  std::vector<float> get_logits() const;
  // The last hidden state of the last forward: the final RMSNorm's output, [B, T, d_model] on
  // the host (what the LM head reads; DiPaCo's routing features average it over a prefix).
  std::vector<float> get_final_hidden() const;

  void zero_grad();
  // Adds loss_scale * d(mean loss of the last forward)/d(params) into grads(): loss_scale =
  // 1 / accumulation steps for gradient accumulation. Needs a forward() with targets.
  void backward(float loss_scale = 1.0f);

 private:
  struct LayerActs {
    float *ln1, *ln1_rstd, *qkv, *att, *atty, *resid_mid, *ln2, *ln2_rstd, *h13, *hsw;
  };

  Model(Backend* backend, const ModelConfig& config, int batch, int seq_len);
  Status allocate(size_t extra_bytes);

  Backend* backend_;
  ModelConfig config_;
  ParamLayout layout_;
  int max_B_, max_T_;

  DeviceBuffer params_, grads_, acts_, scratch_, io_, rope_;
  // Carved from acts_: residual stream [n_layers + 1][N, C], per-layer activations, head.
  std::vector<float*> residual_;
  std::vector<LayerActs> layers_;
  float *lnf_ = nullptr, *lnf_rstd_ = nullptr, *logits_ = nullptr, *losses_ = nullptr,
        *lse_ = nullptr;
  // Carved from scratch_: backward temporaries shared by all layers, and the forward's
  // projection output before the residual add.
  float *dres_ = nullptr, *dln_ = nullptr, *dqkv_ = nullptr, *datty_ = nullptr, *dh13_ = nullptr,
        *dhsw_ = nullptr, *att_ws_ = nullptr;
  int32_t *tokens_ = nullptr, *targets_ = nullptr;
  float *rope_cos_ = nullptr, *rope_sin_ = nullptr;
  // The last forward's shape and counted targets.
  int B_ = 0, T_ = 0;
  int64_t counted_ = 0;
  bool have_targets_ = false;
  bool weights_bound_ = false;  // params_ is bound as the backend's matmul weights
  size_t budget_bytes_ = 0;
};

}  // namespace dipaco
