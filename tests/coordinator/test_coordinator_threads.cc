// Four threads drive one coordinator at once, as the gRPC layer's handlers will. Correctness
// comes from the coordinator's single mutex; under -DDIPACO_SANITIZE=thread this test is the
// one that would show a data race (run it with TSAN_OPTIONS=suppressions=<this dir>/tsan.supp,
// which silences only Qt Test's own watchdog thread).
#include <QtTest>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"

using coordinator_test::db_count;
using coordinator_test::Env;
using coordinator_test::grid_2x2;
using coordinator_test::work_run_from_threads;

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
    std::vector<std::string> errors = work_run_from_threads(*env.coordinator, *run, 4);
    for (const auto& error : errors) qWarning("%s", error.c_str());
    QVERIFY(errors.empty());
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
