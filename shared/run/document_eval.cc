#include "run/document_eval.h"

#include <algorithm>
#include <vector>

namespace dipaco {

EvalSum evaluate_documents(Model& model, const TokenFile& file, uint64_t max_tokens) {
  const int B = model.max_batch(), T = model.max_seq_len();
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size()),
      window(static_cast<size_t>(T) + 1);
  EvalSum sum;
  int rows = 0;
  uint64_t counted = 0;
  auto flush = [&] {
    if (rows == 0) return;
    double mean = model.forward(inputs.data(), targets.data(), rows, T);
    sum.loss_sum += mean * static_cast<double>(counted);
    sum.tokens += counted;
    rows = 0;
    counted = 0;
  };
  for (uint64_t d = 0; d < file.num_documents(); ++d) {
    const uint64_t begin = file.document_begin(d), end = file.document_end(d);
    for (uint64_t s = begin; s + 1 < end; s += static_cast<uint64_t>(T)) {
      if (max_tokens != 0 && sum.tokens + counted >= max_tokens) break;
      const auto len = static_cast<int>(std::min<uint64_t>(end - s, static_cast<uint64_t>(T) + 1));
      file.read(s, static_cast<uint64_t>(len), window.data());
      int32_t* in = inputs.data() + static_cast<size_t>(rows) * T;
      int32_t* tg = targets.data() + static_cast<size_t>(rows) * T;
      std::fill(in, in + T, 0);
      std::fill(tg, tg + T, -1);
      for (int t = 0; t + 1 < len; ++t) {
        in[t] = window[static_cast<size_t>(t)];
        tg[t] = window[static_cast<size_t>(t) + 1];
      }
      counted += static_cast<uint64_t>(len - 1);
      if (++rows == B) flush();
    }
  }
  flush();
  return sum;
}

}  // namespace dipaco
