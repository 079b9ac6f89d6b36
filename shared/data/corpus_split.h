// Splitting a corpus into training and validation documents, deterministically by seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/status.h"

namespace dipaco {

struct CorpusSplit {
  std::vector<size_t> train;       // document indices, ascending
  std::vector<size_t> validation;  // document indices, ascending
};

// Puts round(val_fraction * num_documents) documents (at least 1 when val_fraction > 0) into
// validation, chosen by a shuffle seeded with `seed`; the rest train. The same (num_documents,
// val_fraction, seed) always gives the same split, on every platform. Errors when val_fraction
// is outside [0, 1) or training would get no document.
Result<CorpusSplit> split_corpus(size_t num_documents, double val_fraction, uint64_t seed);

}  // namespace dipaco
