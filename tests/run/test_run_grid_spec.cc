// Grid files: parsing, defaults, the path/module numbering, module slices, and errors that name
// the key.
#include <QtTest>
#include <string>

#include "algo/grid_spec.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

const char* kModel =
    "[model]\nd_model = 32\nn_layers = 4\nn_heads = 2\nd_ff = 64\nmax_seq_len = 256\n";

GridSpec parse_ok(const std::string& text) {
  auto g = parse_grid_spec(text, "grid.toml");
  if (!g) qFatal("%s", g.status().message().c_str());
  return std::move(g).value();
}

std::string parse_error(const std::string& text) {
  auto g = parse_grid_spec(text, "grid.toml");
  if (g) qFatal("expected an error for:\n%s", text.c_str());
  return g.status().message();
}

}  // namespace

class RunGridSpecTest : public QObject {
  Q_OBJECT

 private slots:
  void defaultsAreOneModuleDiLoCo() {
    GridSpec g = parse_ok(kModel);
    QCOMPARE(g.levels.size(), size_t{1});
    QCOMPARE(g.num_paths(), 1);
    QCOMPARE(g.num_modules(), 1);
    QCOMPARE(g.outer.kind, OuterOptimizerKind::kNesterov);
    QCOMPARE(g.outer.lr, 0.7f);
    QCOMPARE(g.outer.momentum, 0.9f);
    QCOMPARE(g.inner.steps, static_cast<int64_t>(g.outer_steps) * g.inner_steps);
    // Module versions after the first travel as int8 deltas (measured: docs/reproduction.md).
    QCOMPARE(g.downlink, WireDtype::kInt8);
    // One module over all blocks is the whole parameter buffer.
    ParamLayout layout(g.model);
    QCOMPARE(g.module_range(layout, 0).count, layout.total());
  }

  void twoByTwoPathsAreMixedRadix() {
    GridSpec g = parse_ok(std::string(kModel) +
                          "[[grid.level]]\nblocks = [0, 1]\nmodules = 2\n"
                          "[[grid.level]]\nblocks = [2, 3]\nmodules = 2\n");
    QCOMPARE(g.num_paths(), 4);
    QCOMPARE(g.num_modules(), 4);
    QCOMPARE(g.path_modules(0), (std::vector<int>{0, 2}));
    QCOMPARE(g.path_modules(1), (std::vector<int>{0, 3}));
    QCOMPARE(g.path_modules(2), (std::vector<int>{1, 2}));
    QCOMPARE(g.path_modules(3), (std::vector<int>{1, 3}));
    for (int m = 0; m < 4; ++m) QCOMPARE(g.paths_using(m), 2);
    // Every path's modules tile the buffer: level 0 with the embedding, level 1 with the head.
    ParamLayout layout(g.model);
    for (int p = 0; p < 4; ++p) {
      size_t next = 0;
      for (int id : g.path_modules(p)) {
        ParamRange r = g.module_range(layout, id);
        QCOMPARE(r.offset, next);
        next = r.end();
      }
      QCOMPARE(next, layout.total());
    }
    QCOMPARE(g.module_range(layout, 0), layout.module_range(0, 1, true, false));
    QCOMPARE(g.module_range(layout, 3), layout.module_range(2, 3, false, true));
  }

  void pathSpecificLevelHasAModulePerPath() {
    GridSpec g = parse_ok(std::string(kModel) +
                          "[[grid.level]]\nblocks = [0, 2]\nmodules = 3\n"
                          "[[grid.level]]\nblocks = [3, 3]\npath_specific = true\n");
    QCOMPARE(g.num_paths(), 3);
    QCOMPARE(g.num_modules(), 6);
    QCOMPARE(g.path_modules(2), (std::vector<int>{2, 5}));
    QCOMPARE(g.paths_using(0), 1);
    QCOMPARE(g.paths_using(4), 1);
    QCOMPARE(g.module_level(4), 1);
    QCOMPARE(g.module_index(4), 1);
  }

