// The island wired into a worker: a path task trained on a CPU island of 2 gives the outer
// gradients one device gives (and carries its state across tasks), and the worker's config
// and DIPACO_CPU_ISLAND_REPLICAS become the island create_island makes.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstdlib>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "compress/codec.h"
#include "island_test_support.h"
#include "run/path_task.h"
#include "run/run_test_data.h"
#include "tensor/island_host_all_reduce.h"
#include "test_support.h"
#include "worker_config.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

ModelConfig path_model() {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.d_ff = 32;
  c.max_seq_len = 16;
  return c;
}

TrainOptions path_inner() {
  TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.grad_accum = 2;
  o.steps = 8;
  o.warmup_steps = 2;
  o.lr = 3e-3;
  return o;
}

// The whole buffer as one module, starting at the model's init for seed 7.
PathTaskSpec whole_model_spec(const ModelConfig& c, uint32_t inner_steps, uint64_t outer_step) {
  CpuBackend backend(1);
  auto m = Model::create(&backend, c, 1, 1);
  (*m)->init_params(7);
  PathTaskSpec spec;
  spec.inner_steps = inner_steps;
  spec.outer_step = outer_step;
  TaskModule module;
  module.range = {0, (*m)->num_params()};
  module.params = (*m)->get_params();
  spec.modules.push_back(std::move(module));
  return spec;
}

std::vector<float> outer_gradient(const PathTaskResult& r, size_t count) {
  auto delta = decode(r.gradients.at(0).payload, WireDtype::kFp32, count);
  if (!delta.is_ok()) qFatal("%s", delta.status().message().c_str());
  return std::move(delta).value();
}

}  // namespace

class TrainIslandPathTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  std::string shard_;

 private slots:
  void initTestCase() {
    dipaco::test::write_tiny_corpus(dir_.path());
    shard_ = dir_.filePath("train.tok").toStdString();
  }

  // Two tasks of 3 inner steps each: the second starts from the state the first left (AdamW
  // moments, data position), on the island as on one device.
  void islandPathTaskGivesOneDevicesOuterGradients() {
    const ModelConfig c = path_model();
    CpuBackend single_backend(1);
    auto single = PathTrainer::create(&single_backend, c, path_inner());
    QVERIFY2(single.is_ok(), single.status().message().c_str());
    CpuBackend a(1), b(1);
    HostIslandAllReduce all_reduce({&a, &b});
    auto island = PathTrainer::create_island({&a, &b}, &all_reduce, c, path_inner());
    QVERIFY2(island.is_ok(), island.status().message().c_str());

    PathTaskState single_state, island_state;
    for (uint64_t outer = 0; outer < 2; ++outer) {
      PathTaskSpec spec = whole_model_spec(c, 3, outer);
      auto want = (*single)->run(spec, shard_, &single_state);
      auto got = (*island)->run(spec, shard_, &island_state);
      QVERIFY2(want.is_ok(), want.status().message().c_str());
      QVERIFY2(got.is_ok(), got.status().message().c_str());
      QCOMPARE(got->inner_steps_done, int64_t{3});
      QCOMPARE(got->tokens, want->tokens);
      QVERIFY(std::fabs(got->mean_loss - want->mean_loss) < 1e-5 * want->mean_loss);
      const size_t n = spec.modules[0].range.count;
      const double diff =
          test::relative_difference(outer_gradient(*got, n), outer_gradient(*want, n));
      std::printf("outer step %llu: island of 2 vs one device, outer gradient %.3g relative\n",
                  static_cast<unsigned long long>(outer), diff);
      QVERIFY2(diff < 1e-4, qPrintable(QString::number(diff)));
      QCOMPARE(island_state.adamw_step, single_state.adamw_step);
      QCOMPARE(island_state.data_position, single_state.data_position);
    }
  }

  void workerConfigMakesTheIsland() {
    WorkerConfig config;
    config.backend = "cuda";
    BackendChoice all = backend_choice(config);
    QVERIFY(all.island_all_devices);
    config.devices = {1, 3};
    BackendChoice listed = backend_choice(config);
    QVERIFY(!listed.island_all_devices);
    QCOMPARE(listed.island_devices, (std::vector<int>{1, 3}));
    QCOMPARE(listed.device, 1);  // what create_backend (one GPU) uses

    config.backend = "cpu";
    BackendChoice cpu = backend_choice(config);
    qputenv("DIPACO_CPU_ISLAND_REPLICAS", "2");
    auto replicas = cpu_island_replicas_from_environment();
    QVERIFY(replicas.is_ok());
    QCOMPARE(*replicas, 2);
    cpu.cpu_replicas = *replicas;
    cpu.cpu_threads = 2;
    auto made = create_island(cpu);
    QVERIFY2(made.is_ok(), made.status().message().c_str());
    QCOMPARE(made->backends.size(), size_t{2});
    QVERIFY(made->all_reduce != nullptr);

    for (const char* bad : {"0", "65", "two", "2x"}) {
      qputenv("DIPACO_CPU_ISLAND_REPLICAS", bad);
      auto refused = cpu_island_replicas_from_environment();
      QVERIFY(!refused.is_ok());
      QVERIFY2(contains(refused.status().message(),
                        "DIPACO_CPU_ISLAND_REPLICAS must be a whole number from 1 to 64"),
               refused.status().message().c_str());
    }
    qunsetenv("DIPACO_CPU_ISLAND_REPLICAS");
    auto unset = cpu_island_replicas_from_environment();
    QVERIFY(unset.is_ok() && *unset == 1);
  }
};

QTEST_GUILESS_MAIN(TrainIslandPathTest)
#include "test_train_island_path.moc"
