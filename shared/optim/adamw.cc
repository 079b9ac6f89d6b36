#include "optim/adamw.h"

#include <cassert>

namespace dipaco {

AdamW::AdamW(Backend* backend, const ParamLayout& layout, AdamWConfig config)
    : backend_(backend),
      config_(config),
      count_(layout.total()),
      m_(backend, layout.total() * sizeof(float)),
      v_(backend, layout.total() * sizeof(float)) {
  for (const ParamTensor& t : layout.tensors()) {
    if (!spans_.empty() && spans_.back().decay == t.is_matrix) {
      spans_.back().count += t.numel;
    } else {
      spans_.push_back({t.offset, t.numel, t.is_matrix});
    }
  }
  if (ok()) {
    backend_->fill_zero(m_.get(), m_.bytes());
    backend_->fill_zero(v_.get(), v_.bytes());
  }
}

void AdamW::step(float* params, const float* grads, double lr, float grad_scale) {
  ++step_;
  for (const Span& s : spans_) {
    backend_->adamw_update(
        params + s.offset, grads + s.offset, m_.f32() + s.offset, v_.f32() + s.offset, s.count,
        static_cast<float>(lr), static_cast<float>(config_.beta1),
        static_cast<float>(config_.beta2), static_cast<float>(config_.eps),
        s.decay ? static_cast<float>(config_.weight_decay) : 0.0f, grad_scale, step_);
  }
}

std::vector<float> AdamW::get_m() const {
  std::vector<float> host(count_);
  backend_->copy_to_host(host.data(), m_.get(), count_ * sizeof(float));
  return host;
}

std::vector<float> AdamW::get_v() const {
  std::vector<float> host(count_);
  backend_->copy_to_host(host.data(), v_.get(), count_ * sizeof(float));
  return host;
}

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step) {
  assert(m.size() == count_ && v.size() == count_);
  backend_->copy_to_device(m_.get(), m.data(), count_ * sizeof(float));
  backend_->copy_to_device(v_.get(), v.data(), count_ * sizeof(float));
  step_ = step;
}

}  // namespace dipaco
