#include "data/corpus_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "data/shuffle.h"

namespace dipaco {

Result<CorpusSplit> split_corpus(size_t num_documents, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0)) {
    return invalid_argument("validation fraction " + std::to_string(val_fraction) +
                            " is outside [0, 1)");
  }
  size_t num_val =
      static_cast<size_t>(std::llround(val_fraction * static_cast<double>(num_documents)));
  if (val_fraction > 0.0 && num_val == 0) num_val = 1;
  if (num_val >= num_documents) {
    return invalid_argument("corpus has " + std::to_string(num_documents) +
                            " documents: too few to hold out " + std::to_string(num_val) +
                            " for validation and still train (lower --val-fraction or add text)");
  }
  std::vector<size_t> order(num_documents);
  std::iota(order.begin(), order.end(), size_t{0});
  deterministic_shuffle(order, mix_seed(seed, 0x5711ULL));
  CorpusSplit split;
  split.validation.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(num_val));
  split.train.assign(order.begin() + static_cast<std::ptrdiff_t>(num_val), order.end());
  std::sort(split.validation.begin(), split.validation.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

}  // namespace dipaco
