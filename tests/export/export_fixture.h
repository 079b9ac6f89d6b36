// Fabricated runs for the export tests: a tiny SentencePiece tokenizer and a DiPaCo run
// directory (run.json + paths/path-<id>.safetensors) or a dense checkpoint directory, written
// from randomly initialised tiny models, so the tests do not depend on `dipaco run`.
#pragma once

#include <QDir>
#include <QString>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "data/tokenizer.h"
#include "export/json_value.h"
#include "export/path_chooser.h"
#include "model/model.h"
#include "routing/router.h"
#include "spm/sentencepiece_library.h"
#include "tensor/safetensors.h"
#include "util/atomic_file.h"

namespace export_fixture {

constexpr int kVocab = 320;

inline dipaco::ModelConfig tiny_config(int n_kv_heads = 2) {
  dipaco::ModelConfig c;
  c.vocab_size = kVocab;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.d_ff = 64;
  c.max_seq_len = 32;
  c.rope_theta = 10000.0;
  c.norm_eps = 1e-5;
  return c;
}

// A BPE model with dipaco's special ids (unk 0, bos 1, eos 2) and kVocab pieces.
inline dipaco::Result<std::string> train_tokenizer() {
  const char* words[] = {"the", "jury",   "said", "election", "county", "court", "was",    "of",
                         "a",   "report", "city", "vote",     "mayor",  "grand", "friday", "new"};
  std::mt19937 rng(7);
  std::vector<std::string> sentences;
  for (int i = 0; i < 400; ++i) {
    std::string s;
    for (int w = 0; w < 10; ++w) s += std::string(w ? " " : "") + words[rng() % 16];
    sentences.push_back(s + ".");
  }
  size_t next = 0;
  return dipaco::train_sentencepiece(
      {{"vocab_size", std::to_string(kVocab)},
       {"model_type", "bpe"},
       {"byte_fallback", "true"},
       {"minloglevel", "2"},
       {"num_threads", "1"},
       {"unk_id", "0"},
       {"bos_id", "1"},
       {"eos_id", "2"},
       {"pad_id", "-1"}},
      [&](std::string_view* s) {
        if (next == sentences.size()) return false;
        *s = sentences[next++];
        return true;
      },
      /*seed=*/1);
}

// Parameters of a tiny model: the standard init plus noise on every tensor (norm gains away
// from 1), so that a layout mistake anywhere changes the logits.
inline std::vector<float> random_params(const dipaco::ModelConfig& c, uint64_t seed) {
  dipaco::CpuBackend be(1);
  auto model = dipaco::Model::create(&be, c, 1, c.max_seq_len);
  model.value()->init_params(seed);
  std::vector<float> p = model.value()->get_params();
  std::mt19937_64 rng(seed + 1000);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (float& x : p) x += noise(rng);
  return p;
}

inline dipaco::Status write_path_file(const std::string& file, const dipaco::ModelConfig& c,
                                      const std::vector<float>& params) {
  dipaco::ParamLayout layout(c);
  std::vector<dipaco::SafetensorsWriteItem> items;
  for (const auto& t : layout.tensors())
    items.push_back({t.name, "F32", t.shape, params.data() + t.offset, t.numel * 4});
  return dipaco::write_safetensors(file, items, {{"model_config", c.to_string()}});
}

struct FakeRun {
  std::string dir;
  dipaco::ModelConfig config;
  std::vector<std::vector<float>> params;  // by path id, for the finished ones
  // With several paths: documents the run's k-means router sends to path i (its centroids are
  // these documents' features under the router's base model).
  std::vector<std::vector<int32_t>> routed_docs;
};

constexpr int kPrefixTokens = 8;

inline std::vector<int32_t> routed_doc(int i) {
  std::vector<int32_t> doc = {1};
  for (int t = 0; t < 11; ++t) doc.push_back(3 + (i * 97 + t * (7 + 2 * i)) % (kVocab - 3));
  return doc;
}

// RUN/paths/base.safetensors and RUN/router.safetensors (k-means, one centroid per path).
inline dipaco::Status write_router(FakeRun& run, int n_paths) {
  auto base_params = random_params(run.config, 99);
  DIPACO_RETURN_IF_ERROR(
      write_path_file(run.dir + "/paths/base.safetensors", run.config, base_params));
  dipaco::CpuBackend be(1);
  auto base = dipaco::Model::create(&be, run.config, 1, kPrefixTokens);
  if (!base.is_ok()) return base.status();
  (*base)->set_params(base_params);
  dipaco::Router router;
  router.method = dipaco::RoutingMethod::kKMeans;
  router.clusters = static_cast<size_t>(n_paths);
  router.d = static_cast<size_t>(run.config.d_model);
  router.prefix_tokens = kPrefixTokens;
  router.kmeans.k = router.clusters;
  router.kmeans.d = router.d;
  for (int i = 0; i < n_paths; ++i) {
    run.routed_docs.push_back(routed_doc(i));
    auto x = dipaco::prefix_features(**base, run.routed_docs.back(), kPrefixTokens);
    router.kmeans.centroids.insert(router.kmeans.centroids.end(), x.begin(), x.end());
  }
  return dipaco::save_router(router, run.dir + "/router.safetensors");
}

// RUN_DIR with `n_paths` paths; paths with id in `unfinished` have no checkpoint file.
inline dipaco::Result<FakeRun> make_run(const QString& dir, const std::string& tokenizer_bytes,
                                        int n_paths, std::vector<int> unfinished = {},
                                        dipaco::ModelConfig config = tiny_config()) {
  FakeRun run;
  run.dir = dir.toStdString();
  run.config = config;
  QDir().mkpath(dir + "/paths");
  DIPACO_RETURN_IF_ERROR(
      dipaco::write_file_atomically(run.dir + "/tokenizer.model", tokenizer_bytes));
  using dipaco::JsonValue;
  JsonValue paths = JsonValue::array();
  for (int id = 0; id < n_paths; ++id) {
    std::string ckpt = "paths/path-" + std::to_string(id) + ".safetensors";
    JsonValue p = JsonValue::object();
    p.set("id", JsonValue::number(id));
    p.set("modules", JsonValue::array({JsonValue::number(id % 2), JsonValue::number(2 + id / 2)}));
    p.set("shard_documents", JsonValue::number(10 + id));
    p.set("shard_tokens", JsonValue::number(1000 + id));
    p.set("val_loss", JsonValue::number(4.5 - 0.1 * id));
    p.set("checkpoint", JsonValue::string(ckpt));
    paths.push(p);
    run.params.push_back(random_params(config, 11 + static_cast<uint64_t>(id)));
    bool done = std::find(unfinished.begin(), unfinished.end(), id) == unfinished.end();
    if (done)
      DIPACO_RETURN_IF_ERROR(write_path_file(run.dir + "/" + ckpt, config, run.params.back()));
  }
  JsonValue router = JsonValue::object();
  const bool routed = n_paths > 1;
  router.set("kind", JsonValue::string(routed ? "kmeans" : "none"));
  router.set("file", routed ? JsonValue::string("router.safetensors") : JsonValue::null());
  router.set("base_checkpoint",
             routed ? JsonValue::string("paths/base.safetensors") : JsonValue::null());
  router.set("prefix_tokens", JsonValue::number(kPrefixTokens));
  router.set("reroute_every", JsonValue::number(0));
  if (routed) DIPACO_RETURN_IF_ERROR(write_router(run, n_paths));
  JsonValue root = JsonValue::object();
  root.set("format", JsonValue::string("dipaco-run/1"));
  root.set("name", JsonValue::string("tiny"));
  root.set("model", JsonValue::string(config.to_string()));
  root.set("tokenizer", JsonValue::string("tokenizer.model"));
  JsonValue data = JsonValue::object();
  data.set("train", JsonValue::string("train.tok"));
  data.set("val", JsonValue::string("val.tok"));
  root.set("data", data);
  root.set("paths", paths);
  root.set("router", router);
  root.set("dipaco_version", JsonValue::string("test"));
  DIPACO_RETURN_IF_ERROR(dipaco::write_file_atomically(run.dir + "/run.json", root.dump()));
  return run;
}

}  // namespace export_fixture
