#include "algo/outer_optimizer.h"

#include <cmath>
#include <sstream>
#include <utility>

namespace dipaco {
namespace {

std::string num(float v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void nesterov_step(float* theta, const float* g, float* v, size_t n, float lr, float mu) {
  for (size_t i = 0; i < n; ++i) {
    float vi = mu * v[i] + g[i];
    v[i] = vi;
    theta[i] -= lr * (g[i] + mu * vi);
  }
}

void momentum_step(float* theta, const float* g, float* v, size_t n, float lr, float mu) {
  for (size_t i = 0; i < n; ++i) {
    float vi = mu * v[i] + g[i];
    v[i] = vi;
    theta[i] -= lr * vi;
  }
}

void sgd_step(float* theta, const float* g, size_t n, float lr) {
  for (size_t i = 0; i < n; ++i) theta[i] -= lr * g[i];
}

// torch.optim.Adam's single-tensor update, amsgrad off, no weight decay.
void adam_step(float* theta, const float* g, float* m, float* v, size_t n,
               const OuterOptimizerConfig& c, int64_t t) {
  double bc1 = 1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(t));
  double bc2 = 1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(t));
  float step_size = static_cast<float>(c.lr / bc1);
  float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  float b1 = c.beta1, b2 = c.beta2, eps = c.eps;
  for (size_t i = 0; i < n; ++i) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    theta[i] -= step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
  }
}

}  // namespace

const char* outer_optimizer_name(OuterOptimizerKind kind) {
  switch (kind) {
    case OuterOptimizerKind::kNesterov: return "nesterov";
    case OuterOptimizerKind::kSgd: return "sgd";
    case OuterOptimizerKind::kAdam: return "adam";
  }
  return "unknown";
}

Result<OuterOptimizerKind> parse_outer_optimizer(std::string_view name) {
  for (OuterOptimizerKind k :
       {OuterOptimizerKind::kNesterov, OuterOptimizerKind::kSgd, OuterOptimizerKind::kAdam}) {
    if (name == outer_optimizer_name(k)) return k;
  }
  return invalid_argument("outer.optimizer: unknown optimizer '" + std::string(name) +
                          "': expected nesterov, sgd or adam");
}

OuterOptimizerConfig default_outer_config(OuterOptimizerKind kind) {
  OuterOptimizerConfig c;
  c.kind = kind;
  switch (kind) {
    case OuterOptimizerKind::kNesterov: break;
    case OuterOptimizerKind::kSgd:
      c.lr = 1.0f;
      c.momentum = 0.0f;
      break;
    case OuterOptimizerKind::kAdam:
      c.lr = 0.1f;
      c.momentum = 0.0f;
      break;
  }
  return c;
}

Status validate(const OuterOptimizerConfig& c) {
  if (!(std::isfinite(c.lr) && c.lr > 0.0f)) {
    return invalid_argument("outer.lr must be > 0, got " + num(c.lr));
  }
  if (c.kind != OuterOptimizerKind::kAdam && !(c.momentum >= 0.0f && c.momentum < 1.0f)) {
    return invalid_argument("outer.momentum must be in [0, 1), got " + num(c.momentum));
  }
  if (c.kind == OuterOptimizerKind::kNesterov && c.momentum == 0.0f) {
    return invalid_argument("outer.momentum must be > 0 for nesterov (use sgd for none)");
  }
  if (c.kind == OuterOptimizerKind::kAdam) {
    if (!(c.beta1 >= 0.0f && c.beta1 < 1.0f)) {
      return invalid_argument("outer.beta1 must be in [0, 1), got " + num(c.beta1));
    }
    if (!(c.beta2 >= 0.0f && c.beta2 < 1.0f)) {
      return invalid_argument("outer.beta2 must be in [0, 1), got " + num(c.beta2));
    }
    if (!(std::isfinite(c.eps) && c.eps > 0.0f)) {
      return invalid_argument("outer.eps must be > 0, got " + num(c.eps));
    }
  }
  return Status::ok();
}

OuterOptimizer::OuterOptimizer(const OuterOptimizerConfig& config, size_t n)
    : config_(config), n_(n) {
  state_.values.assign(state_values(), 0.0f);
}

Result<OuterOptimizer> OuterOptimizer::create(const OuterOptimizerConfig& config,
                                              size_t num_params) {
  DIPACO_RETURN_IF_ERROR(validate(config));
  return OuterOptimizer(config, num_params);
}

size_t OuterOptimizer::state_values() const {
  switch (config_.kind) {
    case OuterOptimizerKind::kNesterov: return n_;
    case OuterOptimizerKind::kSgd: return config_.momentum > 0.0f ? n_ : 0;
    case OuterOptimizerKind::kAdam: return 2 * n_;
  }
  return 0;
}

Status OuterOptimizer::step(std::span<float> theta, std::span<const float> outer_grad) {
  if (theta.size() != n_ || outer_grad.size() != n_) {
    return invalid_argument(
        std::string(outer_optimizer_name(config_.kind)) + " outer step: optimizer of " +
        std::to_string(n_) + " parameters given " + std::to_string(theta.size()) +
        " parameters and an outer gradient of " + std::to_string(outer_grad.size()));
  }
  ++state_.step;
  float* p = theta.data();
  const float* g = outer_grad.data();
  float* s = state_.values.data();
  switch (config_.kind) {
    case OuterOptimizerKind::kNesterov:
      nesterov_step(p, g, s, n_, config_.lr, config_.momentum);
      break;
    case OuterOptimizerKind::kSgd:
      if (config_.momentum > 0.0f) {
        momentum_step(p, g, s, n_, config_.lr, config_.momentum);
      } else {
        sgd_step(p, g, n_, config_.lr);
      }
      break;
    case OuterOptimizerKind::kAdam: adam_step(p, g, s, s + n_, n_, config_, state_.step); break;
  }
  return Status::ok();
}

Status OuterOptimizer::load_state(OuterOptimizerState state) {
  if (state.values.size() != state_values()) {
    return invalid_argument(std::string(outer_optimizer_name(config_.kind)) +
                            " outer optimizer state has " + std::to_string(state.values.size()) +
                            " values; this optimizer of " + std::to_string(n_) +
                            " parameters needs " + std::to_string(state_values()));
  }
  if (state.step < 0) {
    return invalid_argument("outer optimizer state has a negative step count " +
                            std::to_string(state.step));
  }
  state_ = std::move(state);
  return Status::ok();
}

}  // namespace dipaco
