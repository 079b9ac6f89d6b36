// Four threads drive one coordinator at once, as the gRPC layer's handlers will. Correctness
// comes from the coordinator's single mutex; under -DDIPACO_SANITIZE=thread this test is the
// one that would show a data race (run it with TSAN_OPTIONS=suppressions=<this dir>/tsan.supp,
// which silences only Qt Test's own watchdog thread).
#include <QtTest>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"

using coordinator_test::aggregate_all;
using coordinator_test::db_count;
using coordinator_test::Env;
using coordinator_test::grid_2x2;
using coordinator_test::push_task;

class CoordinatorThreadsTest : public QObject {
  Q_OBJECT

 private slots:
  void fourThreadsWorkOneRunToTheEnd() {
    Env env;
    QVERIFY(env.open());
    dipaco::RunSpec spec = grid_2x2(4);
    spec.lease_timeout_ms = 60'000;
    auto run = env.coordinator->create_run(spec);
    QVERIFY(run.is_ok());
    dipaco::Coordinator& coordinator = *env.coordinator;

    std::mutex errors_mutex;
    std::vector<std::string> errors;
    auto fail = [&](const std::string& error) {
      std::lock_guard lock(errors_mutex);
      errors.push_back(error);
    };
    std::atomic<bool> finished{false};
    auto work = [&](int t) {
      std::string worker = "thread" + std::to_string(t);
      if (!coordinator.register_worker({worker, "h", "cpu", "0"}).is_ok()) return fail("register");
      for (int i = 0; i < 500 && !finished; ++i) {
        auto reply = coordinator.lease_task(worker);
        if (!reply.is_ok()) return fail(reply.status().to_string());
        if (reply->task) {
          auto beat = coordinator.heartbeat(worker, reply->task->lease_id, 1);
          if (!beat.is_ok() || !beat->lease_valid) return fail("lost a lease: " + beat->reason);
          auto pushed = push_task(coordinator, *reply->task);
          if (!pushed.is_ok() || !pushed->task_complete) return fail("push did not complete");
          auto again = push_task(coordinator, *reply->task);  // a full retry: all duplicates
          if (!again.is_ok() || !again->duplicate) return fail("retry was not a duplicate");
        }
        auto aggregated = aggregate_all(coordinator, *run);
        if (!aggregated.is_ok()) return fail(aggregated.status().to_string());
        if (t == 3) (void)coordinator.report_metrics({{*run, 0, 0, uint64_t(i), "loss", 1.0, 0}});
        auto status = coordinator.run_status(*run);
        if (!status.is_ok()) return fail(status.status().to_string());
        if (status->state == "finished") finished = true;
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back(work, t);
    for (auto& thread : threads) thread.join();

    for (const auto& error : errors) qWarning("%s", error.c_str());
    QVERIFY(errors.empty());
    QVERIFY(finished);
    auto status = env.coordinator->run_status(*run);
    QCOMPARE(status->tasks_done, int64_t{16});
    for (auto [module, version] : status->module_versions) QCOMPARE(version, uint64_t{4});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM leases WHERE state = 'completed'"),
             int64_t{16});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM reports"), int64_t{32});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM module_versions"), int64_t{20});
  }
};

QTEST_GUILESS_MAIN(CoordinatorThreadsTest)
#include "test_coordinator_threads.moc"
