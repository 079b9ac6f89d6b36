#include "model/model.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "model/init.h"
#include "util/human_units.h"

namespace dipaco {

Result<std::unique_ptr<Model>> Model::create(Backend* backend, const ModelConfig& config, int batch,
                                             int seq_len, size_t extra_bytes) {
  DIPACO_RETURN_IF_ERROR(config.validate());
  if (batch < 1) return invalid_argument("batch size must be >= 1, got " + std::to_string(batch));
  if (seq_len < 1 || seq_len > config.max_seq_len) {
    return invalid_argument("seq_len " + std::to_string(seq_len) + " must be in [1, max_seq_len " +
                            std::to_string(config.max_seq_len) + "]");
  }
  std::unique_ptr<Model> model(new Model(backend, config, batch, seq_len));
  DIPACO_RETURN_IF_ERROR(model->allocate(extra_bytes));
  return model;
}

Model::Model(Backend* backend, const ModelConfig& config, int batch, int seq_len)
    : backend_(backend), config_(config), layout_(config), max_B_(batch), max_T_(seq_len) {}

Status Model::allocate(size_t extra_bytes) {
  const size_t N = static_cast<size_t>(max_B_) * max_T_;
  const size_t C = config_.d_model, V = config_.vocab_size, F = config_.d_ff;
  const size_t L = config_.n_layers, H = config_.n_heads, T = max_T_;
  const size_t qkv = config_.qkv_dim(), attc = H * config_.head_dim();

  // What attention keeps for its backward: probabilities [B, H, T, T] or only their row
  // statistics, as the backend decides.
  const size_t saved = backend_->attention_saved_floats(max_B_, max_T_, config_.n_heads,
                                                        config_.n_kv_heads, config_.head_dim());
  // Activation size table, in floats; each entry padded to 16 floats (64 bytes).
  auto pad = [](size_t n) { return (n + 15) / 16 * 16; };
  const size_t per_layer = pad(N * C) * 4 /* ln1 atty resid_mid ln2 */ + pad(N) * 2 + pad(N * qkv) +
                           pad(saved) + pad(N * 2 * F) + pad(N * F);
  const size_t acts = pad(N * C) * (L + 1) + per_layer * L + pad(N * C) + pad(N) * 3 + pad(N * V);
  const size_t att_ws = backend_->attention_workspace_floats(
      max_B_, max_T_, config_.n_heads, config_.n_kv_heads, config_.head_dim());
  const size_t scratch = pad(N * C) * 2 /* dres dln */ + pad(N * qkv) + pad(N * attc) +
                         pad(N * 2 * F) + pad(N * F) + pad(att_ws);
  const size_t params = layout_.total();
  const size_t rope = pad(T * config_.head_dim() / 2);

  const size_t weight_copy = backend_->matmul_weight_copy_bytes(params);
  // What the backend allocates for itself at the first step (e.g. bf16 operand copies).
  const size_t max_input = N * std::max({C, attc, F});
  const size_t max_output = N * std::max({qkv, C, 2 * F, V});
  const size_t max_weight = std::max({V * C, qkv * C, C * attc, 2 * F * C});
  const size_t backend_scratch =
      backend_->matmul_scratch_bytes(max_input, max_output, max_weight) +
      backend_->attention_scratch_bytes(max_B_, max_T_, config_.n_heads, config_.n_kv_heads,
                                        config_.head_dim());
  const size_t needed = (2 * params + acts + scratch + 2 * rope) * sizeof(float) +
                        2 * pad(N) * sizeof(int32_t) + weight_copy + backend_scratch + extra_bytes;
  budget_bytes_ = needed;
  const size_t available = backend_->available_memory_bytes();
  if (needed > available) {
    return unavailable("the model needs " + human_bytes(needed) + " (parameters, gradients" +
                       (extra_bytes ? ", optimizer state" : "") +
                       (weight_copy + backend_scratch > 0 ? ", the backend's working copies" : "") +
                       " and activations for batch " + std::to_string(max_B_) + " x " +
                       std::to_string(max_T_) + "); " + backend_->name() + " has " +
                       human_bytes(available) +
                       " free: lower the batch size or sequence length, or use a larger device");
  }
  params_ = DeviceBuffer(backend_, params * sizeof(float));
  grads_ = DeviceBuffer(backend_, params * sizeof(float));
  acts_ = DeviceBuffer(backend_, acts * sizeof(float));
  scratch_ = DeviceBuffer(backend_, scratch * sizeof(float));
  io_ = DeviceBuffer(backend_, 2 * pad(N) * sizeof(int32_t));
  rope_ = DeviceBuffer(backend_, 2 * rope * sizeof(float));
  if (!params_.ok() || !grads_.ok() || !acts_.ok() || !scratch_.ok() || !io_.ok() || !rope_.ok()) {
    size_t total = (2 * params + acts + scratch) * sizeof(float);
    return unavailable("out of device memory allocating " + std::to_string(total >> 20) +
                       " MiB for the model (" + backend_->name() + ")");
  }

  float* p = acts_.f32();
  auto take = [&p, &pad](size_t n) {
    float* out = p;
    p += pad(n);
    return out;
  };
  for (size_t l = 0; l <= L; ++l) residual_.push_back(take(N * C));
  for (size_t l = 0; l < L; ++l) {
    LayerActs a{};
    a.ln1 = take(N * C);
    a.ln1_rstd = take(N);
    a.qkv = take(N * qkv);
    a.att = take(saved);
    a.atty = take(N * attc);
    a.resid_mid = take(N * C);
    a.ln2 = take(N * C);
    a.ln2_rstd = take(N);
    a.h13 = take(N * 2 * F);
    a.hsw = take(N * F);
    layers_.push_back(a);
  }
  lnf_ = take(N * C);
  lnf_rstd_ = take(N);
  losses_ = take(N);
  lse_ = take(N);
  logits_ = take(N * V);
  assert(p == acts_.f32() + acts);

  p = scratch_.f32();
  dres_ = take(N * C);
  dln_ = take(N * C);
  dqkv_ = take(N * qkv);
  datty_ = take(N * attc);
  dh13_ = take(N * 2 * F);
  dhsw_ = take(N * F);
  att_ws_ = take(att_ws);
  assert(p == scratch_.f32() + scratch);

  tokens_ = io_.i32();
  targets_ = io_.i32() + pad(N);

  std::vector<float> cos(T * config_.head_dim() / 2), sin(cos.size());
  rope_tables(cos.data(), sin.data(), max_T_, config_.head_dim(), config_.rope_theta);
  rope_cos_ = rope_.f32();
  rope_sin_ = rope_.f32() + rope;
  backend_->copy_to_device(rope_cos_, cos.data(), cos.size() * sizeof(float));
  backend_->copy_to_device(rope_sin_, sin.data(), sin.size() * sizeof(float));

  backend_->fill_zero(params_.get(), params_.bytes());
  backend_->fill_zero(grads_.get(), grads_.bytes());
  if (!backend_->bind_matmul_weights(params_.f32(), params)) {
    return unavailable("out of device memory allocating the " + human_bytes(weight_copy) +
                       " matmul copy of the weights (" + backend_->name() + ")");
  }
  weights_bound_ = true;
  return Status::ok();
}

Model::~Model() {
  if (weights_bound_) backend_->release_matmul_weights(params_.f32());
}

void Model::init_params(uint64_t seed) {
  std::vector<float> host(layout_.total());
  const double std_default = 0.02;
  const double std_residual = 0.02 / std::sqrt(2.0 * config_.n_layers);
  for (const ParamTensor& t : layout_.tensors()) {
    float* dst = host.data() + t.offset;
    if (!t.is_matrix) {
      for (size_t i = 0; i < t.numel; ++i) dst[i] = 1.0f;  // norm gains
      continue;
    }
    bool residual_out = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
    double stddev = residual_out ? std_residual : std_default;
    InitRng rng = InitRng::for_tensor(seed, t.name);
    for (size_t i = 0; i < t.numel; ++i) dst[i] = static_cast<float>(rng.normal() * stddev);
  }
  set_params(host);
}

void Model::set_params(const std::vector<float>& host) {
  assert(host.size() == layout_.total());
  backend_->copy_to_device(params_.get(), host.data(), host.size() * sizeof(float));
  backend_->refresh_matmul_weights(params_.f32(), host.size());
}

std::vector<float> Model::get_params() const {
  std::vector<float> host(layout_.total());
  backend_->copy_to_host(host.data(), params_.get(), host.size() * sizeof(float));
  return host;
}

std::vector<float> Model::get_grads() const {
  std::vector<float> host(layout_.total());
  backend_->copy_to_host(host.data(), grads_.get(), host.size() * sizeof(float));
  return host;
}

std::vector<float> Model::get_params(ParamRange range) const {
  assert(range.end() <= layout_.total());
  std::vector<float> host(range.count);
  backend_->copy_to_host(host.data(), params_.f32() + range.offset, range.count * sizeof(float));
  return host;
}

void Model::set_params(ParamRange range, const std::vector<float>& host) {
  assert(range.end() <= layout_.total() && host.size() == range.count);
  backend_->copy_to_device(params_.f32() + range.offset, host.data(), range.count * sizeof(float));
  backend_->refresh_matmul_weights(params_.f32() + range.offset, range.count);
}

std::vector<float> Model::get_grads(ParamRange range) const {
  assert(range.end() <= layout_.total());
  std::vector<float> host(range.count);
  backend_->copy_to_host(host.data(), grads_.f32() + range.offset, range.count * sizeof(float));
  return host;
}

std::vector<float> Model::get_logits() const {
  std::vector<float> host(static_cast<size_t>(B_) * T_ * config_.vocab_size);
  backend_->copy_to_host(host.data(), logits_, host.size() * sizeof(float));
  return host;
}

std::vector<float> Model::get_final_hidden() const {
  std::vector<float> host(static_cast<size_t>(B_) * T_ * config_.d_model);
  backend_->copy_to_host(host.data(), lnf_, host.size() * sizeof(float));
  return host;
}

void Model::zero_grad() {
  backend_->fill_zero(grads_.get(), grads_.bytes());
}

double Model::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
  assert(B >= 1 && B <= max_B_ && T >= 1 && T <= max_T_);
  Backend& be = *backend_;
  const ModelConfig& c = config_;
  const int N = B * T, C = c.d_model, V = c.vocab_size, F = c.d_ff;
  const int H = c.n_heads, KVH = c.n_kv_heads, hd = c.head_dim(), qkv = c.qkv_dim();
  const float eps = static_cast<float>(c.norm_eps);
  const float* w = params_.f32();
  B_ = B;
  T_ = T;

