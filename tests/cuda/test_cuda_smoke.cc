// Needs a CUDA device: probes the runtime and runs the axpy kernel against its CPU twin.
// Without a device it prints "skipped: no CUDA device", which ctest reports as a skip.
#include <QtTest>

#include "backend/cuda_runtime.h"

class CudaSmokeTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    info_ = dipaco::probe_cuda();
    if (info_.devices.empty()) {
      std::printf("skipped: no CUDA device (%s)\n", info_.unavailable_reason.c_str());
      QSKIP("skipped: no CUDA device");
    }
  }
  void librariesReportVersions() {
    QVERIFY(info_.runtime_version >= 12000);
    QVERIFY(info_.cudnn_version >= 90000);
    QVERIFY(info_.nccl_version > 0);
  }
  void axpyMatchesCpuTwin() {
    for (const auto& device : info_.devices) {
      std::string error = dipaco::cuda_axpy_self_test(device.index, 1000003);
      QVERIFY2(error.empty(), error.c_str());
    }
  }

 private:
  dipaco::CudaRuntimeInfo info_;
};

QTEST_GUILESS_MAIN(CudaSmokeTest)
#include "test_cuda_smoke.moc"
