// Module aggregation: shard-size weighting, params vs outer-gradient reports, the √|P|
// rescale, seeded dropping, and errors that name the path.
#include <QtTest>
#include <cmath>
#include <vector>

#include "algo/module_aggregation.h"
#include "test_support.h"

using namespace dipaco;

namespace {
using dipaco::test::contains;
}  // namespace

class AlgoModuleAggregationTest : public QObject {
  Q_OBJECT

 private slots:
  void weightedMeanOfParamsAndGradsMatchesHandComputation() {
    std::vector<float> theta = {1.0f, 2.0f, -1.0f};
    std::vector<float> path_a = {0.5f, 2.5f, -1.0f};  // Δ_a = (0.5, -0.5, 0)
    std::vector<float> grad_b = {-1.0f, 1.0f, 3.0f};  // Δ_b given directly
    std::vector<ModuleReport> reports = {
        {7, ModuleReport::Kind::kParams, path_a, 300.0},
        {9, ModuleReport::Kind::kOuterGrad, grad_b, 100.0},
    };
    std::vector<float> out(3);
    auto r = aggregate_outer_gradient(theta, reports, {}, 0, 0, out);
    QVERIFY2(r, r.status().message().c_str());
    // 0.75·Δ_a + 0.25·Δ_b = (0.375 − 0.25, −0.375 + 0.25, 0.75)
    QVERIFY(std::fabs(out[0] - 0.125f) < 1e-7f);
    QVERIFY(std::fabs(out[1] - (-0.125f)) < 1e-7f);
    QVERIFY(std::fabs(out[2] - 0.75f) < 1e-7f);
    QCOMPARE(r->kept, size_t{2});
    QCOMPARE(r->dropped, size_t{0});
    QCOMPARE(r->total_weight, 400.0);
    QCOMPARE(r->scale, 1.0);
    QVERIFY(std::fabs(r->outer_grad_norm - std::sqrt(0.125 * 0.125 * 2 + 0.5625)) < 1e-6);
    QCOMPARE(r->kept_paths, (std::vector<int64_t>{7, 9}));
  }

  void equalWeightsGiveThePlainMeanAndOnePathItsOwnDelta() {
    std::vector<float> theta = {0.0f, 0.0f};
    std::vector<float> a = {1.0f, 2.0f}, b = {3.0f, -2.0f};
    std::vector<ModuleReport> two = {{0, ModuleReport::Kind::kOuterGrad, a, 5.0},
                                     {1, ModuleReport::Kind::kOuterGrad, b, 5.0}};
    std::vector<float> out(2);
    QVERIFY(aggregate_outer_gradient(theta, two, {}, 0, 0, out));
    QCOMPARE(out, (std::vector<float>{2.0f, 0.0f}));
    AggregationOptions rescale;
    rescale.rescale_by_sqrt_paths = true;
    std::vector<ModuleReport> one = {{4, ModuleReport::Kind::kOuterGrad, a, 1.0}};
    QVERIFY(aggregate_outer_gradient(theta, one, rescale, 0, 0, out));
    QCOMPARE(out, a);  // √1 = 1
  }

