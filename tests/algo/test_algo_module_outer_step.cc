// A module's outer step end to end: aggregation then the outer optimizer, against hand
// computation; one replica with outer SGD at lr 1 lands exactly on the replica's parameters.
#include <QtTest>
#include <cmath>
#include <vector>

#include "algo/module_outer_step.h"

using namespace dipaco;

namespace {
OuterOptimizer make(const OuterOptimizerConfig& c, size_t n) {
  auto r = OuterOptimizer::create(c, n);
  if (!r) qFatal("%s", r.status().to_string().c_str());
  return std::move(r).value();
}
}  // namespace

class AlgoModuleOuterStepTest : public QObject {
  Q_OBJECT

 private slots:
  void twoPathsNesterovHandComputed() {
    // θ = (1, 0); path A (w 1) ends at (0.8, 0.1), path B (w 3) at (0.6, -0.1).
    // Δ = 0.25·(0.2, −0.1) + 0.75·(0.4, 0.1) = (0.35, 0.05); √2 rescale → (0.4950, 0.0707).
    std::vector<float> theta = {1.0f, 0.0f};
    std::vector<float> a = {0.8f, 0.1f}, b = {0.6f, -0.1f};
    std::vector<ModuleReport> reports = {{0, ModuleReport::Kind::kParams, a, 1.0},
                                         {1, ModuleReport::Kind::kParams, b, 3.0}};
    AggregationOptions o;
    o.rescale_by_sqrt_paths = true;
    OuterOptimizer opt = make(OuterOptimizerConfig{}, 2);
    std::vector<float> scratch;
    auto r = module_outer_step(theta, reports, o, 0, 0, &opt, &scratch);
    QVERIFY2(r, r.status().message().c_str());
    QVERIFY(r->stepped);
    double s = std::sqrt(2.0);
    double d0 = 0.35 * s, d1 = 0.05 * s;
    // First Nesterov step: v = Δ, θ −= 0.7·(Δ + 0.9·Δ) = 1.33·Δ.
    QVERIFY(std::fabs(theta[0] - (1.0 - 1.33 * d0)) < 1e-6);
    QVERIFY(std::fabs(theta[1] - (0.0 - 1.33 * d1)) < 1e-6);
    QVERIFY(std::fabs(scratch[0] - d0) < 1e-6);
  }

  void oneReplicaOuterSgdAtLrOneIsThePlainTrainingResult() {
    // DiLoCo with one replica, outer SGD lr 1: θ ← θ − (θ − θ_local) = θ_local, so the run is
    // plain training of that replica.
    std::vector<float> theta = {0.3f, -1.25f, 2.0f};
    std::vector<float> local = {0.25f, -1.0f, 1.5f};
    std::vector<ModuleReport> reports = {{0, ModuleReport::Kind::kParams, local, 123.0}};
    OuterOptimizer opt = make(default_outer_config(OuterOptimizerKind::kSgd), 3);
    std::vector<float> scratch;
    auto r = module_outer_step(theta, reports, {}, 0, 0, &opt, &scratch);
    QVERIFY(r);
    QCOMPARE(theta, local);
  }

  void allDroppedLeavesThetaAndMomentumAlone() {
    std::vector<float> theta = {1.0f};
    std::vector<float> g = {0.5f};
    std::vector<ModuleReport> reports = {{0, ModuleReport::Kind::kOuterGrad, g, 1.0}};
    OuterOptimizer opt = make(OuterOptimizerConfig{}, 1);
    std::vector<float> scratch;
    QVERIFY(module_outer_step(theta, reports, {}, 0, 0, &opt, &scratch));
    float after_first = theta[0];
    AggregationOptions drop;
    drop.drop_fraction = 0.999999;
    auto r = module_outer_step(theta, reports, drop, 1, 0, &opt, &scratch);
    QVERIFY(r);
    QVERIFY(!r->stepped);
    QCOMPARE(theta[0], after_first);
    QCOMPARE(opt.step_count(), int64_t{1});
  }

  void mismatchedOptimizerIsAnError() {
    std::vector<float> theta(4), g(4);
    std::vector<ModuleReport> reports = {{0, ModuleReport::Kind::kOuterGrad, g, 1.0}};
    OuterOptimizer opt = make(OuterOptimizerConfig{}, 3);
    std::vector<float> scratch;
    auto r = module_outer_step(theta, reports, {}, 0, 7, &opt, &scratch);
    QVERIFY(!r);
    QVERIFY2(r.status().message().find("module 7 has 4 parameters but its outer optimizer was "
                                       "made for 3") != std::string::npos,
             r.status().message().c_str());
  }
};

QTEST_GUILESS_MAIN(AlgoModuleOuterStepTest)
#include "test_algo_module_outer_step.moc"
