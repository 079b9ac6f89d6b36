// Routing features of documents (DiPaCo): the mean of a base model's last hidden state (the
// final RMSNorm output) over a document's first `prefix_tokens` tokens, or over all of it when
// it is shorter. Only the prefix is read, so routing a document costs one short forward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/token_file.h"
#include "model/model.h"
#include "util/status.h"

namespace dipaco {

// One span of tokens to featurize (a document, or the context before a re-routing point).
struct TokenSpan {
  uint64_t begin = 0;  // token offset in the file
  uint64_t end = 0;    // exclusive; end > begin
};

// rows = spans.size(), cols = d_model, row-major. The model's max_batch and max_seq_len bound
// one forward; prefix_tokens must be <= max_seq_len. Spans are taken from their start.
Result<std::vector<float>> compute_span_features(Model& base, const TokenFile& file,
                                                 std::span<const TokenSpan> spans,
                                                 int prefix_tokens);

// The spans of the given documents (all documents when `documents` is empty).
std::vector<TokenSpan> document_spans(const TokenFile& file,
                                      std::span<const uint64_t> documents = {});

}  // namespace dipaco
