// The cuDNN attention graphs, checked on any host: every tensor and operation descriptor of the
// forward and backward graphs must pass cuDNN's own finalize checks (data types, ranks, matmul
// and broadcast shapes), for plain and grouped-query heads. Only turning a graph into a plan
// needs a GPU; tests/cuda/test_cuda_backend runs that part (and compares against the CPU).
#include <QtTest>

#include "backend/cuda/cudnn_sdpa_graphs.h"

using dipaco::cudnn::GraphBuilder;
using dipaco::cudnn::SdpaShape;

class CudnnSdpaGraphsTest : public QObject {
  Q_OBJECT

 private slots:
  void everyOperationFinalizes_data() {
    QTest::addColumn<int>("B");
    QTest::addColumn<int>("T");
    QTest::addColumn<int>("H");
    QTest::addColumn<int>("KVH");
    QTest::addColumn<int>("hd");
    QTest::newRow("grouped, odd T") << 2 << 37 << 4 << 2 << 16;
    QTest::newRow("multi-head") << 2 << 256 << 4 << 4 << 64;
    QTest::newRow("grouped 4:1, head 128") << 8 << 1024 << 16 << 4 << 128;
  }
  void everyOperationFinalizes() {
    QFETCH(int, B);
    QFETCH(int, T);
    QFETCH(int, H);
    QFETCH(int, KVH);
    QFETCH(int, hd);
    const SdpaShape shape{B, T, H, KVH, hd};
    const bool grouped = H != KVH;

    GraphBuilder forward(nullptr);
    dipaco::cudnn::declare_sdpa_forward(forward, shape);
    QVERIFY2(forward.error().empty(), forward.error().c_str());
    // matmul, scale, 2 indices, compare, select, max, sub, exp, sum, log, add, div, matmul
    QCOMPARE(forward.operation_count(), size_t{14});

    GraphBuilder backward(nullptr);
    dipaco::cudnn::declare_sdpa_backward(backward, shape);
    QVERIFY2(backward.error().empty(), backward.error().c_str());
    // grouped heads add one reduction each for dK and dV
    QCOMPARE(backward.operation_count(), size_t{grouped ? 24u : 22u});
    if (B == 2 && T == 37) {
      std::printf("forward graph:\n%s\nbackward graph:\n%s", forward.describe().c_str(),
                  backward.describe().c_str());
    }
  }

  // A wrong graph is refused with the step that failed and cuDNN's reason, not an abort.
  void mismatchedMatmulIsRefusedWithItsStep() {
    GraphBuilder g(nullptr);
    const int64_t a = g.tensor(CUDNN_DATA_BFLOAT16, {1, 2, 8, 16}, {256, 128, 16, 1}, false, 1);
    const int64_t b = g.tensor(CUDNN_DATA_BFLOAT16, {1, 2, 12, 8}, {192, 96, 8, 1}, false, 2);
    const int64_t c = g.tensor(CUDNN_DATA_FLOAT, {1, 2, 8, 8}, {128, 64, 8, 1}, false, 3);
    QVERIFY2(g.error().empty(), g.error().c_str());
    g.matmul(a, b, c);  // [8 x 16] @ [12 x 8]: inner dimensions differ
    QVERIFY(!g.error().empty());
    QVERIFY2(g.error().find("matmul") != std::string::npos, g.error().c_str());
    std::printf("  refused as expected: %s\n", g.error().c_str());
  }

  void planningWithoutAHandleFailsCleanly() {
    GraphBuilder g(nullptr);
    dipaco::cudnn::declare_sdpa_forward(g, SdpaShape{1, 16, 2, 2, 16});
    std::string error;
    QVERIFY(g.finalize(&error) == nullptr);
    QVERIFY(!error.empty());
    std::printf("  without a GPU: %s\n", error.c_str());
  }
};

QTEST_APPLESS_MAIN(CudnnSdpaGraphsTest)
#include "test_cudnn_sdpa_graphs.moc"
