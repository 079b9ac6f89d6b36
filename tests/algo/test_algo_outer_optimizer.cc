// Outer optimizers: hand-computed steps, and torch's update rules written out here in double
// (torch.optim.SGD with nesterov, torch.optim.Adam) compared over many steps.
#include <QtTest>
#include <cmath>
#include <random>
#include <vector>

#include "algo/outer_optimizer.h"

using namespace dipaco;

namespace {

// torch.optim.SGD(params, lr, momentum=mu, nesterov=nest) for one tensor, following its
// documented algorithm: on step 1 buf = g, afterwards buf = mu·buf + g; with nesterov the
// update direction is g + mu·buf, else buf; p -= lr · direction.
struct TorchSgdReference {
  double lr, mu;
  bool nesterov;
  std::vector<double> buf;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (buf.empty()) buf.assign(p.size(), 0);
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i];
      if (mu != 0) {
        buf[i] = t == 1 ? g[i] : mu * buf[i] + g[i];
        d = nesterov ? g[i] + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

// torch.optim.Adam(params, lr, betas, eps), amsgrad off, no weight decay.
struct TorchAdamReference {
  double lr, b1, b2, eps;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (m.empty()) m.assign(p.size(), 0), v.assign(p.size(), 0);
    ++t;
    double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      double denom = std::sqrt(v[i]) / std::sqrt(bc2) + eps;
      p[i] -= lr / bc1 * m[i] / denom;
    }
  }
};

OuterOptimizer make(const OuterOptimizerConfig& c, size_t n) {
  auto r = OuterOptimizer::create(c, n);
  if (!r) qFatal("%s", r.status().to_string().c_str());
  return std::move(r).value();
}

template <typename Ref>
double max_deviation_from_reference(OuterOptimizerConfig config, Ref ref, int steps) {
  const size_t n = 257;
  std::mt19937 gen(3);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> p_ref(n);
  std::vector<float> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(p_ref[i] = normal(gen));
  OuterOptimizer opt = make(config, n);
  double worst = 0;
  std::vector<double> g_ref(n);
  std::vector<float> g(n);
  for (int t = 0; t < steps; ++t) {
    for (size_t i = 0; i < n; ++i) {
      g[i] = static_cast<float>(0.1 * normal(gen) + 0.02 * std::sin(double(i + t)));
      g_ref[i] = g[i];
    }
    ref.step(p_ref, g_ref);
    if (!opt.step(p, g)) return 1e9;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(p_ref[i] - p[i]) / (1 + std::fabs(p_ref[i])));
    }
  }
  return worst;
}

}  // namespace

class AlgoOuterOptimizerTest : public QObject {
  Q_OBJECT

 private slots:
  void nesterovDefaultsAndHandComputedSteps() {
    OuterOptimizerConfig c;
    QCOMPARE(c.lr, 0.7f);
    QCOMPARE(c.momentum, 0.9f);
    OuterOptimizer opt = make(c, 1);
    std::vector<float> theta = {1.0f};
    // Step 1, Δ = 0.1: v = 0.1; θ = 1 − 0.7·(0.1 + 0.9·0.1) = 0.867.
    QVERIFY(opt.step(theta, std::vector<float>{0.1f}));
    QVERIFY(std::fabs(theta[0] - 0.867f) < 1e-6f);
    // Step 2, Δ = 0.2: v = 0.09 + 0.2 = 0.29; θ = 0.867 − 0.7·(0.2 + 0.261) = 0.5443.
    QVERIFY(opt.step(theta, std::vector<float>{0.2f}));
    QVERIFY(std::fabs(theta[0] - 0.5443f) < 1e-6f);
    QCOMPARE(opt.step_count(), int64_t{2});
    QVERIFY(std::fabs(opt.state().values[0] - 0.29f) < 1e-7f);
    // Δ = 0 keeps moving along the momentum: v = 0.261, θ −= 0.7·0.9·0.261.
    QVERIFY(opt.step(theta, std::vector<float>{0.0f}));
    QVERIFY(std::fabs(theta[0] - (0.5443f - 0.7f * 0.9f * 0.261f)) < 1e-6f);
  }

