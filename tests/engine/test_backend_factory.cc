// Backend choice: the names people write ("cpu", "cuda", "cuda:N", "auto") and what each makes
// on this host, including the refusal and the fallback when the asked-for GPU is missing.
#include <QtTest>

#include "backend/backend_factory.h"
#include "backend/cuda_runtime.h"
#include "run/local_run.h"
#include "test_support.h"

using dipaco::BackendChoice;
using dipaco::test::contains;

namespace {

// GPUs 0 .. n - 1, all usable.
std::vector<int> gpus(int n) {
  std::vector<int> all;
  for (int i = 0; i < n; ++i) all.push_back(i);
  return all;
}

// A probe's view of a host with GPUs of these compute capabilities (major versions).
dipaco::CudaRuntimeInfo host_with_gpus(const std::vector<int>& compute_majors) {
  dipaco::CudaRuntimeInfo info;
  info.plugin_loaded = true;
  for (size_t i = 0; i < compute_majors.size(); ++i) {
    dipaco::CudaDeviceInfo d;
    d.index = static_cast<int>(i);
    d.name = compute_majors[i] >= 8 ? "NVIDIA H100" : "Tesla V100";
    d.compute_major = compute_majors[i];
    info.devices.push_back(d);
  }
  return info;
}

}  // namespace

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

  // Attention: cuDNN's fused kernels are the default only where the matmuls are bf16 too;
  // tf32 and fp32 keep the cuBLASLt path. The names parse, and others are refused with the list.
  void attentionPathsParseAndDefaultByPrecision() {
    using dipaco::CudaAttention;
    using dipaco::CudaMatmulPrecision;
    QVERIFY(dipaco::default_training_attention(CudaMatmulPrecision::kBf16) ==
            CudaAttention::kCudnn);
    QVERIFY(dipaco::default_training_attention(CudaMatmulPrecision::kTf32) == CudaAttention::kGemm);
    QVERIFY(dipaco::default_training_attention(CudaMatmulPrecision::kFp32) == CudaAttention::kGemm);
    QVERIFY(*dipaco::parse_cuda_attention("gemm") == CudaAttention::kGemm);
    QVERIFY(*dipaco::parse_cuda_attention("kernels") == CudaAttention::kKernels);
    QVERIFY(*dipaco::parse_cuda_attention("cudnn") == CudaAttention::kCudnn);
    for (const char* bad : {"cuDNN", "flash", ""}) {
      auto parsed = dipaco::parse_cuda_attention(bad);
      QVERIFY2(!parsed.is_ok() && contains(parsed.status().message(), "gemm, kernels or cudnn"),
               bad);
    }
  }

  // Local workers spread over the host's GPUs unless the choice named one.
  void localWorkersSpreadOverGpusUnlessPinned() {
    BackendChoice c;
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    QVERIFY(!c.device_pinned);
    QCOMPARE(dipaco::local_worker_choice(c, 0, gpus(4)).device, 0);
    QCOMPARE(dipaco::local_worker_choice(c, 5, gpus(4)).device, 1);
    QCOMPARE(dipaco::local_worker_choice(c, 3, gpus(1)).device, 0);  // one GPU: all on it
    QVERIFY(dipaco::parse_backend_name("auto", &c).is_ok());
    QCOMPARE(dipaco::local_worker_choice(c, 2, gpus(8)).device, 2);
    QVERIFY(dipaco::parse_backend_name("cuda:3", &c).is_ok());
    QVERIFY(c.device_pinned);
    QCOMPARE(dipaco::local_worker_choice(c, 5, gpus(8)).device,
             3);  // pinned: every worker on GPU 3
    QVERIFY(dipaco::parse_backend_name("cpu", &c).is_ok());
    QVERIFY(dipaco::local_worker_choice(c, 1, gpus(8)).kind == BackendChoice::Kind::kCpu);
  }

  // A host that mixes GPUs the backend can use (compute capability 8.0+) with older ones:
  // open choices go to the usable ones, local workers are spread over them only, and what was
  // pinned or listed stays as asked (and is refused when its backend is made).
  void openChoicesSkipGpusTooOldForTheBackend() {
    const dipaco::CudaRuntimeInfo mixed = host_with_gpus({7, 9, 7, 8});
    QCOMPARE(dipaco::usable_gpu_indices(mixed), (std::vector<int>{1, 3}));
    QCOMPARE(dipaco::usable_gpu_count(mixed), 2);
    BackendChoice c;
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    const std::vector<int> usable = dipaco::usable_gpu_indices(mixed);
    QCOMPARE(dipaco::local_worker_choice(c, 0, usable).device, 1);
    QCOMPARE(dipaco::local_worker_choice(c, 1, usable).device, 3);
    QCOMPARE(dipaco::local_worker_choice(c, 2, usable).device, 1);
    QCOMPARE(dipaco::local_worker_choice(c, 0, usable, 2).island_devices, usable);
    // A worker given its GPU keeps it: placing it again does not move it to the first one.
    const BackendChoice second = dipaco::local_worker_choice(c, 1, usable);
    QCOMPARE(dipaco::place_on_usable_gpus(second, mixed).device, 3);

    QCOMPARE(dipaco::place_on_usable_gpus(c, mixed).device, 1);  // "cuda": not GPU 0
    BackendChoice all = c;
    all.island_all_devices = true;  // a worker's `devices = []`
    const BackendChoice placed = dipaco::place_on_usable_gpus(all, mixed);
    QVERIFY(!placed.island_all_devices);
    QCOMPARE(placed.island_devices, usable);
    QVERIFY(dipaco::parse_backend_name("cuda:2", &c).is_ok());
    QCOMPARE(dipaco::place_on_usable_gpus(c, mixed).device, 2);  // pinned: as asked
    BackendChoice listed;
    QVERIFY(dipaco::parse_backend_name("cuda", &listed).is_ok());
    listed.island_devices = {0, 2};
    QCOMPARE(dipaco::place_on_usable_gpus(listed, mixed).island_devices, (std::vector<int>{0, 2}));
    // Nothing usable: left as it is, for create_backend to refuse or fall back with the reason.
    const dipaco::CudaRuntimeInfo old_only = host_with_gpus({7});
    QVERIFY(dipaco::parse_backend_name("auto", &c).is_ok());
    QCOMPARE(dipaco::place_on_usable_gpus(c, old_only).device, 0);
    QVERIFY(contains(dipaco::no_usable_gpu_reason(old_only), "compute capability 7.0"));

    // `dipaco run`'s check counts the usable GPUs and says why the others do not count.
    QVERIFY(dipaco::parse_backend_name("cuda", &c).is_ok());
    QVERIFY(dipaco::check_local_run_gpus(c, 1, 2, mixed).is_ok());
    const dipaco::Status too_many = dipaco::check_local_run_gpus(c, 2, 2, mixed);
    QVERIFY2(contains(too_many.message(), "need 4 GPUs; this host has 2") &&
                 contains(too_many.message(), "only 2 of its 4 GPUs have compute capability 8.0"),
             too_many.message().c_str());
    QVERIFY(!dipaco::check_local_run_gpus(c, 1, 1, old_only).is_ok());
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
    const BackendChoice w0 = dipaco::local_worker_choice(c, 0, gpus(8), 4);
    const BackendChoice w1 = dipaco::local_worker_choice(c, 1, gpus(8), 4);
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
