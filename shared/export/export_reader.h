// open_export: an export directory as `dipaco generate` and `dipaco eval` read it.
//
// Accepts either an export root (dipaco.json, see export_run.h) or a single Hugging Face Llama
// directory (config.json + model.safetensors + tokenizer.model), which is read as an export
// with one path, id 0, and no router. Paths must have their HF directory (exports made with
// --format gguf only cannot be run by dipaco).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "export/hf_llama.h"
#include "model/model.h"
#include "tensor/backend.h"
#include "util/status.h"

namespace dipaco {

struct ExportedPath {
  int id = 0;
  std::string hf_dir;  // resolved
};

struct ExportedRouter {
  std::string kind = "none";
  std::string file;             // resolved, "" when none
  std::string base_checkpoint;  // resolved, "" when none
  int prefix_tokens = 0;
  int reroute_every = 0;
};

struct OpenedExport {
  std::string dir;
  std::string tokenizer;  // resolved tokenizer.model
  std::vector<ExportedPath> paths;
  ExportedRouter router;

  const ExportedPath* find_path(int id) const;
  // "0, 1, 3"
  std::string path_ids() const;
};

Result<OpenedExport> open_export(const std::string& dir);

// The path's model (load_hf_export) on `backend`, sized for batch 1 x its full context.
Result<std::unique_ptr<Model>> load_path_model(Backend* backend, const ExportedPath& path);

}  // namespace dipaco
