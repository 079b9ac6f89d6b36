#include "export/generate.h"

#include <algorithm>

namespace dipaco {

Result<std::vector<int32_t>> generate_tokens(const ModelPicker& pick,
                                             const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options,
                                             const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  Sampler sampler(options.sampling);
  std::vector<int32_t> context = prompt;
  std::vector<int32_t> out;
  Model* model = nullptr;
  for (int step = 0; step < options.max_new_tokens; ++step) {
    if (step == 0 || (options.reroute_every > 0 && step % options.reroute_every == 0)) {
      DIPACO_ASSIGN_OR_RETURN(model, pick(context, step != 0));
      const int V = model->config().vocab_size;
      for (int32_t t : prompt)
        if (t < 0 || t >= V)
          return invalid_argument("prompt token " + std::to_string(t) +
                                  " is outside the vocabulary");
    }
    const int V = model->config().vocab_size;
    const size_t window = static_cast<size_t>(model->max_seq_len());
    const int T = static_cast<int>(std::min(context.size(), window));
    const int32_t* input = context.data() + (context.size() - T);
    model->forward(input, nullptr, 1, T);
    std::vector<float> logits = model->get_logits();
    int32_t next = sampler.sample(logits.data() + static_cast<size_t>(T - 1) * V, V);
    out.push_back(next);
    context.push_back(next);
    if (on_token) on_token(next);
    if (next == options.eos_id) break;
  }
  return out;
}

Result<std::vector<int32_t>> generate_tokens(Model& model, const std::vector<int32_t>& prompt,
                                             const GenerateOptions& options,
                                             const std::function<void(int32_t)>& on_token) {
  return generate_tokens(
      [&model](const std::vector<int32_t>&, bool) -> Result<Model*> { return &model; }, prompt,
      options, on_token);
}

}  // namespace dipaco
