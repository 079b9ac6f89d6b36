// A read-only view of document features: a row-major n × d float matrix (row i = document i's
// feature vector, e.g. a base model's mean last hidden state over its first 32 tokens).
#pragma once

#include <cstddef>
#include <span>

#include "util/status.h"

namespace dipaco {

struct FeatureMatrix {
  std::span<const float> data;  // rows · cols values, row-major
  size_t rows = 0;              // n documents
  size_t cols = 0;              // d features

  const float* row(size_t i) const { return data.data() + i * cols; }
};

// Checks that data holds rows · cols values, that cols > 0, and that every value is finite;
// the error names `what`, the row and the column ("features row 17, column 3 is NaN").
Status validate_features(const FeatureMatrix& x, const char* what = "features");

// Squared Euclidean distance between two d-vectors.
inline float squared_distance(const float* a, const float* b, size_t d) {
  float s = 0.0f;
  for (size_t j = 0; j < d; ++j) {
    float t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

}  // namespace dipaco
