#include "export/generate.h"

#include <algorithm>

namespace dipaco {

Result<std::vector<int32_t>> generate_tokens(Model& model, const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options,
                                             const std::function<void(int32_t)>& on_token) {
  const int V = model.config().vocab_size;
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  for (int32_t t : prompt)
    if (t < 0 || t >= V)
      return invalid_argument("prompt token " + std::to_string(t) + " is outside the vocabulary");
  Sampler sampler(options.sampling);
  std::vector<int32_t> context = prompt;
  std::vector<int32_t> out;
  const int window = model.max_seq_len();
  for (int step = 0; step < options.max_new_tokens; ++step) {
    const int T = static_cast<int>(std::min<size_t>(context.size(), window));
    const int32_t* input = context.data() + (context.size() - T);
    model.forward(input, nullptr, 1, T);
    std::vector<float> logits = model.get_logits();
    int32_t next = sampler.sample(logits.data() + static_cast<size_t>(T - 1) * V, V);
    out.push_back(next);
    context.push_back(next);
    if (on_token) on_token(next);
    if (next == options.eos_id) break;
  }
  return out;
}

}  // namespace dipaco
