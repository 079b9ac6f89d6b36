// The NCCL island on every visible GPU (one GPU works too): the all-reduce's sums against the
// host's, bit-identical on every GPU; an island trainer in fp32 against one GPU on the full
// batch, against the CPU island, and against itself (determinism); replicas that stay
// identical; create_island over all GPUs. Skips (and says so) without a CUDA device.
#include <QtTest>
#include <cmath>
#include <cstring>
#include <memory>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "cuda_test_support.h"
#include "train/island_test_support.h"

using namespace dipaco;

namespace {

// One fp32 CudaBackend per visible GPU and the NCCL all-reduce over them (create_island makes
// bf16 backends and no all-reduce for one GPU; these tests want fp32 and NCCL on any count).
CreatedIsland make_gpu_island(int gpus) {
  CreatedIsland island;
  std::vector<int> devices;
  for (int device = 0; device < gpus; ++device) {
    auto backend = create_cuda_backend({device, CudaMatmulPrecision::kFp32});
    if (!backend.is_ok()) qFatal("GPU %d: %s", device, backend.status().message().c_str());
    island.backends.push_back(std::move(backend).value());
    devices.push_back(device);
  }
  auto all_reduce = create_cuda_island_all_reduce(island.replicas(), devices);
  if (!all_reduce.is_ok()) qFatal("%s", all_reduce.status().message().c_str());
  island.all_reduce = std::move(all_reduce).value();
  return island;
}

// Batch 2 rows per GPU, so any number of GPUs splits it.
TrainOptions options_for(int gpus) {
  TrainOptions o = test::island_options();
  o.batch_size = 2 * gpus;
  return o;
}

test::TrainedRun train_island(const std::vector<Backend*>& replicas, IslandAllReduce* all_reduce,
                              const TrainOptions& o, Status* in_sync) {
  auto trainer = Trainer::create_island(replicas, all_reduce, test::island_model(), o);
  if (!trainer.is_ok()) qFatal("%s", trainer.status().message().c_str());
  SyntheticBatchSource source(o.batch_size, o.seq_len, test::island_model().vocab_size, 5);
  test::TrainedRun run = test::train_all_steps(**trainer, source);
  if (in_sync != nullptr) *in_sync = (*trainer)->check_replicas_in_sync();
  return run;
}

double worst_loss_difference(const test::TrainedRun& a, const test::TrainedRun& b) {
  double worst = 0;
  for (size_t s = 0; s < a.steps.size(); ++s)
    worst = std::max(worst, std::fabs(a.steps[s].loss - b.steps[s].loss) / b.steps[s].loss);
  return worst;
}

}  // namespace

class CudaIslandTest : public QObject {
  Q_OBJECT

 private:
  int gpus_ = 0;

 private slots:
  void initTestCase() {
    DIPACO_SKIP_WITHOUT_CUDA();
    gpus_ = static_cast<int>(probe_cuda().devices.size());
    std::printf("island of %d GPU(s)\n", gpus_);
  }

  void ncclSumsLikeTheHostOnEveryGpu() {
    CreatedIsland island = make_gpu_island(gpus_);
    std::printf("all-reduce: %s\n", island.all_reduce->name().c_str());
    const size_t count = (size_t{1} << 22) + 13;  // 16 MiB and an odd tail
    std::vector<std::vector<float>> host;
    std::vector<test::Mirror<float>> buffers;
    std::vector<float*> pointers;
    for (int r = 0; r < gpus_; ++r) {
      host.push_back(test::random_floats(count, 100 + static_cast<uint64_t>(r), 1.0f));
      buffers.emplace_back(island.backends[static_cast<size_t>(r)].get(), host.back());
      pointers.push_back(buffers.back().get());
    }
    QVERIFY(island.all_reduce->all_reduce_sum(pointers, count).is_ok());
    std::vector<float> want(count);
    for (size_t i = 0; i < count; ++i) {
      float sum = 0;
      for (int r = 0; r < gpus_; ++r) sum += host[static_cast<size_t>(r)][i];
      want[i] = sum;
    }
    const std::vector<float> first = buffers[0].host();
    // NCCL's order of addition is its own: equal to the host's up to rounding (exact for 1 or
    // 2 GPUs, where there is only one order), a few float ulps of the largest sum per GPU.
    DIPACO_EXPECT_CLOSE(first, want, gpus_ <= 2 ? 0.0 : 5e-7 * gpus_);
    for (int r = 1; r < gpus_; ++r) {
      const std::vector<float> other = buffers[static_cast<size_t>(r)].host();
      QVERIFY2(std::memcmp(other.data(), first.data(), count * sizeof(float)) == 0,
               qPrintable(QString("GPU %1 holds other bits than GPU 0").arg(r)));
    }
  }

