// RunSource: a trained run, as `dipaco export` reads it. Two kinds of directory qualify:
//
//   DiPaCo run (written by `dipaco run`): RUN/run.json, format "dipaco-run/1", with the model
//     config, tokenizer, data files, the paths (id, modules, shard sizes, val_loss, checkpoint
//     relative to RUN) and the router (kind, file, base_checkpoint, prefix_tokens,
//     reroute_every). A path is finished when its checkpoint file exists.
//   Dense run (written by `dipaco train`): RUN/checkpoint.safetensors (+ RUN/config.toml). It is
//     read as a run with one finished path, id 0, and no router; the tokenizer is the
//     tokenizer.model next to the training token file (data.train), unless one is given, and
//     its val_loss the last one in RUN/metrics.jsonl.
//
// Relative file names in run.json are resolved against RUN first, then the current directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "util/status.h"

namespace dipaco {

constexpr const char* kRunFormat = "dipaco-run/1";

struct RunPath {
  int id = 0;
  std::vector<int> modules;
  int64_t shard_documents = -1;  // -1: unknown
  int64_t shard_tokens = -1;
  std::optional<double> val_loss;
  std::string checkpoint;  // resolved file name; "" when the run has none for this path
  bool finished = false;   // the checkpoint file exists
};

struct RunRouter {
  std::string kind = "none";  // kmeans | product_kmeans | discriminative | random | none
  std::string file;           // resolved; "" when none
  std::string base_checkpoint;
  int prefix_tokens = 0;
  int reroute_every = 0;
};

struct RunSource {
  std::string kind;  // "dipaco-run" or "dense-checkpoint"
  std::string dir;   // as given
  std::string name;
  ModelConfig model;
  std::string tokenizer;  // resolved file name
  std::string train_data, val_data;
  std::vector<RunPath> paths;
  RunRouter router;
  std::string dipaco_version;  // of the run's writer, "" when unknown
  std::string manifest;        // run.json's text ("" for a dense run), kept for provenance
  std::string grid;            // resolved grid file (run.json "grid"), "" when none

  // nullptr when the run has no path `id`.
  const RunPath* find_path(int id) const;
};

// Reads RUN_DIR. `tokenizer_override`, when not empty, replaces the run's tokenizer file.
// Errors name the file and key ("runs/a/run.json: paths[2].id: expected an integer").
Result<RunSource> open_run(const std::string& run_dir, const std::string& tokenizer_override = "");

// One path's parameters (ParamLayout order) from a safetensors file holding every ParamLayout
// tensor by name as F32 (path files and training checkpoints both qualify; extra tensors such
// as optimizer state are ignored). A "model_config" metadata entry, when present, must match
// `config`. Missing tensors, other dtypes or shapes, non-finite values are errors naming the
// file and tensor.
Result<std::vector<float>> read_path_params(const std::string& file, const ModelConfig& config);

}  // namespace dipaco