  void singlePathRoutesToShards() {
    GridSpec g = parse_ok(std::string(kModel) +
                          "[grid]\nshards_per_path = 4\n[routing]\nmethod = \"iid\"\n");
    QCOMPARE(g.routing.method, RoutingMethod::kRandom);
    QCOMPARE(g.num_shards(), 4);
    QCOMPARE(g.routing_clusters(), 4);
  }

  void outerDefaultsFollowTheOptimizer() {
    GridSpec g = parse_ok(std::string(kModel) + "[outer]\noptimizer = \"sgd\"\n");
    QCOMPARE(g.outer.kind, OuterOptimizerKind::kSgd);
    QCOMPARE(g.outer.lr, 1.0f);
    QCOMPARE(g.outer.momentum, 0.0f);
  }

  void toTomlRoundTrips() {
    GridSpec g = parse_ok(std::string(kModel) +
                          "[run]\nname = \"x\\\"y\"\nouter_steps = 7\n[compression]\ndtype = "
                          "\"int4\"\ndownlink = \"bf16\"\n[outer]\nrescale_by_sqrt_paths = true\n"
                          "[[grid.level]]\nblocks = [0, 1]\nmodules = 2\n"
                          "[[grid.level]]\nblocks = [2, 3]\npath_specific = true\n");
    std::string toml = g.to_toml();
    GridSpec back = parse_ok(toml);
    QCOMPARE(back.to_toml(), toml);
    QCOMPARE(back.name, std::string("x\"y"));
    QCOMPARE(back.dtype, WireDtype::kInt4);
    QCOMPARE(back.downlink, WireDtype::kBf16);
    QVERIFY(back.aggregation.rescale_by_sqrt_paths);
    QVERIFY(back.levels[1].path_specific);
  }

  void errorsNameTheKey() {
    std::string m = kModel;
    QVERIFY(contains(
        parse_error(m + "[[grid.level]]\nblocks = [0, 1]\n[[grid.level]]\nblocks = [3, 3]\n"),
        "grid.level[1].blocks starts at block 3, expected 2"));
    QVERIFY(contains(parse_error(m + "[[grid.level]]\nblocks = [0, 2]\n"), "must end at block 3"));
    QVERIFY(contains(parse_error(m + "[outer]\nlrr = 1\n"), "did you mean 'outer.lr'"));
    QVERIFY(contains(parse_error(m + "[outer]\nlr = -1\n"), "lr"));
    QVERIFY(contains(parse_error(m + "[compression]\ndtype = \"int3\"\n"), "compression.dtype"));
    QVERIFY(
        contains(parse_error(m + "[compression]\ndownlink = \"fp16\"\n"), "compression.downlink"));
    QVERIFY(
        contains(parse_error(m + "[routing]\nmethod = \"product_kmeans\"\n"), "two shared levels"));
    QVERIFY(contains(parse_error(m + "[routing]\nmethod = \"discriminative\"\n"),
                     "routing.paths_from"));
    QVERIFY(contains(parse_error(m + "[routing]\nmethod = \"kmeanz\"\n"), "routing.method"));
    QVERIFY(contains(parse_error(m + "[inner]\nseq_len = 300\n"), "inner.seq_len"));
    QVERIFY(contains(parse_error(m + "[routing]\ntop2 = true\n"), "routing.top2"));
    QVERIFY(contains(
        parse_error(m + "[[grid.level]]\nblocks = [0, 3]\nmodules = 2\npath_specific = true\n"),
        "path-specific"));
    QVERIFY(contains(parse_error(m + "[gird]\n"), "unknown table 'gird'"));
    QVERIFY(contains(parse_error(m + "[run\n"), "grid.toml:"));
    QVERIFY(contains(parse_error(m + "[[grid.level]]\nblocks = 2\n"),
                     "grid.level[0].blocks must be [first, last]"));
  }
};

QTEST_GUILESS_MAIN(RunGridSpecTest)
#include "test_run_grid_spec.moc"
