// A run's own compute (base model, routing features, document scores, validation) on the
// backend it is given: the GPU choice follows worker 0 and the workers' precision, a run on the
// CPU asks for no GPU, a GPU that cannot be made leaves the CPU with the reason, routing and
// evaluation on an explicit CPU backend are bit-identical to the thread-count calls the CPU runs
// make, and a backend without the memory is refused with figures (so it really is the one used).
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/model.h"
#include "run/local_run.h"
#include "run/run_compute_backend.h"
#include "run/run_plan.h"
#include "run/run_results.h"
#include "run/shard_routing.h"
#include "run_test_data.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace dipaco;
using dipaco::test::contains;
using dipaco::test::kTwoByTwo;
using dipaco::test::tiny_grid;

namespace {

// A CPU backend that says it has `bytes` of memory free.
class SmallCpuBackend : public CpuBackend {
 public:
  explicit SmallCpuBackend(size_t bytes) : CpuBackend(1), bytes_(bytes) {}
  size_t available_memory_bytes() const override { return bytes_; }

 private:
  size_t bytes_;
};

GridSpec resolved_grid(const QString& corpus, const std::string& run_dir,
                       const std::string& routing) {
  auto g = parse_grid_spec(tiny_grid(corpus, kTwoByTwo, routing), "tiny.toml");
  if (!g) qFatal("%s", g.status().message().c_str());
  g->dir = run_dir;
  auto resolved = resolve_grid_vocabulary(*g);
  if (!resolved) qFatal("%s", resolved.status().message().c_str());
  return std::move(resolved).value();
}

// Every file under `dir` and its bytes.
std::map<std::string, std::string> files_under(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    files[entry.path().lexically_relative(dir).string()] = read_file(entry.path().string()).value();
  }
  return files;
}

}  // namespace

class RunComputeBackendTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;

 private slots:
  void initTestCase() { dipaco::test::write_tiny_corpus(dir_.path()); }

  void theGpuChoiceFollowsWorkerZero() {
    BackendChoice cpu;
    cpu.kind = BackendChoice::Kind::kCpu;
    QVERIFY(!run_compute_gpu_choice(cpu, {0, 1}, 1));
    BackendChoice automatic;  // auto on a host without a usable GPU trains on the CPU
    QVERIFY(!run_compute_gpu_choice(automatic, {}, 1));
    BackendChoice fallback;
    QVERIFY(parse_backend_name("cuda", &fallback));
    fallback.fallback_to_cpu = true;
    QVERIFY(!run_compute_gpu_choice(fallback, {}, 1));

    // auto on a host whose usable GPUs are 2 and 3: GPU 2, pinned, in the workers' precision.
    automatic.precision = CudaMatmulPrecision::kTf32;
    automatic.cpu_replicas = 2;
    auto gpu = run_compute_gpu_choice(automatic, {2, 3}, 1);
    QVERIFY(gpu);
    QVERIFY(gpu->kind == BackendChoice::Kind::kCuda);
    QCOMPARE(gpu->device, 2);
    QVERIFY(gpu->device_pinned);
    QVERIFY(!gpu->fallback_to_cpu);
    QVERIFY(gpu->island_devices.empty());
    QCOMPARE(gpu->cpu_replicas, 1);
    QVERIFY(gpu->precision == CudaMatmulPrecision::kTf32);
    // Workers as islands of 2 GPUs: worker 0's first GPU, one GPU for the run's own compute.
    BackendChoice islands;
    QVERIFY(parse_backend_name("cuda", &islands));
    gpu = run_compute_gpu_choice(islands, {4, 5, 6, 7}, 2);
    QVERIFY(gpu);
    QCOMPARE(gpu->device, 4);
    QVERIFY(gpu->island_devices.empty());
    // cuda:N: that GPU.
    BackendChoice pinned;
    QVERIFY(parse_backend_name("cuda:1", &pinned));
    gpu = run_compute_gpu_choice(pinned, {0, 1}, 1);
    QVERIFY(gpu);
    QCOMPARE(gpu->device, 1);

    // Workers spread over the usable GPUs, or islands of them: how many share a GPU.
    QCOMPARE(local_workers_on_gpu(automatic, 2, {0}, 1, 0), 2);
    QCOMPARE(local_workers_on_gpu(automatic, 2, {0, 1}, 1, 0), 1);
    QCOMPARE(local_workers_on_gpu(automatic, 3, {0, 1}, 1, 0), 2);
    QCOMPARE(local_workers_on_gpu(islands, 2, {0, 1, 2, 3}, 2, 1), 1);
    QCOMPARE(local_workers_on_gpu(pinned, 3, {0, 1}, 1, 1), 3);
  }

  void aRunOnTheCpuAsksForNoGpuAndAGpuThatCannotBeMadeLeavesTheCpu() {
    const GridSpec g = resolved_grid(dir_.path(), (dir_.path() + "/unused").toStdString(), "");
    BackendChoice cpu;
    cpu.kind = BackendChoice::Kind::kCpu;
    RunComputeBackend compute = create_run_compute_backend(g, cpu, {}, 1);
    QVERIFY(!compute.gpu);
    QVERIFY(compute.line.empty());
    if (!probe_cuda().devices.empty()) QSKIP("this host has a GPU");
    // A GPU said to be usable that this host cannot open: the CPU, with the reason, no error.
    BackendChoice cuda;
    QVERIFY(parse_backend_name("cuda", &cuda));
    compute = create_run_compute_backend(g, cuda, {0}, 1);
    qInfo("%s", compute.line.c_str());
    QVERIFY(!compute.gpu);
    QVERIFY2(
        contains(compute.line, "base model and evaluation: CPU (cuda:0: falling back to the CPU: "),
        compute.line.c_str());
  }

  void aBackendWithoutTheMemoryIsRefusedWithFigures() {
    const GridSpec g = resolved_grid(dir_.path(), (dir_.path() + "/small").toStdString(),
                                     "[routing]\nbase_steps = 2\n");
    SmallCpuBackend small(1024);
    Status fits = check_run_compute_fits(g, 1, 1, &small);
    QVERIFY(!fits.is_ok());
    QVERIFY2(contains(fits.message(), "the model needs") && contains(fits.message(), "free"),
             fits.message().c_str());
    CpuBackend roomy(1);
    QVERIFY2(check_run_compute_fits(g, 1, 1, &roomy).is_ok(), "the tiny model fits on the CPU");
    // The evaluator's model has to fit next to the trainers of the workers on the same device:
    // room for one worker's, not two.
    size_t worker_bytes = 0, features_bytes = 0, evaluator_bytes = 0;
    {
      auto trainer = Trainer::create(&roomy, g.model, g.inner);
      QVERIFY(trainer);
      worker_bytes = (*trainer)->model().budget_bytes();
      auto features = Model::create(&roomy, g.model, 16, g.routing.prefix_tokens);
      auto evaluator = Model::create(&roomy, g.model, 8, g.inner.seq_len);
      QVERIFY(features && evaluator);
      features_bytes = (*features)->budget_bytes();
      evaluator_bytes = (*evaluator)->budget_bytes();
    }
    SmallCpuBackend one_worker(
        std::max({worker_bytes, features_bytes, evaluator_bytes + worker_bytes}));
    QVERIFY(check_run_compute_fits(g, 1, 1, &one_worker).is_ok());
    fits = check_run_compute_fits(g, 2, 1, &one_worker);
    QVERIFY(!fits.is_ok());
    QVERIFY2(contains(fits.message(), "the model needs"), fits.message().c_str());
    // Routing trains its base model on the backend it is given.
    std::filesystem::create_directories(g.dir);
    auto refused = prepare_shards(g, RunLayout{g.dir}, &small, stderr);
    QVERIFY(!refused.is_ok());
    QVERIFY2(contains(refused.status().message(), "free"), refused.status().message().c_str());
  }

  void routingAndEvaluationOnAGivenCpuBackendAreBitIdentical() {
    const std::string by_threads = (dir_.path() + "/by_threads").toStdString();
    const std::string given = (dir_.path() + "/given").toStdString();
    const GridSpec a = resolved_grid(dir_.path(), by_threads, "[routing]\nbase_steps = 10\n");
    const GridSpec b = resolved_grid(dir_.path(), given, "[routing]\nbase_steps = 10\n");
    std::filesystem::create_directories(by_threads);
    std::filesystem::create_directories(given);
    FILE* sink = std::fopen("/dev/null", "w");
    auto plan_a = prepare_shards(a, RunLayout{by_threads}, 1, sink);
    CpuBackend backend(1);
    auto plan_b = prepare_shards(b, RunLayout{given}, &backend, sink);
    QVERIFY2(plan_a, plan_a.status().message().c_str());
    QVERIFY2(plan_b, plan_b.status().message().c_str());
    QVERIFY(plan_a->have_base);
    QVERIFY(plan_a->shard_tokens == plan_b->shard_tokens);
    QVERIFY(plan_a->val_tokens == plan_b->val_tokens);
    const auto files_a = files_under(RunLayout{by_threads}.shards_dir());
    QVERIFY(!files_a.empty());
    QVERIFY(files_a == files_under(RunLayout{given}.shards_dir()));
    QCOMPARE(read_file(RunLayout{by_threads}.base_model()).value(),
             read_file(RunLayout{given}.base_model()).value());

    // A finished run's paths, evaluated by an evaluator on its own threads and on a given
    // backend: the same losses, to the bit.
    LocalRunOptions o;
    o.backend.kind = BackendChoice::Kind::kCpu;
    o.out = sink;
    auto run = run_local(a, o);
    std::fclose(sink);
    QVERIFY2(run, run.status().message().c_str());
    const RunLayout layout{by_threads};
    PathEvaluator own(a, layout), on_given(a, layout);
    QVERIFY(own.init(1).is_ok());
    QVERIFY(on_given.init(&backend).is_ok());
    std::vector<double> own_losses, given_losses;
    auto own_sum = own.evaluate(a.outer_steps, &own_losses);
    auto given_sum = on_given.evaluate(a.outer_steps, &given_losses);
    QVERIFY2(own_sum && given_sum, "both evaluate");
    QVERIFY(own_sum->tokens > 0);
    QCOMPARE(own_sum->tokens, given_sum->tokens);
    QCOMPARE(own_sum->loss_sum, given_sum->loss_sum);
    QCOMPARE(own_losses.size(), given_losses.size());
    for (size_t p = 0; p < own_losses.size(); ++p) {
      QCOMPARE(std::isnan(own_losses[p]), std::isnan(given_losses[p]));
      if (!std::isnan(own_losses[p])) QCOMPARE(own_losses[p], given_losses[p]);
    }
    // The evaluator models on the backend it is given.
    SmallCpuBackend small(1024);
    PathEvaluator cramped(a, layout);
    const Status refused = cramped.init(&small);
    QVERIFY(!refused.is_ok());
    QVERIFY2(contains(refused.message(), "free"), refused.message().c_str());
  }
};

QTEST_GUILESS_MAIN(RunComputeBackendTest)
#include "test_run_compute_backend.moc"
