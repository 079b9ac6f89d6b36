// The island (data parallel inside a path) on CPU replicas: the host all-reduce's sums, an
// island of 2 and 4 replicas against one model on the full batch (losses, gradient norms and
// parameters after 10 clipped steps with gradient accumulation), replicas that stay identical,
// evaluation, checkpoints through replica 0, refused batch splits, and create_island's choices.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "island_test_support.h"
#include "tensor/device_buffer.h"
#include "tensor/island_host_all_reduce.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

struct CpuIsland {
  std::vector<std::unique_ptr<CpuBackend>> backends;
  std::unique_ptr<HostIslandAllReduce> all_reduce;

  explicit CpuIsland(int replicas) {
    for (int i = 0; i < replicas; ++i) backends.push_back(std::make_unique<CpuBackend>(1));
    all_reduce = std::make_unique<HostIslandAllReduce>(pointers());
  }
  std::vector<Backend*> pointers() const {
    std::vector<Backend*> out;
    for (const auto& b : backends) out.push_back(b.get());
    return out;
  }
};

std::unique_ptr<Trainer> make_island_trainer(const CpuIsland& island, const TrainOptions& o) {
  auto t =
      Trainer::create_island(island.pointers(), island.all_reduce.get(), test::island_model(), o);
  if (!t.is_ok()) qFatal("%s", t.status().message().c_str());
  return std::move(t).value();
}

std::unique_ptr<Trainer> make_single_trainer(Backend* backend, const TrainOptions& o) {
  auto t = Trainer::create(backend, test::island_model(), o);
  if (!t.is_ok()) qFatal("%s", t.status().message().c_str());
  return std::move(t).value();
}

}  // namespace

class TrainIslandTest : public QObject {
  Q_OBJECT

 private slots:
  // ((b0 + b1) + b2) in float on every replica, bit for bit, across the staging chunks.
  void hostAllReduceSumsInReplicaOrder() {
    CpuIsland island(3);
    const size_t count = (size_t{1} << 20) + 37;  // one full staging chunk and a partial one
    std::vector<std::vector<float>> host(3, std::vector<float>(count));
    std::vector<DeviceBuffer> buffers;
    std::vector<float*> pointers;
    for (size_t r = 0; r < 3; ++r) {
      for (size_t i = 0; i < count; ++i)
        host[r][i] = std::sin(0.001f * static_cast<float>(i) * static_cast<float>(r + 1)) * 1e3f /
                     static_cast<float>(r * 7 + 1);
      buffers.emplace_back(island.backends[r].get(), count * sizeof(float));
      island.backends[r]->copy_to_device(buffers.back().get(), host[r].data(),
                                         count * sizeof(float));
      pointers.push_back(buffers.back().f32());
    }
    QVERIFY(island.all_reduce->all_reduce_sum(pointers, count).is_ok());
    for (size_t r = 0; r < 3; ++r) {
      for (size_t i = 0; i < count; i += 997) {
        const float expected = (host[0][i] + host[1][i]) + host[2][i];
        QVERIFY2(std::memcmp(&pointers[r][i], &expected, sizeof(float)) == 0,
                 qPrintable(QString("replica %1 float %2").arg(r).arg(i)));
      }
      QCOMPARE(pointers[r][count - 1],
               (host[0][count - 1] + host[1][count - 1]) + host[2][count - 1]);
    }
    auto wrong = island.all_reduce->all_reduce_sum({pointers[0]}, count);
    QVERIFY(!wrong.is_ok() && contains(wrong.message(), "1 buffers for 3 replicas"));
  }

