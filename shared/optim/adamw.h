// AdamW over a model's parameter buffer: first and second moments in two device buffers with
// the parameters' layout (so a module's optimizer state is the same slice as its weights).
// Weight decay applies to matrices (embedding, projections, head), not to norm gains.
#pragma once

#include <cstdint>
#include <vector>

#include "model/param_layout.h"
#include "tensor/backend.h"
#include "tensor/device_buffer.h"
#include "util/status.h"

namespace dipaco {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  // Allocates zeroed moments; ok() is false when the device is out of memory.
  AdamW(Backend* backend, const ParamLayout& layout, AdamWConfig config);
  bool ok() const { return m_.ok() && v_.ok(); }

  const AdamWConfig& config() const { return config_; }
  // Steps taken so far (the next update uses step_count() + 1 for bias correction).
  int64_t step_count() const { return step_; }
  float* m() const { return m_.f32(); }
  float* v() const { return v_.f32(); }
  size_t size() const { return count_; }

  // params -= AdamW(grads * grad_scale) at learning rate lr.
  void step(float* params, const float* grads, double lr, float grad_scale);

  // Host copies of the state, for checkpoints.
  std::vector<float> get_m() const;
  std::vector<float> get_v() const;
  void set_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step);

 private:
  struct Span {
    size_t offset, count;
    bool decay;
  };
  Backend* backend_;
  AdamWConfig config_;
  size_t count_;
  std::vector<Span> spans_;  // runs of tensors sharing a decay setting
  DeviceBuffer m_, v_;
  int64_t step_ = 0;
};

}  // namespace dipaco
