// Routers survive a save/load round trip and route the same; routing features are the mean of
// the base model's last hidden state over each document's prefix.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <fstream>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "routing/document_features.h"
#include "routing/router.h"
#include "run_test_data.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

std::vector<float> points(size_t n, size_t d, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j)
      x[i * d + j] =
          static_cast<float>((i % 4) * 3) + static_cast<float>(rng.next() % 1000) / 1000.0f;
  return x;
}

void expect_same_routes(const Router& a, const Router& b, const std::vector<float>& x, size_t d) {
  for (size_t i = 0; i < x.size() / d; ++i) {
    QCOMPARE(a.route(x.data() + i * d), b.route(x.data() + i * d));
    if (a.clusters >= 2) QCOMPARE(a.route_top2(x.data() + i * d), b.route_top2(x.data() + i * d));
  }
}

}  // namespace

class RunRouterTest : public QObject {
  Q_OBJECT

 private slots:
  void everyKindRoundTrips() {
    QTemporaryDir dir;
    const size_t n = 64, d = 6;
    std::vector<float> x = points(n, d, 3);
    FeatureMatrix fm{x, n, d};
    KMeansOptions o;
    o.k = 4;
    o.seed = 5;
    std::vector<Router> routers;
    Router km;
    km.method = RoutingMethod::kKMeans;
    km.clusters = 4;
    km.d = d;
    km.kmeans = fit_kmeans(fm, o)->model;
    routers.push_back(km);
    Router pk = km;
    pk.method = RoutingMethod::kProductKMeans;
    o.k = 2;
    pk.product = fit_product_kmeans(fm, o)->model;
    routers.push_back(pk);
    Router dr = km;
    dr.method = RoutingMethod::kDiscriminative;
    std::vector<int32_t> labels(n);
    for (size_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 4);
    DiscriminativeRouterOptions ro;
    ro.paths = 4;
    dr.discriminative = train_discriminative_router(fm, labels, ro, nullptr).value();
    routers.push_back(dr);
    Router rr = km;
    rr.method = RoutingMethod::kRandom;
    rr.seed = 9;
    routers.push_back(rr);
    for (const Router& r : routers) {
      std::string path = dir.filePath("router.safetensors").toStdString();
      QVERIFY(save_router(r, path));
      auto back = load_router(path);
      QVERIFY2(back, back.status().message().c_str());
      QCOMPARE(back->method, r.method);
      QCOMPARE(back->clusters, r.clusters);
      expect_same_routes(r, *back, x, d);
    }
    // Random routing spreads documents over every cluster.
    std::vector<int> load(4, 0);
    for (size_t i = 0; i < n; ++i) ++load[static_cast<size_t>(rr.route(x.data() + i * d))];
    for (int l : load) QVERIFY(l > 0);
  }

  void corruptFilesAreRefused() {
    QTemporaryDir dir;
    std::string path = dir.filePath("bad.safetensors").toStdString();
    std::ofstream(path) << "not a safetensors file";
    QVERIFY(!load_router(path));
    auto missing = load_router(dir.filePath("missing.safetensors").toStdString());
    QVERIFY(!missing);
  }

  void featuresAreTheMeanHiddenStateOfThePrefix() {
    QTemporaryDir dir;
    dipaco::test::write_tiny_corpus(dir.path());
    auto file = TokenFile::open(dir.filePath("train.tok").toStdString());
    QVERIFY(file);
    CpuBackend backend(1);
    ModelConfig c;
    c.vocab_size = 64;
    c.d_model = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.n_kv_heads = 2;
    c.d_ff = 32;
    c.max_seq_len = 16;
    auto model = Model::create(&backend, c, 4, 8);
    QVERIFY(model);
    (*model)->init_params(3);
    std::vector<TokenSpan> spans = document_spans(*file);
    spans.push_back({spans[0].begin, spans[0].begin + 3});  // shorter than the prefix
    auto f = compute_span_features(**model, *file, spans, 8);
    QVERIFY2(f, f.status().message().c_str());
    QCOMPARE(f->size(), spans.size() * 16);
    // Reference: one span at a time, hidden states averaged by hand.
    for (size_t i : {size_t{0}, size_t{5}, spans.size() - 1}) {
      int len = static_cast<int>(std::min<uint64_t>(8, spans[i].end - spans[i].begin));
      std::vector<int32_t> in(static_cast<size_t>(len));
      file->read(spans[i].begin, static_cast<uint64_t>(len), in.data());
      (*model)->forward(in.data(), nullptr, 1, len);
      std::vector<float> h = (*model)->get_final_hidden();
      for (int j = 0; j < 16; ++j) {
        double mean = 0;
        for (int t = 0; t < len; ++t)
          mean += h[static_cast<size_t>(t) * 16 + static_cast<size_t>(j)];
        mean /= len;
        QVERIFY(std::fabs((*f)[i * 16 + static_cast<size_t>(j)] - mean) < 1e-4);
      }
    }
    QVERIFY(contains(compute_span_features(**model, *file, spans, 64).status().message(),
                     "does not fit"));
  }
};

QTEST_GUILESS_MAIN(RunRouterTest)
#include "test_run_router.moc"