  void rescaleMultipliesTheNormBySqrtOfPaths() {
    std::vector<float> theta(4, 0.0f);
    std::vector<std::vector<float>> grads = {
        {1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    std::vector<ModuleReport> reports;
    for (int p = 0; p < 4; ++p) {
      reports.push_back({p, ModuleReport::Kind::kOuterGrad, grads[p], 1.0});
    }
    std::vector<float> plain(4), scaled(4);
    auto a = aggregate_outer_gradient(theta, reports, {}, 0, 0, plain);
    AggregationOptions o;
    o.rescale_by_sqrt_paths = true;
    auto b = aggregate_outer_gradient(theta, reports, o, 0, 0, scaled);
    QVERIFY(a && b);
    // Four orthogonal unit vectors: the mean has norm 1/2, the rescaled mean norm 1 (= 2·1/2).
    QVERIFY(std::fabs(a->outer_grad_norm - 0.5) < 1e-7);
    QVERIFY(std::fabs(b->outer_grad_norm - 1.0) < 1e-7);
    QCOMPARE(b->scale, 2.0);
    for (int i = 0; i < 4; ++i) QCOMPARE(scaled[i], 2.0f * plain[i]);

    // The same four reports as the shards of two paths: s = √2, not √4; of one path (DiLoCo's
    // replicas): s = 1.
    for (int p = 0; p < 4; ++p) reports[p].path = p / 2;
    auto two_paths = aggregate_outer_gradient(theta, reports, o, 0, 0, scaled);
    QVERIFY(two_paths);
    QCOMPARE(two_paths->kept, size_t{4});
    QCOMPARE(two_paths->kept_path_count, size_t{2});
    QCOMPARE(two_paths->scale, std::sqrt(2.0));
    for (ModuleReport& r : reports) r.path = 7;
    auto one_path = aggregate_outer_gradient(theta, reports, o, 0, 0, scaled);
    QVERIFY(one_path);
    QCOMPARE(one_path->scale, 1.0);
    for (int i = 0; i < 4; ++i) QCOMPARE(scaled[i], plain[i]);
  }

  void droppingIsSeededOrderFreeAndRenormalizes() {
    const int paths = 200;
    std::vector<float> theta = {0.0f};
    std::vector<std::vector<float>> grads(paths);
    std::vector<ModuleReport> reports, reversed;
    for (int p = 0; p < paths; ++p) {
      grads[p] = {static_cast<float>(p)};
      reports.push_back({p, ModuleReport::Kind::kOuterGrad, grads[p], 1.0});
    }
    reversed.assign(reports.rbegin(), reports.rend());
    AggregationOptions o;
    o.drop_fraction = 0.5;
    o.drop_seed = 1234;
    std::vector<float> out1(1), out2(1), out3(1);
    auto a = aggregate_outer_gradient(theta, reports, o, 3, 1, out1);
    auto b = aggregate_outer_gradient(theta, reversed, o, 3, 1, out2);
    QVERIFY(a && b);
    QCOMPARE(a->kept + a->dropped, size_t{paths});
    QCOMPARE(a->dropped, b->dropped);
    QCOMPARE(out1[0], out2[0]);
    // About half are dropped (binomial(200, 0.5): ±5σ = ±35).
    QVERIFY2(a->dropped > 65 && a->dropped < 135, qPrintable(QString::number(a->dropped)));
    // The result is the plain mean of the kept ones.
    double mean = 0;
    for (int64_t id : a->kept_paths) mean += static_cast<double>(id);
    mean /= static_cast<double>(a->kept);
    QVERIFY(std::fabs(out1[0] - mean) < 1e-3);
    // Another round or seed drops a different set.
    auto c = aggregate_outer_gradient(theta, reports, o, 4, 1, out3);
    QVERIFY(c);
    QVERIFY(c->kept_paths != a->kept_paths);
    for (int p = 0; p < paths; ++p) {
      bool dropped = outer_gradient_dropped(o, 3, 1, p);
      bool kept = std::find(a->kept_paths.begin(), a->kept_paths.end(), p) != a->kept_paths.end();
      QCOMPARE(dropped, !kept);
    }
  }

  void everyReportDroppedGivesZeroAndKeptZero() {
    std::vector<float> theta = {1.0f};
    std::vector<float> g = {5.0f};
    std::vector<ModuleReport> one = {{0, ModuleReport::Kind::kOuterGrad, g, 1.0}};
    AggregationOptions o;
    o.drop_fraction = 0.999999;
    std::vector<float> out = {42.0f};
    auto r = aggregate_outer_gradient(theta, one, o, 0, 0, out);
    QVERIFY(r);
    QCOMPARE(r->kept, size_t{0});
    QCOMPARE(out[0], 0.0f);
  }

  void badReportsAreRejectedNamingThePath() {
    std::vector<float> theta(4, 0.0f), out(4);
    std::vector<float> short_params(3), ok(4), nan_grad = {0, 0, NAN, 0};
    auto check = [&](std::vector<ModuleReport> reports, const char* expected,
                     AggregationOptions o = {}) {
      auto r = aggregate_outer_gradient(theta, reports, o, 2, 5, out);
      QVERIFY(!r);
      QCOMPARE(r.status().code(), StatusCode::kInvalidArgument);
      QVERIFY2(contains(r.status().message(), expected), r.status().message().c_str());
    };
    check({{3, ModuleReport::Kind::kParams, short_params, 1.0}},
          "path 3 reported 3 parameters for a module of 4 parameters");
    check({{3, ModuleReport::Kind::kOuterGrad, ok, 0.0}}, "path 3 has shard size 0");
    check({{3, ModuleReport::Kind::kOuterGrad, ok, NAN}}, "path 3 has shard size nan");
    check({{8, ModuleReport::Kind::kOuterGrad, nan_grad, 1.0}},
          "path 8 reported a non-finite value at index 2");
    check({{1, ModuleReport::Kind::kOuterGrad, ok, 1.0}, {1, ModuleReport::Kind::kParams, ok, 1.0}},
          "path 1 reported twice for module 5 in round 2");
    check({}, "module 5 has no path reports for round 2");
    AggregationOptions bad_drop;
    bad_drop.drop_fraction = 1.0;
    check({{1, ModuleReport::Kind::kOuterGrad, ok, 1.0}}, "drop fraction must be in [0, 1)",
          bad_drop);
    std::vector<float> small_out(2);
    std::vector<ModuleReport> fine = {{1, ModuleReport::Kind::kOuterGrad, ok, 1.0}};
    QVERIFY(!aggregate_outer_gradient(theta, fine, {}, 0, 0, small_out));
  }
};

QTEST_GUILESS_MAIN(AlgoModuleAggregationTest)
#include "test_algo_module_aggregation.moc"
