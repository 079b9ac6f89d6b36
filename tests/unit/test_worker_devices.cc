// describe_worker_devices: what a worker tells the coordinator it trains on, from its backend
// choice and a CUDA probe (a fake one here: this host has no GPU).
#include <QtTest>

#include "worker_devices.h"

namespace {

dipaco::CudaDeviceInfo gpu(int index, const std::string& name, int major, size_t total_mib) {
  dipaco::CudaDeviceInfo info;
  info.index = index;
  info.name = name;
  info.compute_major = major;
  info.compute_minor = 0;
  info.total_bytes = total_mib << 20;
  return info;
}

// A host with an old GPU 0 (compute capability 7.0, not usable) and an H100 as GPU 1.
dipaco::CudaRuntimeInfo mixed_host() {
  dipaco::CudaRuntimeInfo info;
  info.plugin_loaded = true;
  info.devices = {gpu(0, "Tesla V100-SXM2-16GB", 7, 16384),
                  gpu(1, "NVIDIA H100 80GB HBM3", 9, 81559)};
  return info;
}

dipaco::CudaRuntimeInfo no_gpu() {
  dipaco::CudaRuntimeInfo info;
  info.unavailable_reason = "no CUDA plugin";
  return info;
}

dipaco::BackendChoice choice(const std::string& backend, std::vector<int> devices,
                             bool fallback_to_cpu = false) {
  dipaco::WorkerConfig config;
  config.backend = backend;
  config.devices = std::move(devices);
  config.fallback_to_cpu = fallback_to_cpu;
  return dipaco::backend_choice(config);
}

bool is_one_cpu(const std::vector<dipaco::WorkerDevice>& devices) {
  return devices.size() == 1 && devices[0].name == "cpu" && !devices[0].cuda &&
         devices[0].memory_bytes == 0;
}

}  // namespace

class WorkerDevicesTest : public QObject {
  Q_OBJECT

 private slots:
  void cpuIsOneCpuDevice() {
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(choice("cpu", {}), mixed_host())));
    dipaco::WorkerConfig config;
    config.backend = "cpu";
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(config)));
  }

  void cpuReplicasAreCounted() {
    dipaco::BackendChoice replicas = choice("cpu", {});
    replicas.cpu_replicas = 3;
    const auto devices = dipaco::describe_worker_devices(replicas, no_gpu());
    QCOMPARE(devices.size(), size_t{3});
    QCOMPARE(devices[2].name, std::string("cpu"));
  }

  void withoutAGpuAutoAndFallbackAreTheCpu() {
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(choice("auto", {}), no_gpu())));
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(choice("auto", {0}), no_gpu())));
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(choice("cuda", {0}, true), no_gpu())));
    // This host: the real probe finds no GPU in a CPU-only build.
    dipaco::WorkerConfig config;
    config.backend = "auto";
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(config)));
  }

  void allUsableGpusSkipTheOldOne() {
    const auto devices = dipaco::describe_worker_devices(choice("cuda", {}), mixed_host());
    QCOMPARE(devices.size(), size_t{1});
    QCOMPARE(devices[0].name, std::string("NVIDIA H100 80GB HBM3"));
    QVERIFY(devices[0].cuda);
    QCOMPARE(devices[0].memory_bytes, uint64_t{81559} << 20);
    QCOMPARE(devices[0].compute_capability, std::string("9.0"));
  }

  void listedGpusAreDescribedInOrder() {
    dipaco::CudaRuntimeInfo host = mixed_host();
    host.devices.push_back(gpu(2, "NVIDIA H100 80GB HBM3", 9, 81559));
    const auto devices = dipaco::describe_worker_devices(choice("auto", {2, 1}), host);
    QCOMPARE(devices.size(), size_t{2});
    QCOMPARE(devices[0].name, std::string("NVIDIA H100 80GB HBM3"));
    QCOMPARE(devices[1].compute_capability, std::string("9.0"));
  }

  void anOldListedGpuFallsBackOrIsShownAsAsked() {
    // auto falls back to the CPU, as create_island does.
    QVERIFY(is_one_cpu(dipaco::describe_worker_devices(choice("auto", {0}), mixed_host())));
    // cuda without fallback_to_cpu: the island will refuse; the GPU asked for is what is shown.
    const auto devices = dipaco::describe_worker_devices(choice("cuda", {0}), mixed_host());
    QCOMPARE(devices.size(), size_t{1});
    QCOMPARE(devices[0].name, std::string("Tesla V100-SXM2-16GB"));
    QCOMPARE(devices[0].compute_capability, std::string("7.0"));
    // A GPU the probe does not know keeps its index.
    const auto missing = dipaco::describe_worker_devices(choice("cuda", {5}), mixed_host());
    QCOMPARE(missing.size(), size_t{1});
    QCOMPARE(missing[0].name, std::string("cuda:5"));
  }
};

QTEST_GUILESS_MAIN(WorkerDevicesTest)
#include "test_worker_devices.moc"
