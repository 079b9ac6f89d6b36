#include "tensor/backend.h"

#include <cmath>

namespace dipaco {

void rope_tables(float* cos_out, float* sin_out, int T_max, int hd, double theta) {
  int half = hd / 2;
  for (int t = 0; t < T_max; ++t) {
    for (int i = 0; i < half; ++i) {
      double inv_freq = std::pow(theta, -2.0 * i / hd);
      double angle = t * inv_freq;
      cos_out[t * half + i] = static_cast<float>(std::cos(angle));
      sin_out[t * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

}  // namespace dipaco