  // The island on all GPUs = one GPU on the full batch (fp32), = the CPU island up to the
  // GPU's rounding, = itself on a second run; its replicas stay identical.
  void gpuIslandTrainsLikeOneGpuAndTheCpuIsland() {
    const TrainOptions o = options_for(gpus_);
    CreatedIsland island = make_gpu_island(gpus_);
    Status in_sync;
    test::TrainedRun got = train_island(island.replicas(), island.all_reduce.get(), o, &in_sync);
    QVERIFY2(in_sync.is_ok(), in_sync.message().c_str());
    test::TrainedRun again = train_island(island.replicas(), island.all_reduce.get(), o, nullptr);
    for (size_t s = 0; s < got.steps.size(); ++s) QCOMPARE(again.steps[s].loss, got.steps[s].loss);
    QVERIFY(again.params == got.params);

    test::TrainedRun one_gpu = train_island({island.backends[0].get()}, nullptr, o, nullptr);
    const double vs_one_loss = worst_loss_difference(got, one_gpu);
    const double vs_one_params = test::relative_difference(got.params, one_gpu.params);

    BackendChoice cpu_choice;
    cpu_choice.kind = BackendChoice::Kind::kCpu;
    cpu_choice.cpu_threads = 2 * gpus_;
    cpu_choice.cpu_replicas = gpus_;
    auto cpu = create_island(cpu_choice);
    QVERIFY2(cpu.is_ok(), cpu.status().message().c_str());
    test::TrainedRun on_cpu = train_island(cpu->replicas(), cpu->all_reduce.get(), o, nullptr);
    const double vs_cpu_loss = worst_loss_difference(got, on_cpu);
    const double vs_cpu_params = test::relative_difference(got.params, on_cpu.params);
    std::printf(
        "GPU island of %d, 10 steps: vs one GPU loss %.3g params %.3g; vs CPU island "
        "loss %.3g params %.3g (relative); loss %.4f -> %.4f\n",
        gpus_, vs_one_loss, vs_one_params, vs_cpu_loss, vs_cpu_params, got.steps.front().loss,
        got.steps.back().loss);
    QVERIFY2(vs_one_loss < 1e-5, qPrintable(QString::number(vs_one_loss)));
    QVERIFY2(vs_one_params < 1e-4, qPrintable(QString::number(vs_one_params)));
    QVERIFY2(vs_cpu_loss < 1e-3, qPrintable(QString::number(vs_cpu_loss)));
    QVERIFY(got.steps.back().loss < got.steps.front().loss);
  }

  // What a worker with `devices = []` and backend cuda trains on.
  void createIslandTakesEveryGpu() {
    BackendChoice c;
    c.kind = BackendChoice::Kind::kCuda;
    c.island_all_devices = true;
    auto made = create_island(c);
    QVERIFY2(made.is_ok(), made.status().message().c_str());
    std::printf("create_island: %s\n", made->name().c_str());
    QCOMPARE(static_cast<int>(made->backends.size()), gpus_);
    QCOMPARE(made->all_reduce != nullptr, gpus_ > 1);
    QVERIFY(made->note.empty());
  }
};

QTEST_GUILESS_MAIN(CudaIslandTest)
#include "test_cuda_island.moc"
