#include "routing/document_features.h"

#include <algorithm>
#include <string>

namespace dipaco {

std::vector<TokenSpan> document_spans(const TokenFile& file, std::span<const uint64_t> documents) {
  std::vector<TokenSpan> spans;
  if (documents.empty()) {
    for (uint64_t d = 0; d < file.num_documents(); ++d)
      spans.push_back({file.document_begin(d), file.document_end(d)});
  } else {
    for (uint64_t d : documents) spans.push_back({file.document_begin(d), file.document_end(d)});
  }
  return spans;
}

Result<std::vector<float>> compute_span_features(Model& base, const TokenFile& file,
                                                 std::span<const TokenSpan> spans,
                                                 int prefix_tokens) {
  if (prefix_tokens < 1 || prefix_tokens > base.max_seq_len()) {
    return invalid_argument("routing prefix of " + std::to_string(prefix_tokens) +
                            " tokens does not fit the base model's sequence length " +
                            std::to_string(base.max_seq_len()));
  }
  const int C = base.config().d_model;
  const int B = base.max_batch();
  const int T = prefix_tokens;
  std::vector<float> features(spans.size() * static_cast<size_t>(C), 0.0f);
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T);
  std::vector<int> lengths(static_cast<size_t>(B));
  for (size_t first = 0; first < spans.size(); first += static_cast<size_t>(B)) {
    int rows = static_cast<int>(std::min<size_t>(static_cast<size_t>(B), spans.size() - first));
    std::fill(inputs.begin(), inputs.end(), 0);
    for (int r = 0; r < rows; ++r) {
      const TokenSpan& s = spans[first + static_cast<size_t>(r)];
      if (s.end <= s.begin || s.end > file.num_tokens()) {
        return invalid_argument(file.path() + ": token span [" + std::to_string(s.begin) + ", " +
                                std::to_string(s.end) + ") is empty or outside the file");
      }
      int len = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(T), s.end - s.begin));
      lengths[static_cast<size_t>(r)] = len;
      file.read(s.begin, static_cast<uint64_t>(len), inputs.data() + static_cast<size_t>(r) * T);
    }
    // Attention is causal, so padding after a short span does not change its positions.
    base.forward(inputs.data(), nullptr, rows, T);
    std::vector<float> hidden = base.get_final_hidden();
    for (int r = 0; r < rows; ++r) {
      float* out = features.data() + (first + static_cast<size_t>(r)) * C;
      int len = lengths[static_cast<size_t>(r)];
      for (int t = 0; t < len; ++t) {
        const float* h = hidden.data() + (static_cast<size_t>(r) * T + t) * C;
        for (int c = 0; c < C; ++c) out[c] += h[c];
      }
      for (int c = 0; c < C; ++c) out[c] /= static_cast<float>(len);
    }
  }
  return features;
}

}  // namespace dipaco
