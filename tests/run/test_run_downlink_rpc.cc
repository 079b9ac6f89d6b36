// Module downloads over gRPC with a quantized downlink: a grid served in-process (the grid run
// hooks and aggregator of `dipaco serve`) to a WorkerClient with the real path trainer. After
// the first outer step the worker fetches each module as an int8 delta and rebuilds the
// coordinator's version file byte for byte; a delta garbled on the coordinator's disk is refused
// (the rebuilt values do not hash to the published ones) and the whole version is fetched
// instead, as it is when the coordinator has no delta; the worker's byte count is exactly the
// files it was sent. A path-specific module goes up as fp32 trained parameters and comes down
// whole, never as a delta.
#include <QTemporaryDir>
#include <QtTest>
#include <atomic>
#include <filesystem>
#include <fstream>

#include "compress/wire_dtype.h"
#include "coordinator/coordinator.h"
#include "model/param_layout.h"
#include "path_task_runner.h"
#include "rpc/server.h"
#include "run/grid_run_hooks.h"
#include "run/run_layout.h"
#include "run/run_plan.h"
#include "run_test_data.h"
#include "util/sha256.h"
#include "worker_client.h"

using namespace dipaco;

namespace {

constexpr const char* kWorkerToken = "worker-token-0123456789";
constexpr const char* kOperatorToken = "operator-token-9876543210";

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A grid over the tiny corpus in `dir`, planned and served in-process (the grid run hooks and
// aggregator of `dipaco serve`); the test aggregates with poll_once().
struct ServedGrid {
  RunDirLock run_dir_lock;
  PlannedRun planned;
  std::unique_ptr<Coordinator> coordinator;
  int64_t run_id = 0;
  std::unique_ptr<RpcServer> server;  // destroyed before the coordinator
};

template <typename T>
T or_die(Result<T> r, const char* what) {
  if (!r.is_ok()) qFatal("%s: %s", what, r.status().message().c_str());
  return std::move(r).value();
}

std::unique_ptr<ServedGrid> serve_grid(const QTemporaryDir& dir, const std::string& levels,
                                       const std::string& extra) {
  GridSpec grid = or_die(
      parse_grid_spec(dipaco::test::tiny_grid(dir.path(), levels, extra), "grid.toml"), "grid");
  auto served = std::make_unique<ServedGrid>();
  served->run_dir_lock = or_die(lock_run_dir(grid.dir, "test"), "lock");
  FILE* quiet = std::fopen("/dev/null", "w");
  served->planned = or_die(plan_grid_run(grid, 1, quiet, served->run_dir_lock), "plan");
  std::fclose(quiet);
  CoordinatorOptions copts;
  copts.db_path = dir.filePath("coordinator.db").toStdString();
  copts.payload_dir = dir.filePath("payload").toStdString();
  served->coordinator = or_die(Coordinator::open(copts), "coordinator");
  served->run_id = or_die(served->coordinator->create_run(served->planned.spec), "create_run");
  ServerOptions options;
  options.insecure = true;
  options.service.tokens = {kWorkerToken, kOperatorToken};
  options.service.hooks = grid_run_hooks(1, stderr, std::make_shared<RunDirLocks>("test"));
  options.aggregator = grid_aggregator();
  options.poll_ms = 3600000;  // the test aggregates with poll_once()
  served->server = or_die(RpcServer::start(*served->coordinator, std::move(options)), "server");
  return served;
}

WorkerClientOptions worker_options(const ServedGrid& served, const std::string& cache_dir,
                                   uint64_t max_tasks) {
  WorkerClientOptions wopts;
  wopts.channel.address = served.server->target();
  wopts.channel.insecure = true;
  wopts.token = kWorkerToken;
  wopts.worker_id = "w1";
  wopts.host = "test";
  wopts.cache_dir = cache_dir;
  wopts.backoff_initial_ms = 10;
  wopts.backoff_max_ms = 100;
  wopts.max_tasks = max_tasks;
  return wopts;
}

std::string cached_version(const std::string& cache_dir, int64_t run_id, uint32_t module_id) {
  return (std::filesystem::path(cache_dir) / "modules" /
          ("run-" + std::to_string(run_id) + ".module-" + std::to_string(module_id) + ".v-1"))
      .string();
}

}  // namespace

class RunDownlinkRpcTest : public QObject {
  Q_OBJECT