  be.copy_to_device(tokens_, inputs, sizeof(int32_t) * N);
  be.embedding_forward(residual_[0], tokens_, w + layout_.embedding(), N, C);
  for (int l = 0; l < c.n_layers; ++l) {
    const BlockOffsets& o = layout_.block(l);
    const LayerActs& a = layers_[l];
    // attention sub-block: resid_mid = x + wo(attention(rope(wqkv(rmsnorm(x)))))
    be.rmsnorm_forward(a.ln1, a.ln1_rstd, residual_[l], w + o.attn_norm, N, C, eps);
    be.matmul_forward(a.qkv, a.ln1, w + o.wqkv, N, C, qkv);
    be.rope_forward(a.qkv, rope_cos_, rope_sin_, N, T, H + KVH, hd, qkv);
    be.attention_forward(a.atty, a.att, a.qkv, B, T, H, KVH, hd);
    be.matmul_forward_residual(a.resid_mid, a.atty, w + o.wo, residual_[l], N, H * hd, C);
    // MLP sub-block: out = resid_mid + w_down(swiglu(w13(rmsnorm(resid_mid))))
    be.rmsnorm_forward(a.ln2, a.ln2_rstd, a.resid_mid, w + o.mlp_norm, N, C, eps);
    be.matmul_forward(a.h13, a.ln2, w + o.w13, N, C, 2 * F);
    be.swiglu_forward(a.hsw, a.h13, N, F);
    be.matmul_forward_residual(residual_[l + 1], a.hsw, w + o.w_down, a.resid_mid, N, F, C);
  }
  be.rmsnorm_forward(lnf_, lnf_rstd_, residual_[c.n_layers], w + layout_.final_norm(), N, C, eps);
  be.matmul_forward(logits_, lnf_, w + layout_.lm_head(), N, C, V);

