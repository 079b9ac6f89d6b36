// dipaco export RUN --out DIR: write a run's finished paths as Hugging Face Llama directories
// and GGUF files, with the router and a provenance manifest (shared/export/export_run.h).
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "export/export_run.h"
#include "util/arg_parser.h"

namespace dipaco::cli {

namespace {

// "all" or "0,2,5" (also "0 2 5").
Result<std::vector<int>> parse_path_ids(const std::string& text) {
  std::vector<int> ids;
  if (text.empty() || text == "all") return ids;
  std::string item;
  std::string normalized = text;
  for (char& ch : normalized)
    if (ch == ',') ch = ' ';
  std::istringstream in(normalized);
  while (in >> item) {
    size_t used = 0;
    int id = -1;
    try {
      id = std::stoi(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size() || id < 0)
      return invalid_argument("--paths: '" + item +
                              "' is not a path id (use 'all' or ids like 0,2)");
    ids.push_back(id);
  }
  return ids;
}

}  // namespace

int cmd_export(const Args& args) {
  ArgParser parser("dipaco export",
                   "Export a run's finished paths for inference: per path a Hugging Face "
                   "LlamaForCausalLM directory (path-<id>/) and a llama.cpp GGUF file "
                   "(path-<id>.gguf), plus tokenizer, router and a dipaco.json manifest. RUN is "
                   "a 'dipaco run' directory (run.json) or a 'dipaco train' checkpoint directory. "
                   "The export appears at --out only when complete.");
  std::string run_dir, out_dir, paths = "all", formats = "hf,gguf", gguf_type = "f16", tokenizer;
  bool force = false;
  parser.add_positional("RUN", "run directory", &run_dir);
  parser.add_option("--out", "DIR", "export directory (must not exist)", &out_dir);
  parser.add_option("--paths", "all|ID,...", "which paths (default all finished paths)", &paths);
  parser.add_option("--format", "hf,gguf", "formats to write (default hf,gguf)", &formats);
  parser.add_choice("--gguf-type", {"f32", "f16", "bf16", "q8_0"},
                    "GGUF tensor type for matrices (default f16; norms stay f32)", &gguf_type);
  parser.add_option("--tokenizer", "FILE", "SentencePiece model to use instead of the run's",
                    &tokenizer);
  parser.add_flag("--force",
                  "replace --out if it is an earlier export (after the new export is complete)",
                  &force);
  auto usage_error = [&](const std::string& message) {
    std::fprintf(stderr, "dipaco export: %s\n\n%s", message.c_str(), parser.usage().c_str());
    return kExitUsage;
  };
  if (Status s = parser.parse(args); !s) return usage_error(s.message());
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  if (out_dir.empty()) return usage_error("--out DIR is required");
  ExportOptions options;
  options.hf = options.gguf = false;
  std::string normalized = formats;
  for (char& ch : normalized)
    if (ch == ',') ch = ' ';
  std::istringstream in(normalized);
  for (std::string f; in >> f;) {
    if (f == "hf") {
      options.hf = true;
    } else if (f == "gguf") {
      options.gguf = true;
    } else {
      return usage_error("--format: unknown format '" + f + "' (hf, gguf)");
    }
  }
  if (!options.hf && !options.gguf) return usage_error("--format: name hf, gguf or both");
  auto ids = parse_path_ids(paths);
  if (!ids.is_ok()) return usage_error(ids.status().message());
  options.path_ids = *ids;
  options.gguf_type = *parse_gguf_type(gguf_type);
  options.force = force;
  options.tokenizer = tokenizer;
  options.log = stdout;
  std::printf("exporting %s to %s\n", run_dir.c_str(), out_dir.c_str());
  std::fflush(stdout);
  auto result = export_run(run_dir, out_dir, options);
  if (!result.is_ok()) {
    std::fprintf(stderr, "dipaco export: %s\n(nothing was written to %s)\n",
                 result.status().message().c_str(), out_dir.c_str());
    return kExitFailure;
  }
  std::printf("exported %zu path%s to %s\n", result->path_ids.size(),
              result->path_ids.size() == 1 ? "" : "s", result->out_dir.c_str());
  return kExitOk;
}

}  // namespace dipaco::cli
