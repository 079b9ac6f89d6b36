// Backend choice: the names people write ("cpu", "cuda", "cuda:N", "auto") and what each makes
// on this host, including the refusal and the fallback when the asked-for GPU is missing.
#include <QtTest>

#include "backend/backend_factory.h"
#include "backend/cuda_runtime.h"
#include "test_support.h"

using dipaco::BackendChoice;
using dipaco::test::contains;

class BackendFactoryTest : public QObject {
  Q_OBJECT

 private slots:
  void namesParse() {
    BackendChoice c;
    QVERIFY(dipaco::parse_backend_name("cpu", &c).is_ok());
    QVERIFY(c.kind == BackendChoice::Kind::kCpu);
    QVERIFY(dipaco::parse_backend_name("cuda:3", &c).is_ok());
    QVERIFY(c.kind == BackendChoice::Kind::kCuda);
    QCOMPARE(c.device, 3);
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    QCOMPARE(c.device, 0);
    QVERIFY(dipaco::parse_backend_name("auto", &c).is_ok());
    QVERIFY(c.kind == BackendChoice::Kind::kAuto);
    for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU", ""}) {
      dipaco::Status s = dipaco::parse_backend_name(bad, &c);
      QVERIFY2(!s.is_ok() && contains(s.message(), "choose cpu, cuda, cuda:N"), bad);
    }
  }

  // Local workers spread over the host's GPUs unless the choice named one.
  void localWorkersSpreadOverGpusUnlessPinned() {
    BackendChoice c;
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    QVERIFY(!c.device_pinned);
    QCOMPARE(dipaco::local_worker_choice(c, 0, 4).device, 0);
    QCOMPARE(dipaco::local_worker_choice(c, 5, 4).device, 1);
    QCOMPARE(dipaco::local_worker_choice(c, 3, 1).device, 0);  // one GPU: all on it
    QVERIFY(dipaco::parse_backend_name("auto", &c).is_ok());
    QCOMPARE(dipaco::local_worker_choice(c, 2, 8).device, 2);
    QVERIFY(dipaco::parse_backend_name("cuda:3", &c).is_ok());
    QVERIFY(c.device_pinned);
    QCOMPARE(dipaco::local_worker_choice(c, 5, 8).device, 3);  // pinned: every worker on GPU 3
    QVERIFY(dipaco::parse_backend_name("cpu", &c).is_ok());
    QVERIFY(dipaco::local_worker_choice(c, 1, 8).kind == BackendChoice::Kind::kCpu);
  }

  // NCCL connects islands when they are made, unless the user chose otherwise.
  void gpuEnvironmentKeepsTheUsersNcclChoice() {
    const bool had = qEnvironmentVariableIsSet("NCCL_RUNTIME_CONNECT");
    const QByteArray before = qgetenv("NCCL_RUNTIME_CONNECT");
    qunsetenv("NCCL_RUNTIME_CONNECT");
    dipaco::prepare_gpu_environment();
    QCOMPARE(qgetenv("NCCL_RUNTIME_CONNECT"), QByteArray("0"));
    qputenv("NCCL_RUNTIME_CONNECT", "1");
    dipaco::prepare_gpu_environment();
    QCOMPARE(qgetenv("NCCL_RUNTIME_CONNECT"), QByteArray("1"));
    if (had) {
      qputenv("NCCL_RUNTIME_CONNECT", before);
    } else {
      qunsetenv("NCCL_RUNTIME_CONNECT");
    }
  }

  // With several GPUs per worker each local worker is an island of consecutive GPUs; what
  // does not fit is refused with the figures.
  void localWorkerIslandsTakeConsecutiveGpus() {
    BackendChoice c;
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    const BackendChoice w0 = dipaco::local_worker_choice(c, 0, 8, 4);
    const BackendChoice w1 = dipaco::local_worker_choice(c, 1, 8, 4);
    QCOMPARE(w0.island_devices, (std::vector<int>{0, 1, 2, 3}));
    QCOMPARE(w1.island_devices, (std::vector<int>{4, 5, 6, 7}));
    QCOMPARE(w1.device, 4);
    QVERIFY(!w1.island_all_devices);
    QVERIFY(dipaco::check_local_islands(c, 2, 4, 8).is_ok());
    QVERIFY(dipaco::check_local_islands(c, 3, 1, 1).is_ok());  // one GPU each: spread, no check
    dipaco::Status too_many = dipaco::check_local_islands(c, 3, 4, 8);
    QVERIFY2(contains(too_many.message(), "need 12 GPUs; this host has 8"),
             too_many.message().c_str());
    QVERIFY(!dipaco::check_local_islands(c, 1, 2, 0).is_ok());  // cuda without a GPU
    QVERIFY(dipaco::parse_backend_name("auto", &c).is_ok());
    QVERIFY(dipaco::check_local_islands(c, 1, 2, 0).is_ok());  // auto: the CPU then
    QVERIFY(dipaco::parse_backend_name("cuda:1", &c).is_ok());
    dipaco::Status pinned = dipaco::check_local_islands(c, 1, 2, 8);
    QVERIFY2(contains(pinned.message(), "cuda:1 pins"), pinned.message().c_str());
    QVERIFY(dipaco::parse_backend_name("cpu", &c).is_ok());
    QVERIFY(contains(dipaco::check_local_islands(c, 1, 2, 0).message(), "not cpu"));
  }

  void cpuIsAlwaysThere() {
    BackendChoice c;
    c.kind = BackendChoice::Kind::kCpu;
    c.cpu_threads = 1;
    auto made = dipaco::create_backend(c);
    QVERIFY(made.is_ok());
    QVERIFY(made->note.empty());
    QVERIFY(made->backend->name().rfind("cpu", 0) == 0);
  }

  // Without a GPU: "cuda" is refused with the reason, "cuda" + fallback and "auto" run on the
  // CPU and say why. With one, "cuda" makes a CUDA backend.
  void missingGpuIsRefusedOrFallsBackAsAsked() {
    const bool have_gpu = !dipaco::probe_cuda().devices.empty();
    BackendChoice c;
    c.kind = BackendChoice::Kind::kCuda;
    auto made = dipaco::create_backend(c);
    if (have_gpu) {
      QVERIFY(made.is_ok());
      QVERIFY(made->backend->name().rfind("cuda:0", 0) == 0);
      return;
    }
    QVERIFY(!made.is_ok());
    QVERIFY2(contains(made.status().message(), "set the backend to cpu"),
             made.status().message().c_str());
    c.fallback_to_cpu = true;
    made = dipaco::create_backend(c);
    QVERIFY(made.is_ok());
    QVERIFY2(contains(made->note, "falling back to the CPU"), made->note.c_str());
    c.kind = BackendChoice::Kind::kAuto;
    c.fallback_to_cpu = false;
    made = dipaco::create_backend(c);
    QVERIFY(made.is_ok());
    QVERIFY2(contains(made->note, "no usable GPU"), made->note.c_str());
    QVERIFY(made->backend->name().rfind("cpu", 0) == 0);
  }
};

QTEST_GUILESS_MAIN(BackendFactoryTest)
#include "test_backend_factory.moc"
