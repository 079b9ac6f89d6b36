// Durability with synchronous=FULL (the default of dipaco serve): group commit of the WAL, what a
// kill -9 keeps, and lease state after a restart. A power loss cannot be simulated here; what is
// checked is that every call that changed durable state waited for an fdatasync covering its
// commit, that lossy writes (heartbeats) did not, and that a killed process loses nothing it
// acknowledged.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QtTest>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"

using coordinator_test::db_count;
using coordinator_test::Env;
using coordinator_test::gradient_bytes;
using coordinator_test::grid_2x2;
using coordinator_test::push_task;
using coordinator_test::work_run_from_threads;
using dipaco::TaskGrant;

namespace {

// The fixture's options with synchronous=FULL (group commit) instead of OFF.
dipaco::CoordinatorOptions durable_options(
    Env& env, dipaco::RestartPolicy restart = dipaco::RestartPolicy::kKeepLeases) {
  dipaco::CoordinatorOptions options = env.options(restart);
  options.sqlite.synchronous = dipaco::Synchronous::kFull;
  return options;
}

std::unique_ptr<dipaco::Coordinator> open_durable(
    Env& env, dipaco::RestartPolicy restart = dipaco::RestartPolicy::kKeepLeases) {
  auto opened = dipaco::Coordinator::open(durable_options(env, restart));
  if (!opened.is_ok()) qFatal("%s", opened.status().to_string().c_str());
  return std::move(opened).value();
}

TaskGrant lease_or_die(dipaco::Coordinator& coordinator, const std::string& worker) {
  auto reply = coordinator.lease_task(worker);
  if (!reply.is_ok()) qFatal("%s", reply.status().to_string().c_str());
  if (!reply->task) qFatal("%s got no task: %s", worker.c_str(), reply->reason.c_str());
  return *reply->task;
}

// Runs `body` in a forked child that then kills itself with SIGKILL; the child writes one byte to
// the pipe once `body` returned (every call in it was acknowledged). Returns whether the parent
// got that byte and the child died of SIGKILL.
bool run_then_kill9(const std::function<bool()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    close(fds[0]);
    if (body()) {
      char acked = 1;
      if (write(fds[1], &acked, 1) != 1) _exit(4);
    }
    raise(SIGKILL);
    _exit(5);
  }
  close(fds[1]);
  char acked = 0;
  ssize_t got = read(fds[0], &acked, 1);
  close(fds[0]);
  int wstatus = 0;
  if (waitpid(child, &wstatus, 0) != child) return false;
  return got == 1 && acked == 1 && WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
}

}  // namespace

class CoordinatorDurabilityTest : public QObject {
  Q_OBJECT

 private slots:
  void changesWaitForTheDiskAndHeartbeatsDoNot() {
    Env env;
    auto coordinator = open_durable(env);
    const uint64_t at_open = coordinator->durability_stats().durable_calls;  // open's own sync
    auto durable_calls = [&] { return coordinator->durability_stats().durable_calls - at_open; };
    auto run = coordinator->create_run(grid_2x2());
    QVERIFY(run.is_ok());
    QVERIFY(coordinator->register_worker({"w0", "host", "cpu", "0"}).is_ok());
    QCOMPARE(durable_calls(), uint64_t{2});  // create_run, register_worker
    QVERIFY(coordinator->durability_stats().syncs >= 1);

    TaskGrant grant = lease_or_die(*coordinator, "w0");
    QCOMPARE(durable_calls(), uint64_t{3});  // a grant is durable
    for (int i = 0; i < 5; ++i) {
      auto beat = coordinator->heartbeat("w0", grant.lease_id, static_cast<uint64_t>(i));
      QVERIFY(beat.is_ok() && beat->lease_valid);
    }
    QVERIFY(coordinator->run_status(*run).is_ok());  // read-only
    QCOMPARE(durable_calls(), uint64_t{3});          // heartbeats and reads did not wait

    auto pushed = push_task(*coordinator, grant);
    QVERIFY(pushed.is_ok() && pushed->task_complete);
    // 40 bytes per module in chunks of 16: 3 chunks x 2 modules, each durable once recorded.
    QCOMPARE(durable_calls(), uint64_t{3 + 6});
    QVERIFY(coordinator->durability_stats().syncs <= coordinator->durability_stats().durable_calls);
  }

