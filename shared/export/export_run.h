// export_run: `dipaco export RUN --out DIR` — a run's finished paths as files other tools load.
//
// DIR after a successful export:
//   dipaco.json            manifest (format "dipaco-export/1"): source run, model config,
//                          tokenizer and data hashes, per path modules / shard sizes / val loss /
//                          parameter hash / files, router, dipaco version
//   tokenizer.model        the run's SentencePiece model
//   path-<id>/             Hugging Face LlamaForCausalLM directory (hf_llama.h)      [hf]
//   path-<id>.gguf         llama.cpp GGUF, tensor type per ExportOptions (gguf_writer.h) [gguf]
//   router.safetensors     the run's router file, copied as is              (when the run has one)
//   router-base.safetensors  the model the router's document features come from  (likewise)
//   router.json            the router's kind, prefix_tokens, reroute_every and files
//   grid.toml              the run's grid, copied (when run.json names one)
//
// All files are written into a fresh temporary directory beside DIR, which is renamed to DIR
// only when everything succeeded: a failed export leaves nothing behind. DIR must not exist
// unless `force`, and then it must be an earlier export (its dipaco.json says so) or an empty
// directory; the old DIR is replaced only after the new one is complete.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "export/gguf_writer.h"
#include "util/status.h"

namespace dipaco {

constexpr const char* kExportFormat = "dipaco-export/1";

struct ExportOptions {
  std::vector<int> path_ids;  // empty: every finished path
  bool hf = true;
  bool gguf = true;
  GgufType gguf_type = GgufType::kF16;
  bool force = false;
  std::string tokenizer;  // overrides the run's tokenizer file when not empty
  FILE* log = nullptr;    // one line per file written, when set
};

struct ExportSummary {
  std::string out_dir;
  std::vector<int> path_ids;
  std::vector<std::string> files;  // relative to out_dir
};

Result<ExportSummary> export_run(const std::string& run_dir, const std::string& out_dir,
                                 const ExportOptions& options);

}  // namespace dipaco
