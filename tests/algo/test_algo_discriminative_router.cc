// Discriminative router: learns separable synthetic data, balances a skewed load with its
// per-path bias, is deterministic, and rejects bad labels and shapes.
#include <QtTest>
#include <algorithm>
#include <vector>

#include "routing/discriminative_router.h"
#include "routing_test_data.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::Blobs;
using dipaco::test::gaussian_blobs;

namespace {
using dipaco::test::contains;

// Splits rows into even (train) and odd (held out) rows.
void split(const Blobs& b, Blobs* train, Blobs* test) {
  for (Blobs* out : {train, test}) {
    out->d = b.d;
    out->x.clear();
    out->label.clear();
  }
  for (size_t i = 0; i < b.n; ++i) {
    Blobs* out = i % 2 == 0 ? train : test;
    out->x.insert(out->x.end(), b.x.begin() + i * b.d, b.x.begin() + (i + 1) * b.d);
    out->label.push_back(b.label[i]);
  }
  train->n = train->label.size();
  test->n = test->label.size();
}
}  // namespace

class AlgoDiscriminativeRouterTest : public QObject {
  Q_OBJECT

 private slots:
  void learnsSeparableDataAndGeneralizes() {
    Blobs all = gaussian_blobs({300, 300, 300, 300}, 6, 6.0f, 4), train, test;
    split(all, &train, &test);
    DiscriminativeRouterOptions o;
    o.paths = 4;
    DiscriminativeRouterReport rep;
    auto r =
        train_discriminative_router(FeatureMatrix{train.x, train.n, train.d}, train.label, o, &rep);
    QVERIFY2(r, r.status().message().c_str());
    QVERIFY2(rep.train_accuracy > 0.98, qPrintable(QString::number(rep.train_accuracy)));
    QVERIFY(rep.train_loss < 0.2);
    QVERIFY(rep.balanced);
    auto routed = route_discriminative(*r, FeatureMatrix{test.x, test.n, test.d});
    QVERIFY(routed);
    size_t correct = 0;
    for (size_t i = 0; i < test.n; ++i) correct += (*routed)[i] == test.label[i];
    double accuracy = static_cast<double>(correct) / static_cast<double>(test.n);
    QVERIFY2(accuracy > 0.97, qPrintable(QString::number(accuracy)));
  }

  void balancingBiasCapsTheLoad() {
    // Three overlapping blobs, the first four times larger: the best-path labels are skewed.
    Blobs b = gaussian_blobs({400, 100, 100}, 4, 2.5f, 6);
    DiscriminativeRouterOptions o;
    o.paths = 3;
    o.balance = false;
    DiscriminativeRouterReport skewed;
    auto plain = train_discriminative_router(FeatureMatrix{b.x, b.n, b.d}, b.label, o, &skewed);
    QVERIFY(plain);
    QVERIFY2(skewed.loads[0] > 300, qPrintable(QString::number(skewed.loads[0])));
    QVERIFY(!skewed.balanced);
    o.balance = true;
    DiscriminativeRouterReport rep;
    auto r = train_discriminative_router(FeatureMatrix{b.x, b.n, b.d}, b.label, o, &rep);
    QVERIFY(r);
    QVERIFY(rep.balanced);
    QVERIFY(rep.balance_rounds_used > 0);
    size_t cap = static_cast<size_t>(200 * 1.05);
    for (size_t load : rep.loads) QVERIFY2(load <= cap, qPrintable(QString::number(load)));
    // The weights are the same; only the balance offsets moved, and path 0's went down.
    QCOMPARE(r->weights, plain->weights);
    QVERIFY(r->balance[0] < 0);
  }

  void deterministic() {
    Blobs b = gaussian_blobs({50, 60, 70}, 3, 3.0f, 8);
    DiscriminativeRouterOptions o;
    o.paths = 3;
    auto a = train_discriminative_router(FeatureMatrix{b.x, b.n, b.d}, b.label, o, nullptr);
    auto c = train_discriminative_router(FeatureMatrix{b.x, b.n, b.d}, b.label, o, nullptr);
    QVERIFY(a && c);
    QCOMPARE(a->weights, c->weights);
    QCOMPARE(a->bias, c->bias);
    QCOMPARE(a->balance, c->balance);
  }

  void bestPathLabelsTakeTheLowestLoss() {
    std::vector<float> losses = {3.0f, 2.5f, 2.9f,  //
                                 1.0f, 1.0f, 4.0f};
    auto l = best_path_labels(losses, 2, 3);
    QVERIFY(l);
    QCOMPARE(*l, (std::vector<int32_t>{1, 0}));
    losses[4] = NAN;
    auto bad = best_path_labels(losses, 2, 3);
    QVERIFY(!bad);
    QVERIFY(contains(bad.status().message(), "loss of document 1 on path 1 is not finite"));
    QVERIFY(!best_path_labels(losses, 3, 3));
  }

  void badInputsGiveClearErrors() {
    std::vector<float> x = {0, 1, 2, 3, 4, 5};
    std::vector<int32_t> labels = {0, 1, 2};
    DiscriminativeRouterOptions o;
    o.paths = 2;
    auto r = train_discriminative_router(FeatureMatrix{x, 3, 2}, labels, o, nullptr);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "label of document 2 is path 2, outside [0, 2)"),
             r.status().message().c_str());
    r = train_discriminative_router(FeatureMatrix{x, 3, 2}, std::vector<int32_t>{0, 1}, o, nullptr);
    QVERIFY(!r);
    QVERIFY(contains(r.status().message(), "2 labels for 3 documents"));
    o.paths = 1;
    r = train_discriminative_router(FeatureMatrix{x, 3, 2}, labels, o, nullptr);
    QVERIFY(!r);
    QVERIFY(contains(r.status().message(), "at least 2 paths"));
    o.paths = 3;
    auto ok = train_discriminative_router(FeatureMatrix{x, 3, 2}, labels, o, nullptr);
    QVERIFY(ok);
    auto wrong = route_discriminative(*ok, FeatureMatrix{x, 2, 3});
    QVERIFY(!wrong);
    QVERIFY(contains(wrong.status().message(), "trained on 2"));
  }
};

QTEST_GUILESS_MAIN(AlgoDiscriminativeRouterTest)
#include "test_algo_discriminative_router.moc"