  void concurrentCallsShareSyncsAndAllArrive() {
    Env env;
    auto coordinator = open_durable(env);
    dipaco::RunSpec spec = grid_2x2(3);
    spec.lease_timeout_ms = 60'000;
    auto run = coordinator->create_run(spec);
    QVERIFY(run.is_ok());
    std::vector<std::string> errors = work_run_from_threads(*coordinator, *run, 6);
    for (const auto& error : errors) qWarning("%s", error.c_str());
    QVERIFY(errors.empty());
    auto stats = coordinator->durability_stats();
    QVERIFY(stats.syncs >= 1);
    QVERIFY(stats.syncs <= stats.durable_calls);
    coordinator.reset();
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM tasks WHERE state = 'done'"),
             int64_t{12});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM reports"), int64_t{24});
    QCOMPARE(db_count(env.db_path(), "SELECT min(version) FROM modules"), int64_t{3});
  }

  void aPushAcknowledgedBeforeKill9IsThereAfterRestart() {
    Env env;
    env.store = nullptr;  // real chunk files in env.dir
    TaskGrant grant;
    {
      auto coordinator = open_durable(env);
      QVERIFY(coordinator->create_run(grid_2x2()).is_ok());
      QVERIFY(coordinator->register_worker({"w0", "host", "cpu", "0"}).is_ok());
      grant = lease_or_die(*coordinator, "w0");
    }
    QVERIFY(run_then_kill9([&] {
      auto coordinator = dipaco::Coordinator::open(durable_options(env));
      if (!coordinator.is_ok()) return false;
      auto pushed = push_task(**coordinator, grant);
      return pushed.is_ok() && pushed->task_complete;
    }));
    auto coordinator = open_durable(env);
    auto lease = coordinator->lease_summary(grant.lease_id);
    QVERIFY(lease.is_ok() && *lease);
    QCOMPARE((*lease)->state, std::string("completed"));
    for (const dipaco::ModuleRef& module : grant.modules) {
      auto chunks = coordinator->stored_chunks(grant.lease_id, module.module_id);
      QVERIFY(chunks.is_ok());
      QCOMPARE(chunks->size(), size_t{3});
      auto bytes = coordinator->read_chunks(*chunks);
      QVERIFY(bytes.is_ok());
      QCOMPARE(*bytes, gradient_bytes(grant.lease_id, module.module_id));
    }
    // A retry of the whole push after the restart is acknowledged and not counted again.
    auto again = push_task(*coordinator, grant);
    QVERIFY(again.is_ok() && again->accepted && again->duplicate);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM reports"), int64_t{2});
  }

  void leasesAfterKill9AreKeptUntilTheirDeadlineThenRequeued() {
    Env env;
    TaskGrant beating, silent;
    QVERIFY(run_then_kill9([&] {
      auto coordinator = dipaco::Coordinator::open(durable_options(env));
      if (!coordinator.is_ok() || !(*coordinator)->create_run(grid_2x2()).is_ok()) return false;
      for (const char* worker : {"w0", "w1", "w2"})
        if (!(*coordinator)->register_worker({worker, "host", "cpu", "0"}).is_ok()) return false;
      auto first = (*coordinator)->lease_task("w0");
      auto second = (*coordinator)->lease_task("w1");
      if (!first.is_ok() || !first->task || !second.is_ok() || !second->task) return false;
      env.clock.advance(800);
      auto beat = (*coordinator)->heartbeat("w0", first->task->lease_id, 7);
      return beat.is_ok() && beat->lease_valid;
    }));
    auto coordinator = open_durable(env);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM leases WHERE state = 'live'"),
             int64_t{2});
    int64_t first_id = db_count(env.db_path(), "SELECT min(id) FROM leases");
    int64_t second_id = db_count(env.db_path(), "SELECT max(id) FROM leases");
    // In the child, w0's heartbeat at +800 ms (a lossy write, but kill -9 keeps it) moved its
    // deadline to +1800 ms; w1's stayed at +1000 ms. This clock did not move with the child's.
    env.clock.advance(1100);  // w1's lease is past its deadline, w0's is not
    auto kept = coordinator->heartbeat("w0", first_id, 8);
    QVERIFY(kept.is_ok() && kept->lease_valid);
    auto lost = coordinator->heartbeat("w1", second_id, 1);
    QVERIFY(lost.is_ok() && !lost->lease_valid);
    QVERIFY2(lost->reason.find("no heartbeat") != std::string::npos, lost->reason.c_str());
    // Its task is queued again and goes to the next worker under a lease id never used before.
    auto requeued = coordinator->lease_task("w2");
    QVERIFY(requeued.is_ok() && requeued->task);
    QVERIFY(requeued->task->lease_id > second_id);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM leases WHERE state = 'expired'"),
             int64_t{1});
    coordinator.reset();

    // Restarting with kExpireLeases ends the two live ones and requeues their tasks.
    coordinator = open_durable(env, dipaco::RestartPolicy::kExpireLeases);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM leases WHERE state = 'live'"),
             int64_t{0});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM tasks WHERE state = 'queued'"),
             int64_t{4});
  }
};

QTEST_GUILESS_MAIN(CoordinatorDurabilityTest)
#include "test_coordinator_durability.moc"
