#include "optim/lr_schedule.h"

#include <cmath>

namespace dipaco {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps) {
    return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  if (step >= total_steps || total_steps <= warmup_steps)
    return step >= total_steps ? min_lr : peak_lr;
  double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace dipaco
