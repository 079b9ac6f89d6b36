#include "routing/feature_matrix.h"

#include <cmath>
#include <string>

namespace dipaco {

Status validate_features(const FeatureMatrix& x, const char* what) {
  if (x.cols == 0) {
    return invalid_argument(std::string(what) + " have 0 dimensions: routing needs d > 0");
  }
  if (x.rows > x.data.size() / x.cols || x.data.size() != x.rows * x.cols) {
    return invalid_argument(std::string(what) + ": " + std::to_string(x.data.size()) +
                            " values for " + std::to_string(x.rows) + " rows of " +
                            std::to_string(x.cols) + " (expected " +
                            std::to_string(x.rows * x.cols) + ")");
  }
  for (size_t i = 0; i < x.data.size(); ++i) {
    float v = x.data[i];
    if (!std::isfinite(v)) {
      return invalid_argument(std::string(what) + " row " + std::to_string(i / x.cols) +
                              ", column " + std::to_string(i % x.cols) + " is " +
                              (std::isnan(v) ? "NaN" : "infinite"));
    }
  }
  return Status::ok();
}

}  // namespace dipaco
