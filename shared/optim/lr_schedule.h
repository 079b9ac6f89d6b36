// Learning-rate schedule: linear warmup from 0 to the peak, then cosine decay to min_lr.
#pragma once

#include <cstdint>

namespace dipaco {

struct LrSchedule {
  double peak_lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 100;
  int64_t total_steps = 1000;

  // The rate for optimizer step `step` (1-based): peak * step / warmup during warmup, then
  // min + (peak - min) * (1 + cos(pi * progress)) / 2 with progress 0 -> 1 over the remaining
  // steps; min_lr after total_steps.
  double at(int64_t step) const;
};

}  // namespace dipaco