  void islandMatchesOneDeviceOnTheFullBatch_data() {
    QTest::addColumn<int>("replicas");
    QTest::addColumn<bool>("uneven_targets");
    QTest::newRow("2 replicas") << 2 << false;
    QTest::newRow("4 replicas") << 4 << false;
    QTest::newRow("4 replicas, ignored targets") << 4 << true;
  }
  void islandMatchesOneDeviceOnTheFullBatch() {
    QFETCH(int, replicas);
    QFETCH(bool, uneven_targets);
    const TrainOptions o = test::island_options();
    auto source = [&]() -> std::unique_ptr<BatchSource> {
      if (uneven_targets) return std::make_unique<test::UnevenTargetsSource>(8, 16, 32, 5);
      return std::make_unique<SyntheticBatchSource>(8, 16, 32, 5);
    };
    CpuBackend single_backend(1);
    auto single = make_single_trainer(&single_backend, o);
    auto single_source = source();
    test::TrainedRun want = test::train_all_steps(*single, *single_source);

    CpuIsland island(replicas);
    auto trainer = make_island_trainer(island, o);
    QCOMPARE(trainer->replicas(), replicas);
    auto island_source = source();
    test::TrainedRun got = test::train_all_steps(*trainer, *island_source);

    int clipped = 0;
    double worst_loss = 0, worst_norm = 0;
    for (size_t s = 0; s < want.steps.size(); ++s) {
      worst_loss = std::max(worst_loss, std::fabs(got.steps[s].loss - want.steps[s].loss) /
                                            std::fabs(want.steps[s].loss));
      worst_norm =
          std::max(worst_norm, std::fabs(got.steps[s].grad_norm - want.steps[s].grad_norm) /
                                   want.steps[s].grad_norm);
      QCOMPARE(got.steps[s].tokens, want.steps[s].tokens);
      clipped += want.steps[s].grad_norm > o.grad_clip;
    }
    const double params = test::relative_difference(got.params, want.params);
    std::printf(
        "island of %d vs one device, 10 steps: loss %.3g, grad norm %.3g, params %.3g "
        "(relative); %d of 10 steps clipped; final loss %.4f\n",
        replicas, worst_loss, worst_norm, params, clipped, got.steps.back().loss);
    QCOMPARE(clipped, 10);  // the clip is active on every step
    QVERIFY2(worst_loss < 1e-5, qPrintable(QString::number(worst_loss)));
    QVERIFY2(worst_norm < 1e-4, qPrintable(QString::number(worst_norm)));
    QVERIFY2(params < 1e-5, qPrintable(QString::number(params)));
    QVERIFY(got.steps.back().loss < got.steps.front().loss);  // it learns
    QVERIFY2(trainer->check_replicas_in_sync().is_ok(),
             trainer->check_replicas_in_sync().message().c_str());

    // Evaluation splits the rows the same way and weighs them by counted positions.
    auto eval_single = source();
    auto eval_island = source();
    const double eval_want = single->evaluate(*eval_single, 2);
    const double eval_got = trainer->evaluate(*eval_island, 2);
    QVERIFY2(std::fabs(eval_got - eval_want) < 1e-5 * eval_want,
             qPrintable(QString("%1 vs %2").arg(eval_got).arg(eval_want)));
  }

  // Two runs of the same island give the same bits.
  void islandIsDeterministic() {
    const TrainOptions o = test::island_options();
    CpuIsland a(2), b(2);
    auto ta = make_island_trainer(a, o);
    auto tb = make_island_trainer(b, o);
    SyntheticBatchSource sa(8, 16, 32, 3), sb(8, 16, 32, 3);
    test::TrainedRun ra = test::train_all_steps(*ta, sa);
    test::TrainedRun rb = test::train_all_steps(*tb, sb);
    for (size_t s = 0; s < ra.steps.size(); ++s) QCOMPARE(ra.steps[s].loss, rb.steps[s].loss);
    QVERIFY(ra.params == rb.params);
  }

  // The debug check sees a replica that was written without sync_replicas, names it, and
  // sync_replicas repairs it.
  void driftedReplicaIsCaughtAndResynced() {
    CpuIsland island(4);
    auto trainer = make_island_trainer(island, test::island_options());
    SyntheticBatchSource source(8, 16, 32, 1);
    QVERIFY(trainer->train_step(source).is_ok());
    QVERIFY(trainer->check_replicas_in_sync().is_ok());
    std::vector<float> params = trainer->model().get_params();
    params[123] += 0.25f;
    trainer->model().set_params(params);  // replica 0 only
    Status drifted = trainer->check_replicas_in_sync();
    QVERIFY(!drifted.is_ok());
    QVERIFY2(
        contains(drifted.message(), "island replica 1 has drifted from replica 0: parameter 123"),
        drifted.message().c_str());
    trainer->sync_replicas();
    QVERIFY(trainer->check_replicas_in_sync().is_ok());
  }

