// dipaco generate EXPORT --prompt TEXT: choose a path for the prompt and sample a continuation
// from it, printing text as tokens are chosen (shared/export/generate.h).
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include "backend/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "export/export_reader.h"
#include "export/generate.h"
#include "export/path_chooser.h"
#include "spm/sentencepiece_library.h"
#include "util/arg_parser.h"

namespace dipaco::cli {

int cmd_generate(const Args& args) {
  ArgParser parser("dipaco generate",
                   "Sample a continuation of --prompt from an exported path. EXPORT is a "
                   "'dipaco export' directory or one Hugging Face Llama directory inside it. The "
                   "same --seed gives the same text.");
  std::string dir, prompt;
  int64_t path = -1, max_tokens = 64, top_k = 40, seed = 1, threads = 0;
  double temperature = 0.8, top_p = 0.95;
  parser.add_positional("EXPORT", "export directory", &dir);
  parser.add_option("--prompt", "TEXT", "text to continue", &prompt);
  parser.add_option("--path", "ID", "use this path (default: route; the only path)", &path, 0,
                    1'000'000);
  parser.add_option("--max-tokens", "N", "new tokens at most (default 64)", &max_tokens, 1,
                    1'000'000);
  parser.add_option("--temperature", "T", "softmax temperature, 0 = greedy (default 0.8)",
                    &temperature, 0.0, 100.0);
  parser.add_option("--top-k", "K", "sample from the K likeliest tokens, 0 = all (default 40)",
                    &top_k, 0, 1'000'000'000);
  parser.add_option("--top-p", "P", "nucleus: smallest set with mass >= P (default 0.95)", &top_p,
                    1e-9, 1.0);
  parser.add_option("--seed", "S", "random seed (default 1)", &seed, 0, INT64_MAX);
  int64_t reroute_every = -1;
  parser.add_option("--reroute-every", "W",
                    "route again after every W new tokens, 0 = never (default: the router's)",
                    &reroute_every, 0, 1'000'000);
  parser.add_option("--threads", "N", "CPU threads, 0 = all cores", &threads, 0, 4096);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco generate: %s\n\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "dipaco generate: %s\n", s.message().c_str());
    return kExitFailure;
  };
  auto ex = open_export(dir);
  if (!ex.is_ok()) return fail(ex.status());
  auto tokenizer = SentencePieceModel::load_file(ex->tokenizer);
  if (!tokenizer.is_ok()) return fail(tokenizer.status());
  auto encoded = tokenizer->encode(prompt);
  if (!encoded.is_ok()) return fail(encoded.status());
  std::vector<int32_t> ids;
  if (tokenizer->bos_id() >= 0) ids.push_back(tokenizer->bos_id());
  ids.insert(ids.end(), encoded->begin(), encoded->end());
  CpuBackend backend(static_cast<int>(threads));
  auto chooser = make_path_chooser(
      *ex, path >= 0 ? std::optional<int>(static_cast<int>(path)) : std::nullopt, &backend);
  if (!chooser.is_ok()) return fail(chooser.status());
  // Path models are loaded when first chosen and kept: re-routing may come back to one.
  std::map<int, std::unique_ptr<Model>> models;
  std::vector<int> chosen_paths;
  ModelPicker pick = [&](const std::vector<int32_t>& context, bool rerouting) -> Result<Model*> {
    DIPACO_ASSIGN_OR_RETURN(int id, rerouting ? (*chooser)->choose_at(context, context.size())
                                              : (*chooser)->choose(context));
    if (chosen_paths.empty() || chosen_paths.back() != id) chosen_paths.push_back(id);
    auto& slot = models[id];
    if (!slot) {
      DIPACO_ASSIGN_OR_RETURN(slot, load_path_model(&backend, *ex->find_path(id)));
      if (static_cast<int>(context.size()) > slot->max_seq_len())
        std::fprintf(stderr, "note: the context has %zu tokens; path %d sees the last %d\n",
                     context.size(), id, slot->max_seq_len());
    }
    return slot.get();
  };

  GenerateOptions options;
  options.sampling.temperature = temperature;
  options.sampling.top_k = static_cast<int>(top_k);
  options.sampling.top_p = top_p;
  options.sampling.seed = static_cast<uint64_t>(seed);
  options.max_new_tokens = static_cast<int>(max_tokens);
  options.eos_id = tokenizer->eos_id();
  options.reroute_every =
      reroute_every >= 0 ? static_cast<int>(reroute_every) : (*chooser)->reroute_every();
  // Streaming: decode prompt + new tokens and print what extends the text printed so far
  // (decoding the new tokens alone would lose the space SentencePiece encodes in a piece).
  std::vector<int32_t> all = ids;
  auto prompt_text = tokenizer->decode(ids);
  std::string printed = prompt_text.is_ok() ? *prompt_text : prompt;
  std::printf("%s", printed.c_str());
  std::fflush(stdout);
  auto start = std::chrono::steady_clock::now();
  auto result = generate_tokens(pick, ids, options, [&](int32_t token) {
    if (token == options.eos_id) return;
    all.push_back(token);
    auto text = tokenizer->decode(all);
    if (text.is_ok() && text->size() > printed.size() &&
        text->compare(0, printed.size(), printed) == 0) {
      std::printf("%s", text->c_str() + printed.size());
      std::fflush(stdout);
      printed = *text;
    }
  });
  if (!result.is_ok()) return fail(result.status());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\n");
  std::string paths;
  for (int id : chosen_paths) paths += (paths.empty() ? "" : " -> ") + std::to_string(id);
  std::string reroute = options.reroute_every > 0
                            ? ", re-routing every " + std::to_string(options.reroute_every)
                            : "";
  std::fprintf(stderr, "[path %s (%s%s); %zu new tokens in %.2f s, %.1f tokens/s]\n", paths.c_str(),
               (*chooser)->describe().c_str(), reroute.c_str(), result->size(), seconds,
               seconds > 0 ? static_cast<double>(result->size()) / seconds : 0.0);
  return kExitOk;
}

}  // namespace dipaco::cli
