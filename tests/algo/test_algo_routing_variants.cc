// Product k-means (K×K shards from two half-feature k-means), its top-2 overlap, and random
// routing as a control.
#include <QtTest>
#include <algorithm>
#include <vector>

#include "routing/product_kmeans.h"
#include "routing/random_routing.h"
#include "routing_test_data.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::adjusted_rand_index;
using dipaco::test::Blobs;
using dipaco::test::cluster_sizes;
using dipaco::test::gaussian_blobs;

namespace {
using dipaco::test::contains;

// Rows whose first half comes from one of 3 blobs and whose second half from another 3,
// independently: the 9 combinations are the product shards.
Blobs product_blobs(size_t n, size_t half, uint32_t seed, std::vector<int32_t>* first,
                    std::vector<int32_t>* second) {
  Blobs a = gaussian_blobs({n / 3, n / 3, n / 3}, half, 20.0f, seed);
  Blobs b = gaussian_blobs({n / 3, n / 3, n / 3}, half, 20.0f, seed + 100);
  std::mt19937 gen(seed);
  std::vector<size_t> perm(b.n);
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), gen);
  Blobs out;
  out.n = a.n;
  out.d = 2 * half;
  for (size_t i = 0; i < a.n; ++i) {
    size_t j = perm[i];
    out.x.insert(out.x.end(), a.x.begin() + i * half, a.x.begin() + (i + 1) * half);
    out.x.insert(out.x.end(), b.x.begin() + j * half, b.x.begin() + (j + 1) * half);
    first->push_back(a.label[i]);
    second->push_back(b.label[j]);
    out.label.push_back(a.label[i] * 3 + b.label[j]);
  }
  return out;
}
}  // namespace

class AlgoRoutingVariantsTest : public QObject {
  Q_OBJECT

 private slots:
  void productKMeansShapesAndIds() {
    std::vector<int32_t> first, second;
    Blobs b = product_blobs(450, 3, 5, &first, &second);
    KMeansOptions o;
    o.k = 3;
    o.seed = 9;
    auto r = fit_product_kmeans(FeatureMatrix{b.x, b.n, b.d}, o);
    QVERIFY2(r, r.status().message().c_str());
    QCOMPARE(r->model.shards(), size_t{9});
    QCOMPARE(r->model.d_first, size_t{3});
    QCOMPARE(r->model.first.d, size_t{3});
    QCOMPARE(r->model.second.d, size_t{3});
    QCOMPARE(r->model.first.centroids.size(), size_t{9});
    QCOMPARE(r->assignment.size(), b.n);
    for (size_t i = 0; i < b.n; ++i) {
      int32_t id = r->assignment[i];
      QVERIFY(id >= 0 && id < 9);
      QCOMPARE(id, r->first.assignment[i] * 3 + r->second.assignment[i]);
    }
    QVERIFY(adjusted_rand_index(r->first.assignment, first) > 0.99);
    QVERIFY(adjusted_rand_index(r->second.assignment, second) > 0.99);
    QVERIFY(adjusted_rand_index(r->assignment, b.label) > 0.99);
    auto again = assign_product(r->model, FeatureMatrix{b.x, b.n, b.d});
    QVERIFY(again);
    QCOMPARE(*again, r->assignment);
    // Odd width: the first half gets ⌊d/2⌋.
    std::vector<float> odd(30 * 5);
    for (size_t i = 0; i < odd.size(); ++i) odd[i] = static_cast<float>((i * 37) % 11);
    auto ro = fit_product_kmeans(FeatureMatrix{odd, 30, 5}, o);
    QVERIFY2(ro, ro.status().message().c_str());
    QCOMPARE(ro->model.d_first, size_t{2});
    QCOMPARE(ro->model.second.d, size_t{3});
  }

  void productTop2IsTheBestAndSecondBestCombination() {
    ProductKMeansModel m;
    m.k = 2;
    m.d_first = 1;
    m.first = KMeansModel{2, 1, {0.0f, 10.0f}};
    m.second = KMeansModel{2, 1, {0.0f, 10.0f}};
    // (1, 4): first half nearest 0 (d 1 vs 81), second half nearest 0 (16 vs 36). Second best:
    // (0,1) costs 1 + 36, (1,0) costs 81 + 16 → shard 0·2 + 1.
    std::vector<float> x = {1.0f, 4.0f, 6.0f, 9.0f};
    auto t = assign_product_top2(m, FeatureMatrix{x, 2, 2});
    QVERIFY(t);
    QCOMPARE((*t)[0], (std::array<int32_t, 2>{0, 1}));
    // (6, 9): nearest (1, 1); second: (0,1) costs 36 + 1, (1,0) costs 16 + 81 → shard 1.
    QCOMPARE((*t)[1], (std::array<int32_t, 2>{3, 1}));
  }

  void productKMeansDeterministicAndBalancedPerHalf() {
    std::vector<int32_t> first, second;
    Blobs b = product_blobs(300, 2, 8, &first, &second);
    KMeansOptions o;
    o.k = 3;
    o.seed = 1;
    o.balanced = true;
    auto r1 = fit_product_kmeans(FeatureMatrix{b.x, b.n, b.d}, o);
    auto r2 = fit_product_kmeans(FeatureMatrix{b.x, b.n, b.d}, o);
    QVERIFY(r1 && r2);
    QCOMPARE(r1->assignment, r2->assignment);
    QCOMPARE(r1->model.first.centroids, r2->model.first.centroids);
    for (size_t s : cluster_sizes(r1->first.assignment, 3)) QVERIFY(s <= 100);
    for (size_t s : cluster_sizes(r1->second.assignment, 3)) QVERIFY(s <= 100);
  }

  void productKMeansErrors() {
    std::vector<float> x = {1, 2, 3};
    KMeansOptions o;
    o.k = 2;
    auto r = fit_product_kmeans(FeatureMatrix{x, 3, 1}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "at least 2 dimensions, got 1"),
             r.status().message().c_str());
    std::vector<float> y = {1, 2, 3, 4};
    o.k = 3;
    r = fit_product_kmeans(FeatureMatrix{y, 2, 2}, o);
    QVERIFY(!r);
    QVERIFY2(contains(r.status().message(), "first half: k-means with k=3 needs at least 3"),
             r.status().message().c_str());
  }

  void randomRoutingIsSeededAndEven() {
    auto a = random_routing(1003, 4, 7);
    auto b = random_routing(1003, 4, 7);
    auto c = random_routing(1003, 4, 8);
    QVERIFY(a && b && c);
    QCOMPARE(*a, *b);
    QVERIFY(*a != *c);
    std::vector<size_t> sizes = cluster_sizes(*a, 4);
    QCOMPARE(sizes, (std::vector<size_t>{251, 251, 251, 250}));
    // Not simply i mod 4.
    size_t same = 0;
    for (size_t i = 0; i < a->size(); ++i) same += (*a)[i] == static_cast<int32_t>(i % 4);
    QVERIFY(same < 400);
    QVERIFY(!random_routing(10, 0, 1));
    auto empty = random_routing(0, 3, 1);
    QVERIFY(empty && empty->empty());
  }
};

QTEST_GUILESS_MAIN(AlgoRoutingVariantsTest)
#include "test_algo_routing_variants.moc"
