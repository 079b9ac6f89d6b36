#include "export/perplexity.h"

#include <algorithm>
#include <vector>

namespace dipaco {

NllSum document_nll(Model& model, std::span<const int32_t> doc) {
  NllSum sum;
  const size_t window = static_cast<size_t>(model.max_seq_len());
  std::vector<int32_t> targets(window);
  for (size_t start = 0; start + 1 < doc.size(); start += window) {
    // Window [start, start + T] of T + 1 tokens: inputs doc[start, start+T), targets shifted.
    const size_t T = std::min(window, doc.size() - 1 - start);
    std::copy(doc.begin() + start + 1, doc.begin() + start + 1 + T, targets.begin());
    double mean = model.forward(doc.data() + start, targets.data(), 1, static_cast<int>(T));
    sum.nll += mean * static_cast<double>(T);
    sum.tokens += static_cast<int64_t>(T);
  }
  return sum;
}

}  // namespace dipaco
