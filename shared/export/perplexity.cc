#include "export/perplexity.h"

#include <algorithm>
#include <cmath>
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

std::vector<double> token_nll(Model& model, std::span<const int32_t> doc) {
  std::vector<double> out;
  const size_t window = static_cast<size_t>(model.max_seq_len());
  const int V = model.config().vocab_size;
  for (size_t start = 0; start + 1 < doc.size(); start += window) {
    const size_t T = std::min(window, doc.size() - 1 - start);
    model.forward(doc.data() + start, nullptr, 1, static_cast<int>(T));
    std::vector<float> logits = model.get_logits();
    for (size_t t = 0; t < T; ++t) {
      const float* row = logits.data() + t * V;
      double top = *std::max_element(row, row + V);
      double sum = 0;
      for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - top);
      out.push_back(top + std::log(sum) - static_cast<double>(row[doc[start + t + 1]]));
    }
  }
  return out;
}

}  // namespace dipaco