 private slots:
  void workersRebuildVersionsFromDeltasAndRefuseGarbledOnes() {
    QTemporaryDir dir;
    dipaco::test::write_tiny_corpus(dir.path());
    auto served = serve_grid(dir, dipaco::test::kTwoByTwo, "[routing]\nbase_steps = 10\n");
    QCOMPARE(served->planned.grid.downlink, WireDtype::kInt8);
    RpcServer* server = served->server.get();
    const int64_t run_id = served->run_id;

    WorkerConfig config;
    config.cpu_threads = 1;
    config.cache_dir = dir.filePath("cache").toStdString();
    PathTaskRunner runner(config);
    const WorkerClientOptions wopts =
        worker_options(*served, config.cache_dir, 4);  // one outer step: the four paths
    std::atomic<int> stop{0};
    {
      WorkerClient first(wopts, runner);
      QVERIFY(first.run(stop));
      QCOMPARE(first.stats().tasks_completed, uint64_t{4});
    }
    server->poll_once();  // version 1 of every module, and its delta
    const RunLayout layout = served->planned.layout;
    for (uint32_t m = 0; m < 4; ++m) QVERIFY(std::filesystem::exists(layout.module_delta(m, 1)));

    // Garble module 0's delta on the coordinator's disk (its chunks then carry the garbled
    // file's hash, so only the content check can catch it).
    const std::string garbled = layout.module_delta(0, 1);
    {
      std::fstream f(garbled, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(-1, std::ios::end);
      const char byte = static_cast<char>(f.get() ^ 0x03);
      f.seekp(-1, std::ios::end);
      f.put(byte);
    }
    // And module 1's delta is gone (a coordinator that collected it): NOT_FOUND, whole version.
    const uint64_t module1_delta = std::filesystem::file_size(layout.module_delta(1, 1));
    std::filesystem::remove(layout.module_delta(1, 1));
    WorkerClient second(wopts, runner);
    QVERIFY(second.run(stop));
    QCOMPARE(second.stats().tasks_completed, uint64_t{4});
    // What the worker holds is the coordinator's version 1, byte for byte, for every module.
    uint64_t expected_down = 0;
    for (uint32_t m = 0; m < 4; ++m) {
      const std::string cached = cached_version(config.cache_dir, run_id, m);
      QVERIFY2(std::filesystem::exists(cached), cached.c_str());
      QVERIFY(file_bytes(cached) == file_bytes(layout.module_version(m, 1)));
      if (m != 1) expected_down += std::filesystem::file_size(layout.module_delta(m, 1));
    }
    // Deltas for modules 0, 2 and 3 (the garbled one too, before it was refused), the whole
    // versions of modules 0 and 1; the shards were cached in the first step.
    expected_down += std::filesystem::file_size(layout.module_version(0, 1)) +
                     std::filesystem::file_size(layout.module_version(1, 1));
    QVERIFY(module1_delta > 0);
    QCOMPARE(second.stats().bytes_down, expected_down);
    uint64_t whole_versions = 0;  // what an fp32 downlink would have sent
    for (uint32_t m = 0; m < 4; ++m)
      whole_versions += std::filesystem::file_size(layout.module_version(m, 1));
    QVERIFY(expected_down < whole_versions);
    server->shutdown();
  }

  // A path-specific module over gRPC (int4 up, int8 down configured): the task asks for its
  // trained parameters in fp32, the worker pushes exactly those bytes, the coordinator publishes
  // no delta for it, and the next task fetches its version whole.
  void pathSpecificModulesTravelAsFp32() {
    QTemporaryDir dir;
    dipaco::test::write_tiny_corpus(dir.path());
    auto served = serve_grid(dir,
                             "[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n\n[[grid.level]]\n"
                             "blocks = [1, 1]\npath_specific = true\n",
                             "[routing]\nbase_steps = 10\n\n[compression]\ndtype = \"int4\"\n");
    const GridSpec& grid = served->planned.grid;  // vocabulary resolved
    QCOMPARE(grid.num_paths(), 2);
    QCOMPARE(grid.num_modules(), 4);  // level 0: 0, 1; level 1 (path-specific): 2, 3

    WorkerConfig config;
    config.cpu_threads = 1;
    config.cache_dir = dir.filePath("cache").toStdString();
    PathTaskRunner runner(config);
    const WorkerClientOptions wopts =
        worker_options(*served, config.cache_dir, 2);  // one outer step: the two paths
    std::atomic<int> stop{0};
    const ParamLayout params(grid.model);
    uint64_t expected_up = 0, int4_up = 0;  // int4_up: every module as an int4 outer gradient
    for (int p = 0; p < 2; ++p) {
      for (int id : grid.path_modules(p)) {
        const uint64_t n = grid.module_range(params, id).count;
        expected_up += id >= 2 ? 4 * n : encoded_size(WireDtype::kInt4, n);
        int4_up += encoded_size(WireDtype::kInt4, n);
      }
    }
    {
      WorkerClient first(wopts, runner);
      QVERIFY(first.run(stop));
      QCOMPARE(first.stats().tasks_completed, uint64_t{2});
      QCOMPARE(first.stats().bytes_up, expected_up);
      qInfo("outer step 1: %llu bytes up (%llu if every module went as int4)",
            static_cast<unsigned long long>(expected_up), static_cast<unsigned long long>(int4_up));
    }
    served->server->poll_once();
    const RunLayout layout = served->planned.layout;
    for (uint32_t m = 0; m < 4; ++m) {
      QVERIFY(std::filesystem::exists(layout.module_version(m, 1)));
      QCOMPARE(std::filesystem::exists(layout.module_delta(m, 1)), m < 2);
      QVERIFY(file_bytes(layout.module_version(m, 1)) != file_bytes(layout.module_version(m, 0)));
    }
    WorkerClient second(wopts, runner);
    QVERIFY(second.run(stop));
    QCOMPARE(second.stats().tasks_completed, uint64_t{2});
    uint64_t expected_down = 0;
    for (uint32_t m = 0; m < 4; ++m) {
      const std::string cached = cached_version(config.cache_dir, served->run_id, m);
      QVERIFY2(std::filesystem::exists(cached), cached.c_str());
      QVERIFY(file_bytes(cached) == file_bytes(layout.module_version(m, 1)));
      expected_down += std::filesystem::file_size(m < 2 ? layout.module_delta(m, 1)
                                                        : layout.module_version(m, 1));
    }
    QCOMPARE(second.stats().bytes_down, expected_down);
    served->server->shutdown();
  }
};

QTEST_GUILESS_MAIN(RunDownlinkRpcTest)
#include "test_run_downlink_rpc.moc"
