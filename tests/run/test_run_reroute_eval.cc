// Run-time validation with re-routing (routing.reroute_every = W > 0) keeps documents whole:
// the routed and per-path losses a run reports equal what `dipaco eval` computes on the same
// models and documents (each prediction scored with the whole document before it, by the path
// its W-prediction segment is routed to), every prediction counted once. Without re-routing a
// path is scored on its whole documents, as before. Scoring only some predictions of a file
// adds up to scoring all of them.
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <span>

#include "backend/cpu/cpu_backend.h"
#include "export/path_chooser.h"
#include "export/perplexity.h"
#include "routing/router.h"
#include "run/document_eval.h"
#include "run/local_run.h"
#include "run/module_files.h"
#include "run/run_layout.h"
#include "run/shard_routing.h"
#include "run_test_data.h"
#include "util/atomic_file.h"

using namespace dipaco;
using dipaco::test::kTwoByTwo;
using dipaco::test::tiny_grid;

namespace {

GridSpec grid_of(const std::string& text) {
  auto g = parse_grid_spec(text, "tiny.toml");
  if (!g) qFatal("%s", g.status().message().c_str());
  return std::move(g).value();
}

Result<LocalRunResult> run_quietly(const GridSpec& g) {
  FILE* sink = std::fopen("/dev/null", "w");
  LocalRunOptions o;
  o.out = sink;
  auto r = run_local(g, o);
  std::fclose(sink);
  return r;
}

std::unique_ptr<Model> load_model(Backend* backend, const std::string& file, int seq_len = 0) {
  auto read = read_path_model(file);
  if (!read) qFatal("%s", read.status().message().c_str());
  const int T = seq_len > 0 ? seq_len : read->first.max_seq_len;
  auto model = Model::create(backend, read->first, 1, T);
  if (!model) qFatal("%s", model.status().message().c_str());
  (*model)->set_params(read->second);
  return std::move(*model);
}

struct EvalStyleScores {
  NllSum routed;
  std::vector<NllSum> per_path;
  int64_t predictions = 0;  // of all documents with at least two tokens
};

// What app/cli/cmd_eval.cc computes for an export of the run (its "routed, re-routing every W
// tokens" row; its "routed" row when W = 0), from the run's own files with the same library
// pieces: token_nll over whole documents, prefix_features + the router for choose/choose_at.
EvalStyleScores score_like_dipaco_eval(const RunLayout& l, const std::string& val_file,
                                       int reroute_every, int paths) {
  CpuBackend backend(1);
  auto router = load_router(l.router());
  if (!router) qFatal("%s", router.status().message().c_str());
  const int prefix = router->prefix_tokens;
  std::unique_ptr<Model> base = load_model(&backend, l.base_model(), prefix);
  std::vector<std::unique_ptr<Model>> models;
  for (int p = 0; p < paths; ++p)
    models.push_back(load_model(&backend, l.path_model(static_cast<uint32_t>(p))));
  auto choose = [&](std::span<const int32_t> tokens) {
    std::vector<float> x = prefix_features(*base, tokens, prefix);
    return router->route(x.data());
  };
  auto val = TokenFile::open(val_file);
  if (!val) qFatal("%s", val.status().message().c_str());
  EvalStyleScores out;
  out.per_path.resize(static_cast<size_t>(paths));
  for (uint64_t d = 0; d < val->num_documents(); ++d) {
    std::vector<int32_t> doc(val->document_end(d) - val->document_begin(d));
    val->read(val->document_begin(d), doc.size(), doc.data());
    if (doc.size() < 2) continue;
    std::vector<std::vector<double>> per_token;
    for (auto& m : models) per_token.push_back(token_nll(*m, doc));
    const size_t predictions = doc.size() - 1;
    out.predictions += static_cast<int64_t>(predictions);
    const size_t W = reroute_every > 0 ? static_cast<size_t>(reroute_every) : predictions;
    int path = choose(doc);
    for (size_t begin = 0; begin < predictions; begin += W) {
      if (begin > 0) {  // choose_at(doc, begin + 1)
        const size_t point = begin + 1, n = std::min(point, static_cast<size_t>(prefix));
        path = choose(std::span<const int32_t>(doc).subspan(point - n, n));
      }
      NllSum segment;
      for (size_t i = begin; i < std::min(predictions, begin + W); ++i) {
        segment.nll += per_token[static_cast<size_t>(path)][i];
        ++segment.tokens;
      }
      out.routed += segment;
      out.per_path[static_cast<size_t>(path)] += segment;
    }
  }
  return out;
}

// A tiny 4-path run whose inner seq_len is the model's max_seq_len (the windows `dipaco eval`
// uses) and whose routing reads 8 tokens.
GridSpec tiny_run(const QString& dir, const std::string& run_dir, int reroute_every) {
  GridSpec g = grid_of(tiny_grid(dir, kTwoByTwo,
                                 "[routing]\nbase_steps = 20\nprefix_tokens = 8\nreroute_every = " +
                                     std::to_string(reroute_every) + "\n"));
  g.dir = run_dir;
  g.outer_steps = 2;
  return g;
}

uint64_t val_tokens_of(const std::string& file) {
  auto f = TokenFile::open(file);
  if (!f) qFatal("%s", f.status().message().c_str());
  uint64_t tokens = 0;
  for (uint64_t d = 0; d < f->num_documents(); ++d) {
    const uint64_t n = f->document_end(d) - f->document_begin(d);
    if (n >= 2) tokens += n;
  }
  return tokens;
}

}  // namespace

class RunRerouteEvalTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;

 private slots:
  void initTestCase() { dipaco::test::write_tiny_corpus(dir_.path()); }

  void reroutedValidationEqualsDipacoEvalAndCountsEachPredictionOnce() {
    const int W = 8;
    GridSpec g = tiny_run(dir_.path(), dir_.path().toStdString() + "/rerouted", W);
    auto r = run_quietly(g);
    QVERIFY2(r, r.status().message().c_str());
    const RunLayout l{g.dir};
    const std::string val_file = dir_.path().toStdString() + "/val.tok";
    EvalStyleScores expected = score_like_dipaco_eval(l, val_file, W, g.num_paths());

    // Every prediction of every validation document is scored once, by one path.
    QCOMPARE(r->routed_val_tokens, static_cast<uint64_t>(expected.predictions));
    QCOMPARE(static_cast<int64_t>(r->routed_val_tokens), expected.routed.tokens);
    uint64_t shard_documents = 0, scored = 0, attributed = 0;
    for (int p = 0; p < g.num_paths(); ++p) {
      const auto path = static_cast<uint32_t>(p);
      if (!std::filesystem::exists(l.val_shard(path))) continue;
      auto shard = TokenFile::open(l.val_shard(path));
      QVERIFY(shard);
      auto predictions = read_scored_predictions(val_predictions_file(l, path), *shard);
      QVERIFY2(predictions, predictions.status().message().c_str());
      for (const auto& ranges : *predictions)
        for (const PredictionRange& range : ranges) scored += range.end - range.begin;
      shard_documents += shard->num_documents();
      attributed += r->paths[path].val_tokens;
      QCOMPARE(r->paths[path].val_tokens, scored_tokens(*predictions));
    }
    QCOMPARE(scored, r->routed_val_tokens);
    QCOMPARE(attributed, val_tokens_of(val_file));  // each token to one path
    // Re-routing took effect: some documents have predictions on several paths.
    QVERIFY2(shard_documents > 12, std::to_string(shard_documents).c_str());

    // The same numbers as `dipaco eval` (float forward vs double log-softmax: ~1e-8 apart).
    QVERIFY2(std::fabs(r->routed_val_loss - expected.routed.mean()) < 1e-6,
             (std::to_string(r->routed_val_loss) + " vs " + std::to_string(expected.routed.mean()))
                 .c_str());
    int paths_compared = 0;
    for (int p = 0; p < g.num_paths(); ++p) {
      const NllSum& e = expected.per_path[static_cast<size_t>(p)];
      const PathResult& got = r->paths[static_cast<size_t>(p)];
      QCOMPARE(std::isfinite(got.val_loss), e.tokens > 0);
      if (e.tokens == 0) continue;
      ++paths_compared;
      QVERIFY2(std::fabs(got.val_loss - e.mean()) < 1e-6,
               ("path " + std::to_string(p) + ": " + std::to_string(got.val_loss) + " vs " +
                std::to_string(e.mean()))
                   .c_str());
    }
    QVERIFY(paths_compared >= 2);

    // A run directory whose re-routed shards lack the prediction lists (an older dipaco cut
    // validation documents into segments) is refused with what to do.
    uint32_t with_val = 0;
    while (!std::filesystem::exists(l.val_shard(with_val))) ++with_val;
    QVERIFY(std::filesystem::remove(val_predictions_file(l, with_val)));
    auto old = run_quietly(g);
    QVERIFY(!old);
    QVERIFY2(old.status().message().find("new run.dir") != std::string::npos,
             old.status().message().c_str());
  }

  void withoutReroutingEachPathScoresItsWholeDocuments() {
    GridSpec g = tiny_run(dir_.path(), dir_.path().toStdString() + "/routed", 0);
    auto r = run_quietly(g);
    QVERIFY2(r, r.status().message().c_str());
    const RunLayout l{g.dir};
    const std::string val_file = dir_.path().toStdString() + "/val.tok";
    // Each validation document whole in one path's shard, no prediction lists: the shards and
    // the scoring of earlier versions.
    CpuBackend backend(1);
    uint64_t documents = 0;
    for (int p = 0; p < g.num_paths(); ++p) {
      const auto path = static_cast<uint32_t>(p);
      QVERIFY(!std::filesystem::exists(val_predictions_file(l, path)));
      if (!std::filesystem::exists(l.val_shard(path))) continue;
      auto shard = TokenFile::open(l.val_shard(path));
      QVERIFY(shard);
      documents += shard->num_documents();
      QCOMPARE(r->paths[path].val_tokens, shard->num_tokens());
      // The kept model's loss is evaluate_documents over the whole shard, batched as the run
      // batches it (8 windows of inner.seq_len), bit for bit.
      auto kept = read_path_model(l.path_model(path));
      QVERIFY(kept);
      auto model = Model::create(&backend, kept->first, 8, g.inner.seq_len);
      QVERIFY(model);
      (*model)->set_params(kept->second);
      QCOMPARE(r->paths[path].val_loss, evaluate_documents(**model, *shard).mean());
    }
    QCOMPARE(documents, uint64_t{12});
    EvalStyleScores expected = score_like_dipaco_eval(l, val_file, 0, g.num_paths());
    QCOMPARE(r->routed_val_tokens, static_cast<uint64_t>(expected.routed.tokens));
    QVERIFY2(std::fabs(r->routed_val_loss - expected.routed.mean()) < 1e-6,
             (std::to_string(r->routed_val_loss) + " vs " + std::to_string(expected.routed.mean()))
                 .c_str());
  }

  void scoringSomePredictionsAddsUpToScoringAll() {
    // Two documents longer than one window; predictions split between two complementary lists.
    const QString file = dir_.path() + "/split.tok";
    auto docs = dipaco::test::tiny_documents(2, 7);
    QVERIFY(write_token_file(file.toStdString(), dipaco::test::kTinyVocab, docs));
    auto tokens = TokenFile::open(file.toStdString());
    QVERIFY(tokens);
    ScoredPredictions even(2), odd(2);
    for (uint64_t d = 0; d < 2; ++d) {
      const uint64_t predictions = docs[d].size() - 1;
      // Segments of 5 predictions cover the document in order; a later one is routed on the up
      // to 8 tokens its first prediction reads.
      uint64_t next = 0;
      int k = 0;
      for (const RerouteSegment& s : reroute_segments(docs[d].size(), 5, 8)) {
        QCOMPARE(s.predictions.begin, next);
        next = s.predictions.end;
        if (s.predictions.begin > 0) {
          QCOMPARE(s.route_end, s.predictions.begin + 1);
          QCOMPARE(s.route_begin, s.route_end - std::min<uint64_t>(8, s.route_end));
        }
        (k++ % 2 == 0 ? even : odd)[d].push_back(s.predictions);
      }
      QCOMPARE(next, predictions);
    }
    QVERIFY(reroute_segments(1, 5, 8).empty());
    CpuBackend backend(1);
    auto config = ModelConfig::parse(
        "vocab_size=64 d_model=32 n_layers=1 n_heads=2 n_kv_heads=2 d_ff=64 max_seq_len=32");
    QVERIFY2(config, config.status().message().c_str());
    auto model = Model::create(&backend, *config, 3, 32);  // windows of 32 predictions, 3 a batch
    QVERIFY(model);
    (*model)->init_params(5);
    EvalSum all = evaluate_documents(**model, *tokens);
    EvalSum first = evaluate_documents(**model, *tokens, 0, &even);
    EvalSum second = evaluate_documents(**model, *tokens, 0, &odd);
    QCOMPARE(first.tokens + second.tokens, all.tokens);
    QCOMPARE(all.tokens, static_cast<uint64_t>(docs[0].size() + docs[1].size() - 2));
    QVERIFY(std::fabs(first.loss_sum + second.loss_sum - all.loss_sum) < 1e-4 * all.loss_sum);
    QCOMPARE(scored_tokens(even) + scored_tokens(odd), uint64_t{docs[0].size() + docs[1].size()});

    // The lists round-trip through their file; a list that does not fit its shard is refused.
    const std::string lists = (dir_.path() + "/split.predictions").toStdString();
    QVERIFY(write_scored_predictions(lists, odd));
    auto back = read_scored_predictions(lists, *tokens);
    QVERIFY2(back, back.status().message().c_str());
    QCOMPARE(scored_tokens(*back), scored_tokens(odd));
    QCOMPARE(evaluate_documents(**model, *tokens, 0, &*back).loss_sum, second.loss_sum);
    ScoredPredictions too_long = odd;
    too_long[1].push_back({docs[1].size() - 1, docs[1].size()});
    QVERIFY(write_scored_predictions(lists, too_long));
    auto refused = read_scored_predictions(lists, *tokens);
    QVERIFY(!refused);
    QVERIFY(refused.status().message().find("bad prediction range") != std::string::npos);
  }
};

QTEST_GUILESS_MAIN(RunRerouteEvalTest)
#include "test_run_reroute_eval.moc"
