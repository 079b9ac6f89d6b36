// Outer optimizers: how a module's global parameters θ move given this round's outer gradient
// Δ = θ_global − θ_local (the aggregated one from module_aggregation.h).
//
// Semantics are those of the torch optimizers applied to Δ as the gradient (no weight decay,
// no dampening):
//   kNesterov  torch.optim.SGD(lr, momentum=μ, nesterov=True)     v = μ·v + Δ; θ −= lr·(Δ + μ·v)
//   kSgd       torch.optim.SGD(lr, momentum=μ), μ = 0 by default   v = μ·v + Δ; θ −= lr·v
//              (μ = 0: θ −= lr·Δ; with lr = 1 this is plain averaging of the replicas, FedAvg)
//   kAdam      torch.optim.Adam(lr, betas=(β1, β2), eps)            bias-corrected first and
//              second moments; θ −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps)
// Arithmetic is float32 per value; bias corrections in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dipaco {

enum class OuterOptimizerKind { kNesterov, kSgd, kAdam };

const char* outer_optimizer_name(OuterOptimizerKind kind);  // "nesterov", "sgd", "adam"
Result<OuterOptimizerKind> parse_outer_optimizer(std::string_view name);

struct OuterOptimizerConfig {
  OuterOptimizerKind kind = OuterOptimizerKind::kNesterov;
  float lr = 0.7f;        // DiLoCo's outer learning rate
  float momentum = 0.9f;  // kNesterov, kSgd (μ)
  float beta1 = 0.9f;     // kAdam
  float beta2 = 0.999f;   // kAdam
  float eps = 1e-8f;      // kAdam
};

// The starting point for each kind: Nesterov lr 0.7 μ 0.9 (DiLoCo); SGD lr 1.0 μ 0 (averaging);
// Adam lr 0.1 (not from the papers: a starting value for the comparison, to be tuned).
OuterOptimizerConfig default_outer_config(OuterOptimizerKind kind);

// Checks the ranges; errors name the key as in a grid file ("outer.lr must be > 0, got -1").
Status validate(const OuterOptimizerConfig& config);

// Everything an outer optimizer remembers, for checkpoints: the number of steps taken and one
// flat float vector: kNesterov/kSgd v (n values; empty for kSgd with μ = 0), kAdam m then v
// (2n values).
struct OuterOptimizerState {
  int64_t step = 0;
  std::vector<float> values;
};

class OuterOptimizer {
 public:
  // num_params: size of the module's parameter slice. Validates the config.
  static Result<OuterOptimizer> create(const OuterOptimizerConfig& config, size_t num_params);

  const OuterOptimizerConfig& config() const { return config_; }
  size_t num_params() const { return n_; }
  int64_t step_count() const { return state_.step; }

  // θ ← θ − update(Δ), in place. Both spans hold num_params() values.
  Status step(std::span<float> theta, std::span<const float> outer_grad);

  const OuterOptimizerState& state() const { return state_; }
  // Restores a state saved by state(); checks the number of values against this optimizer.
  Status load_state(OuterOptimizerState state);

 private:
  OuterOptimizer(const OuterOptimizerConfig& config, size_t n);
  size_t state_values() const;

  OuterOptimizerConfig config_;
  size_t n_;
  OuterOptimizerState state_;
};

}  // namespace dipaco
