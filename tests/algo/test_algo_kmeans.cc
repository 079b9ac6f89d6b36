// k-means routing: recovery of well-separated clusters, balanced sizes, determinism by seed,
// top-2 overlap, and clear errors for degenerate inputs.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <vector>

#include "routing/balanced_assignment.h"
#include "routing/kmeans.h"
#include "routing_test_data.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::adjusted_rand_index;
using dipaco::test::Blobs;
using dipaco::test::cluster_sizes;
using dipaco::test::gaussian_blobs;

namespace {
using dipaco::test::contains;

KMeansResult fit(const Blobs& b, KMeansOptions o) {
  auto r = fit_kmeans(FeatureMatrix{b.x, b.n, b.d}, o);
  if (!r) qFatal("%s", r.status().to_string().c_str());
  return std::move(r).value();
}
}  // namespace

class AlgoKMeansTest : public QObject {
  Q_OBJECT

 private slots:
  void recoversWellSeparatedGaussianClusters() {
    Blobs b = gaussian_blobs({120, 80, 100, 60, 90}, 8, 20.0f, 1);
    for (uint64_t seed = 0; seed < 10; ++seed) {
      KMeansOptions o;
      o.k = 5;
      o.seed = seed;
      KMeansResult r = fit(b, o);
      double ari = adjusted_rand_index(r.assignment, b.label);
      QVERIFY2(ari > 0.99, qPrintable(QString("seed %1: ARI %2").arg(seed).arg(ari)));
      QVERIFY(r.converged);
      QVERIFY(r.iterations < o.max_iterations);
      // Inertia is about n·d (unit noise per feature).
      QVERIFY2(r.inertia < 1.3 * static_cast<double>(b.n * b.d),
               qPrintable(QString::number(r.inertia)));
      // Routing the training rows again gives the fitted assignment.
      auto again = assign_nearest(r.model, FeatureMatrix{b.x, b.n, b.d});
      QVERIFY(again);
      QCOMPARE(*again, r.assignment);
    }
  }

  void sameSeedSameResult() {
    Blobs b = gaussian_blobs({50, 50, 50, 50}, 6, 3.0f, 2);  // overlapping: the seed matters
    KMeansOptions o;
    o.k = 4;
    o.seed = 42;
    KMeansResult a = fit(b, o), c = fit(b, o);
    QCOMPARE(a.model.centroids, c.model.centroids);
    QCOMPARE(a.assignment, c.assignment);
    QCOMPARE(a.iterations, c.iterations);
  }

  void balancedOptionCapsEveryCluster() {
    // One big cluster and three small ones: plain k-means follows the data, balanced caps.
    Blobs b = gaussian_blobs({250, 50, 50, 51}, 4, 10.0f, 3);
    KMeansOptions o;
    o.k = 4;
    o.balanced = true;
    KMeansResult r = fit(b, o);
    size_t cap = balanced_capacity(b.n, 4);
    QCOMPARE(cap, size_t{101});
    std::vector<size_t> sizes = cluster_sizes(r.assignment, 4);
    for (size_t s : sizes) QVERIFY2(s <= cap, qPrintable(QString::number(s)));
    // The same cap holds when routing with the fitted model.
    auto routed = assign_balanced(r.model, FeatureMatrix{b.x, b.n, b.d});
    QVERIFY(routed);
    for (size_t s : cluster_sizes(*routed, 4)) QVERIFY(s <= cap);
    KMeansOptions plain = o;
    plain.balanced = false;
    KMeansResult p = fit(b, plain);
    std::vector<size_t> plain_sizes = cluster_sizes(p.assignment, 4);
    QVERIFY(*std::max_element(plain_sizes.begin(), plain_sizes.end()) > cap);
  }

  void balancedAssignmentKeepsClearPointsAndFillsCapacity() {
    // 4 points, 2 clusters, capacity 2: points 0 and 1 both prefer cluster 0, but point 1 is
    // nearly indifferent (small margin), so it is the one moved.
    std::vector<float> dist = {0.0f, 10.0f,  // point 0: clearly cluster 0
                               1.0f, 1.5f,   // point 1: slightly prefers 0
                               0.5f, 9.0f,   // point 2: clearly cluster 0
                               8.0f, 0.0f};  // point 3: clearly cluster 1
    auto a = balanced_assignment(dist, 4, 2, 2);
    QVERIFY(a);
    QCOMPARE(*a, (std::vector<int32_t>{0, 1, 0, 1}));
    auto bad = balanced_assignment(dist, 4, 2, 1);
    QVERIFY(!bad);
    QVERIFY2(contains(bad.status().message(), "2 clusters of at most 1 cannot hold 4 points"),
             bad.status().message().c_str());
  }

  void top2GivesTheTwoNearestCentroids() {
    KMeansModel m;
    m.k = 3;
    m.d = 1;
    m.centroids = {0.0f, 10.0f, 4.0f};
    std::vector<float> x = {1.0f, 8.0f, 6.5f};
    auto t = assign_top2(m, FeatureMatrix{x, 3, 1});
    QVERIFY(t);
    QCOMPARE((*t)[0], (std::array<int32_t, 2>{0, 2}));
    QCOMPARE((*t)[1], (std::array<int32_t, 2>{1, 2}));
    QCOMPARE((*t)[2], (std::array<int32_t, 2>{2, 1}));
    KMeansModel one = m;
    one.k = 1;
    one.centroids = {0.0f};
    QVERIFY(!assign_top2(one, FeatureMatrix{x, 3, 1}));
  }

  void degenerateInputsGiveClearErrors() {
    std::vector<float> x = {1, 2, 3, 4, 5, 6};
    KMeansOptions o;
    o.k = 4;
    auto r = fit_kmeans(FeatureMatrix{x, 3, 2}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "k-means with k=4 needs at least 4 documents, got 3"),
             r.status().message().c_str());
    o.k = 2;
    r = fit_kmeans(FeatureMatrix{{}, 5, 0}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "0 dimensions"), r.status().message().c_str());
    x[3] = NAN;
    r = fit_kmeans(FeatureMatrix{x, 3, 2}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "features row 1, column 1 is NaN"),
             r.status().message().c_str());
    x[3] = 4;
    r = fit_kmeans(FeatureMatrix{x, 4, 2}, o);  // 6 values for 4 × 2
    QVERIFY(!r);
    QVERIFY(contains(r.status().message(), "6 values for 4 rows of 2"));
    std::vector<float> same = {1, 1, 1, 1, 1, 1};
    r = fit_kmeans(FeatureMatrix{same, 3, 2}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "fewer than k=2 distinct rows"),
             r.status().message().c_str());
    o.k = 0;
    QVERIFY(!fit_kmeans(FeatureMatrix{x, 3, 2}, o));
    // Routing with a model of another width.
    o.k = 2;
    auto ok = fit_kmeans(FeatureMatrix{x, 3, 2}, o);
    QVERIFY(ok);
    auto wrong = assign_nearest(ok->model, FeatureMatrix{x, 2, 3});
    QVERIFY(!wrong);
    QVERIFY(contains(wrong.status().message(), "features have 3 dimensions but the router's"));
  }
};

QTEST_GUILESS_MAIN(AlgoKMeansTest)
#include "test_algo_kmeans.moc"
