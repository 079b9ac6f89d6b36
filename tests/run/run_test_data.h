// Tiny corpora and grids for the run tests: two "topics" with disjoint vocabularies, so routing
// has something to find and a small model can learn.
#pragma once

#include <QString>
#include <string>
#include <vector>

#include "data/shuffle.h"
#include "data/token_file.h"

namespace dipaco::test {

constexpr uint32_t kTinyVocab = 64;

// `docs` documents of 60..140 tokens: BOS, then tokens of topic (d % 2) following a repeating
// stride pattern with noise, then EOS.
inline std::vector<std::vector<uint32_t>> tiny_documents(int docs, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<std::vector<uint32_t>> out;
  for (int d = 0; d < docs; ++d) {
    const uint32_t base = d % 2 == 0 ? 3 : 33, span = 30;
    uint32_t len = 60 + static_cast<uint32_t>(rng.next() % 80);
    uint32_t stride = 1 + static_cast<uint32_t>(rng.next() % 3),
             x = static_cast<uint32_t>(rng.next() % span);
    std::vector<uint32_t> doc = {1};
    for (uint32_t i = 0; i < len; ++i) {
      x = (x + stride) % span;
      doc.push_back(base + (rng.next() % 10 == 0 ? static_cast<uint32_t>(rng.next() % span) : x));
    }
    doc.push_back(2);
    out.push_back(std::move(doc));
  }
  return out;
}

// Writes train.tok (48 documents) and val.tok (12) into dir.
inline void write_tiny_corpus(const QString& dir) {
  auto st = write_token_file((dir + "/train.tok").toStdString(), kTinyVocab, tiny_documents(48, 1));
  if (!st) qFatal("%s", st.message().c_str());
  st = write_token_file((dir + "/val.tok").toStdString(), kTinyVocab, tiny_documents(12, 2));
  if (!st) qFatal("%s", st.message().c_str());
}

// A grid over the tiny corpus in `dir`; `extra` is appended (more tables or levels).
inline std::string tiny_grid(const QString& dir, const std::string& levels,
                             const std::string& extra = "") {
  std::string d = dir.toStdString();
  return "[run]\nname = \"tiny\"\ndir = \"" + d +
         "/run\"\nouter_steps = 3\ninner_steps = 4\n"
         "workers = 1\nthreads = 1\n\n[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\n"
         "d_ff = 64\nmax_seq_len = 32\n\n[inner]\nbatch_size = 4\nseq_len = 32\nlr = 3e-3\n"
         "warmup_steps = 2\n\n[data]\ntrain = \"" +
         d + "/train.tok\"\nval = \"" + d + "/val.tok\"\n\n" + extra + "\n" + levels;
}

inline const char* kTwoByTwo =
    "[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n\n[[grid.level]]\nblocks = [1, 1]\n"
    "modules = 2\n";

}  // namespace dipaco::test