  have_targets_ = targets != nullptr;
  if (!have_targets_) return 0.0;
  counted_ = 0;
  for (int n = 0; n < N; ++n) counted_ += targets[n] >= 0;
  be.copy_to_device(targets_, targets, sizeof(int32_t) * N);
  be.crossentropy_forward(losses_, lse_, logits_, targets_, N, V);
  return counted_ == 0 ? 0.0 : be.sum(losses_, N) / static_cast<double>(counted_);
}

void Model::backward(float loss_scale) {
  assert(have_targets_ && "backward() needs a forward() with targets");
  Backend& be = *backend_;
  const ModelConfig& c = config_;
  const int B = B_, T = T_, N = B * T, C = c.d_model, V = c.vocab_size, F = c.d_ff;
  const int H = c.n_heads, KVH = c.n_kv_heads, hd = c.head_dim(), qkv = c.qkv_dim();
  const float* w = params_.f32();
  float* dw = grads_.f32();
  const float dloss = counted_ == 0 ? 0.0f : loss_scale / static_cast<float>(counted_);

  // Head: the logits buffer becomes dlogits.
  be.crossentropy_backward(logits_, logits_, lse_, targets_, N, V, dloss);
  be.matmul_backward(dln_, dw + layout_.lm_head(), logits_, lnf_, w + layout_.lm_head(), N, C, V);
  be.fill_zero(dres_, sizeof(float) * N * C);
  be.rmsnorm_backward(dres_, dw + layout_.final_norm(), dln_, residual_[c.n_layers],
                      w + layout_.final_norm(), lnf_rstd_, N, C);
  // dres_ is the gradient of the residual stream; each sub-block adds its input's share.
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const BlockOffsets& o = layout_.block(l);
    const LayerActs& a = layers_[l];
    be.matmul_backward(dhsw_, dw + o.w_down, dres_, a.hsw, w + o.w_down, N, F, C);
    be.swiglu_backward(dh13_, dhsw_, a.h13, N, F);
    be.matmul_backward(dln_, dw + o.w13, dh13_, a.ln2, w + o.w13, N, C, 2 * F);
    be.rmsnorm_backward(dres_, dw + o.mlp_norm, dln_, a.resid_mid, w + o.mlp_norm, a.ln2_rstd, N,
                        C);
    be.matmul_backward(datty_, dw + o.wo, dres_, a.atty, w + o.wo, N, H * hd, C);
    be.attention_backward(dqkv_, att_ws_, datty_, a.qkv, a.atty, a.att, B, T, H, KVH, hd);
    be.rope_backward(dqkv_, rope_cos_, rope_sin_, N, T, H + KVH, hd, qkv);
    be.matmul_backward(dln_, dw + o.wqkv, dqkv_, a.ln1, w + o.wqkv, N, C, qkv);
    be.rmsnorm_backward(dres_, dw + o.attn_norm, dln_, residual_[l], w + o.attn_norm, a.ln1_rstd, N,
                        C);
  }
  be.embedding_backward(dw + layout_.embedding(), dres_, tokens_, N, C);
  have_targets_ = false;  // logits are consumed
}

}  // namespace dipaco