  // A checkpoint written through replica 0 and loaded into a fresh island continues exactly as
  // the island that kept going.
  void checkpointResumesAnIsland() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("island.safetensors").toStdString();
    TrainOptions o = test::island_options();
    CpuIsland a(2), b(2);
    auto straight = make_island_trainer(a, o);
    SyntheticBatchSource sa(8, 16, 32, 4);
    for (int s = 0; s < 3; ++s) QVERIFY(straight->train_step(sa).is_ok());
    QVERIFY(straight->save_checkpoint(path, sa).is_ok());
    auto resumed = make_island_trainer(b, o);
    SyntheticBatchSource sb(8, 16, 32, 4);
    QVERIFY(resumed->load_checkpoint(path, &sb).is_ok());
    QVERIFY(resumed->check_replicas_in_sync().is_ok());
    for (int s = 0; s < 3; ++s) {
      auto x = straight->train_step(sa);
      auto y = resumed->train_step(sb);
      QVERIFY(x.is_ok() && y.is_ok());
      QCOMPARE(y->loss, x->loss);
      QCOMPARE(y->step, x->step);
    }
    QVERIFY(resumed->model().get_params() == straight->model().get_params());
  }

  void batchThatDoesNotSplitIsRefused() {
    CpuIsland island(4);
    TrainOptions o = test::island_options();
    o.batch_size = 6;
    auto t =
        Trainer::create_island(island.pointers(), island.all_reduce.get(), test::island_model(), o);
    QVERIFY(!t.is_ok());
    QVERIFY2(contains(t.status().message(),
                      "train.batch_size 6 does not split evenly across the island's 4 replicas"),
             t.status().message().c_str());
    // An all-reduce of another size is refused too.
    CpuIsland two(2);
    auto mismatched = Trainer::create_island(island.pointers(), two.all_reduce.get(),
                                             test::island_model(), test::island_options());
    QVERIFY(!mismatched.is_ok());
    QVERIFY(contains(mismatched.status().message(), "needs an all-reduce over 4 replicas, got 2"));
  }

  void createIslandMakesWhatTheChoiceSays() {
    BackendChoice cpu;
    cpu.kind = BackendChoice::Kind::kCpu;
    cpu.cpu_threads = 2;
    cpu.cpu_replicas = 2;
    auto made = create_island(cpu);
    QVERIFY2(made.is_ok(), made.status().message().c_str());
    QCOMPARE(made->backends.size(), size_t{2});
    QVERIFY(made->all_reduce != nullptr);
    QCOMPARE(made->all_reduce->size(), 2);
    QVERIFY2(contains(made->name(), "(+1 more), all-reduce host (2 replicas)"),
             made->name().c_str());

    cpu.cpu_replicas = 1;
    made = create_island(cpu);
    QVERIFY(made.is_ok());
    QCOMPARE(made->backends.size(), size_t{1});
    QVERIFY(made->all_reduce == nullptr);

    cpu.cpu_replicas = 0;
    made = create_island(cpu);
    QVERIFY(!made.is_ok() && contains(made.status().message(), "1 to 64 replicas, got 0"));
  }

  // A GPU island this host cannot make: refused with the reason, or one CPU backend with the
  // reason in the note when falling back is allowed. (With GPUs the tests/cuda island test
  // covers the real thing.)
  void gpuIslandThatCannotBeMadeIsRefusedOrFallsBack() {
    const int gpus = static_cast<int>(probe_cuda().devices.size());
    BackendChoice c;
    c.kind = BackendChoice::Kind::kCuda;
    c.island_devices = {0, gpus + 1};  // one past the last GPU, on any host
    auto made = create_island(c);
    QVERIFY(!made.is_ok());
    QVERIFY2(contains(made.status().message(), "set the backend to cpu"),
             made.status().message().c_str());
    if (gpus > 0) {
      QVERIFY2(contains(made.status().message(),
                        "CUDA device " + std::to_string(gpus + 1) + " does not exist"),
               made.status().message().c_str());
    }
    c.fallback_to_cpu = true;
    c.cpu_threads = 1;
    made = create_island(c);
    QVERIFY2(made.is_ok(), made.status().message().c_str());
    QCOMPARE(made->backends.size(), size_t{1});
    QVERIFY(made->backends[0]->name().rfind("cpu", 0) == 0);
    QVERIFY2(contains(made->note, "falling back to the CPU"), made->note.c_str());
    // A CPU island when the fallback is asked to be one (DIPACO_CPU_ISLAND_REPLICAS).
    c.cpu_replicas = 2;
    c.cpu_threads = 2;
    made = create_island(c);
    QVERIFY2(made.is_ok(), made.status().message().c_str());
    QCOMPARE(made->backends.size(), size_t{2});
    QVERIFY(made->all_reduce != nullptr);
    QVERIFY2(contains(made->note, "falling back to the CPU"), made->note.c_str());
  }
};

QTEST_GUILESS_MAIN(TrainIslandTest)
#include "test_train_island.moc"