  void sgdAndAdamHandComputedSteps() {
    OuterOptimizer sgd = make(default_outer_config(OuterOptimizerKind::kSgd), 2);
    std::vector<float> theta = {1.0f, -2.0f};
    // lr 1: θ − Δ, i.e. the replicas' parameters when Δ = θ − θ_local.
    QVERIFY(sgd.step(theta, std::vector<float>{0.25f, -0.5f}));
    QCOMPARE(theta[0], 0.75f);
    QCOMPARE(theta[1], -1.5f);
    QVERIFY(sgd.state().values.empty());
    // Adam's first step moves every coordinate by lr·g/(|g| + eps) ≈ lr·sign(g).
    OuterOptimizerConfig ac = default_outer_config(OuterOptimizerKind::kAdam);
    ac.lr = 0.1f;
    OuterOptimizer adam = make(ac, 2);
    theta = {1.0f, -2.0f};
    QVERIFY(adam.step(theta, std::vector<float>{0.25f, -0.003f}));
    QVERIFY(std::fabs(theta[0] - 0.9f) < 1e-6f);
    QVERIFY(std::fabs(theta[1] - (-1.9f)) < 1e-5f);
  }

  void matchesTorchSemanticsOverManySteps() {
    OuterOptimizerConfig nest;
    QVERIFY(max_deviation_from_reference(nest, TorchSgdReference{0.7, 0.9, true, {}}, 60) < 1e-5);
    OuterOptimizerConfig heavy = default_outer_config(OuterOptimizerKind::kSgd);
    heavy.lr = 0.5f;
    heavy.momentum = 0.8f;
    QVERIFY(max_deviation_from_reference(heavy, TorchSgdReference{0.5, 0.8, false, {}}, 60) < 1e-5);
    OuterOptimizerConfig plain = default_outer_config(OuterOptimizerKind::kSgd);
    QVERIFY(max_deviation_from_reference(plain, TorchSgdReference{1.0, 0.0, false, {}}, 60) < 1e-5);
    OuterOptimizerConfig adam = default_outer_config(OuterOptimizerKind::kAdam);
    adam.lr = 0.05f;
    adam.beta2 = 0.99f;
    QVERIFY(max_deviation_from_reference(adam, TorchAdamReference{0.05, 0.9, 0.99, 1e-8}, 60) <
            1e-5);
  }

  void stateRoundTripsExactly() {
    for (OuterOptimizerKind k :
         {OuterOptimizerKind::kNesterov, OuterOptimizerKind::kSgd, OuterOptimizerKind::kAdam}) {
      OuterOptimizerConfig c = default_outer_config(k);
      if (k == OuterOptimizerKind::kSgd) c.momentum = 0.5f;
      OuterOptimizer a = make(c, 5);
      std::vector<float> ta = {1, 2, 3, 4, 5};
      std::vector<float> g = {0.1f, -0.2f, 0.3f, 0.0f, 0.05f};
      QVERIFY(a.step(ta, g));
      QVERIFY(a.step(ta, g));
      // A fresh optimizer loaded with a's state continues exactly like a.
      OuterOptimizer b = make(c, 5);
      QVERIFY(b.load_state(a.state()));
      std::vector<float> tb = ta;
      QVERIFY(a.step(ta, g));
      QVERIFY(b.step(tb, g));
      QCOMPARE(ta, tb);
      QCOMPARE(b.step_count(), int64_t{3});
      OuterOptimizerState wrong = a.state();
      wrong.values.pop_back();
      Status s = b.load_state(wrong);
      QVERIFY(!s);
      QVERIFY2(s.message().find("parameters needs") != std::string::npos, s.message().c_str());
    }
  }

  void badConfigsAndSizesNameTheKey() {
    OuterOptimizerConfig c;
    c.lr = -1;
    auto r = OuterOptimizer::create(c, 3);
    QVERIFY(!r);
    QVERIFY2(r.status().message().find("outer.lr must be > 0, got -1") != std::string::npos,
             r.status().message().c_str());
    c = OuterOptimizerConfig{};
    c.momentum = 1.0f;
    r = OuterOptimizer::create(c, 3);
    QVERIFY(!r);
    QVERIFY(r.status().message().find("outer.momentum") != std::string::npos);
    c = default_outer_config(OuterOptimizerKind::kAdam);
    c.beta2 = 1.5f;
    QVERIFY(!OuterOptimizer::create(c, 3));
    auto kind = parse_outer_optimizer("lion");
    QVERIFY(!kind);
    QVERIFY(kind.status().message().find("expected nesterov, sgd or adam") != std::string::npos);
    QCOMPARE(*parse_outer_optimizer("adam"), OuterOptimizerKind::kAdam);
    OuterOptimizer opt = make(OuterOptimizerConfig{}, 3);
    std::vector<float> theta(3);
    Status s = opt.step(theta, std::vector<float>(4));
    QVERIFY(!s);
    QVERIFY2(s.message().find("optimizer of 3 parameters") != std::string::npos,
             s.message().c_str());
    QCOMPARE(opt.step_count(), int64_t{0});
  }
};

QTEST_GUILESS_MAIN(AlgoOuterOptimizerTest)
#include "test_algo_outer_optimizer.moc"
