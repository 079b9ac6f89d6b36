// The coordinator's state machine, one transition at a time, with a fake clock and no network.
#include <sys/wait.h>
#include <unistd.h>

#include <QtTest>
#include <functional>
#include <string>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"
#include "store/schema.h"
#include "test_support.h"

using coordinator_test::aggregate_all;
using coordinator_test::db_count;
using coordinator_test::Env;
using coordinator_test::grid_2x2;
using coordinator_test::push_task;
using dipaco::EventKind;
using dipaco::PushChunk;
using dipaco::RunSpec;
using dipaco::StatusCode;
using dipaco::TaskGrant;

namespace {

using dipaco::test::contains;

// Registers workers w0..w{n-1}.
void register_workers(dipaco::Coordinator& coordinator, int n) {
  for (int i = 0; i < n; ++i) {
    auto registered =
        coordinator.register_worker({"w" + std::to_string(i), "host", "cpu", "0.1.0"});
    if (!registered.is_ok()) qFatal("%s", registered.status().to_string().c_str());
  }
}

TaskGrant lease_or_die(dipaco::Coordinator& coordinator, const std::string& worker) {
  auto reply = coordinator.lease_task(worker);
  if (!reply.is_ok()) qFatal("%s", reply.status().to_string().c_str());
  if (!reply->task) qFatal("%s got no task: %s", worker.c_str(), reply->reason.c_str());
  return *reply->task;
}

// A 2x2 grid run with workers w0..w4 registered, whose step 0 w0..w3 have trained (one task
// each) and which is aggregated: step 1 is queued. `shard_of` gets each of w0..w3's shard.
int64_t run_with_step_zero_trained(dipaco::Coordinator& coordinator,
                                   std::map<std::string, uint32_t>* shard_of) {
  auto run = coordinator.create_run(grid_2x2());
  if (!run.is_ok()) qFatal("%s", run.status().to_string().c_str());
  register_workers(coordinator, 5);
  for (const char* w : {"w0", "w1", "w2", "w3"}) {
    TaskGrant grant = lease_or_die(coordinator, w);
    (*shard_of)[w] = grant.shard_id;
    auto pushed = push_task(coordinator, grant);
    if (!pushed.is_ok() || !pushed->task_complete) qFatal("%s: push did not complete", w);
  }
  auto aggregated = aggregate_all(coordinator, *run);
  if (!aggregated.is_ok() || *aggregated != 4) qFatal("step 0 did not aggregate");
  return *run;
}

// Row counts and versions of every table that a call can change.
std::string state_digest(const std::string& db_path) {
  std::string digest;
  for (const char* table : {"runs", "tasks", "leases", "workers", "push_chunks", "reports",
                            "aggregations", "module_versions", "events", "metrics"})
    digest += std::string(table) + "=" +
              std::to_string(db_count(db_path, std::string("SELECT count(*) FROM ") + table)) + " ";
  digest += "versions=" + std::to_string(db_count(db_path, "SELECT sum(version) FROM modules"));
  digest += " done=" +
            std::to_string(db_count(db_path, "SELECT count(*) FROM tasks WHERE state = 'done'"));
  digest += " ready=" + std::to_string(db_count(
                            db_path, "SELECT count(*) FROM aggregations WHERE state = 'ready'"));
  return digest;
}

}  // namespace

class CoordinatorTransitionsTest : public QObject {
  Q_OBJECT

 private slots:
  void badRunSpecsNameTheField_data() {
    QTest::addColumn<int>("which");
    QTest::addColumn<QString>("message");
    QTest::newRow("no name") << 0 << "name:";
    QTest::newRow("zero outer steps") << 1 << "outer_steps";
    QTest::newRow("zero H") << 2 << "inner_steps";
    QTest::newRow("unknown module") << 3 << "paths[1].module_ids[0]: module 9 does not exist";
    QTest::newRow("duplicate shard") << 4 << "paths[1].shards[0].shard_id: 10 appears twice";
    QTest::newRow("unused module") << 5 << "module 4 is used by no path";
    QTest::newRow("bad fraction") << 6 << "partial.min_fraction";
    QTest::newRow("no lease timeout") << 7 << "lease_timeout_ms";
    QTest::newRow("duplicate level slot") << 8 << "level 0 index 0 is taken";
  }
  void badRunSpecsNameTheField() {
    QFETCH(int, which);
    QFETCH(QString, message);
    const std::function<void(RunSpec&)> breakers[] = {
        [](RunSpec& s) { s.name.clear(); },
        [](RunSpec& s) { s.outer_steps = 0; },
        [](RunSpec& s) { s.inner_steps = 0; },
        [](RunSpec& s) { s.paths[1].module_ids[0] = 9; },
        [](RunSpec& s) { s.paths[1].shards[0].shard_id = 10; },
        [](RunSpec& s) {
          s.modules.push_back({4, 2, 0, "", ""});
        },
        [](RunSpec& s) { s.partial.min_fraction = 0; },
        [](RunSpec& s) { s.lease_timeout_ms = 0; },
        [](RunSpec& s) { s.modules[1].index = 0; },
    };
    RunSpec spec = grid_2x2();
    breakers[which](spec);
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(spec);
    QVERIFY(!run.is_ok());
    QCOMPARE(run.status().code(), StatusCode::kInvalidArgument);
    QVERIFY2(contains(run.status().message(), message.toStdString()),
             run.status().message().c_str());
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM runs"), int64_t{0});
  }

  void createRunOpensStepZeroAndIsIdempotentByRequestId() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2();
    spec.request_id = "req-1";
    auto run = env.coordinator->create_run(spec);
    QVERIFY(run.is_ok());
    auto again = env.coordinator->create_run(spec);
    QVERIFY(again.is_ok());
    QCOMPARE(*again, *run);
    auto status = env.coordinator->run_status(*run);
    QVERIFY(status.is_ok());
    QCOMPARE(status->state, std::string("running"));
    QCOMPARE(status->tasks_queued, int64_t{4});
    QCOMPARE(status->module_versions.size(), size_t{4});
    for (auto [module, version] : status->module_versions) QCOMPARE(version, uint64_t{0});
    QCOMPARE(env.count_seen(EventKind::kRunCreated), size_t{1});
  }

  void registrationAndTheWorkerTable() {
    Env env;
    QVERIFY(env.open());
    auto first = env.coordinator->register_worker({"w0", "gpu-host-1", "cuda:0 H100", "0.1.0"});
    QVERIFY(first.is_ok());
    QCOMPARE(first->heartbeat_interval_ms, int64_t{5000});  // no run yet
    QCOMPARE(env.coordinator->register_worker({"", "h", "d", "v"}).status().code(),
             StatusCode::kInvalidArgument);
    auto run = env.coordinator->create_run(grid_2x2());  // lease timeout 1000 ms
    auto second = env.coordinator->register_worker({"w1", "gpu-host-2", "cpu", "0.1.0"});
    QCOMPARE(second->heartbeat_interval_ms, int64_t{333});
    env.clock.advance(10);
    TaskGrant grant = lease_or_die(*env.coordinator, "w1");
    QVERIFY(env.coordinator->drain("w0")->changed);
    auto workers = env.coordinator->workers();
    QVERIFY(workers.is_ok());
    QCOMPARE(workers->size(), size_t{2});
    QCOMPARE((*workers)[0].worker_id, std::string("w0"));
    QCOMPARE((*workers)[0].host, std::string("gpu-host-1"));
    QCOMPARE((*workers)[0].state, std::string("draining"));
    QCOMPARE((*workers)[0].live_lease_id, int64_t{0});
    QCOMPARE((*workers)[1].live_lease_id, grant.lease_id);
    QCOMPARE((*workers)[1].last_heartbeat_ms, env.clock.now_ms.load());
  }

  void leaseGivesLowestTaskAndARetryGetsTheSameLease() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    QVERIFY(run.is_ok());
    QCOMPARE(env.coordinator->lease_task("ghost").status().code(), StatusCode::kNotFound);
    register_workers(*env.coordinator, 2);
    TaskGrant a = lease_or_die(*env.coordinator, "w0");
    QCOMPARE(a.path_id, 0u);
    QCOMPARE(a.shard_id, 10u);
    QCOMPARE(a.outer_step, uint64_t{0});
    QCOMPARE(a.inner_steps, 50u);
    QCOMPARE(a.modules.size(), size_t{2});
    QCOMPARE(a.modules[0].module_id, 0u);
    QCOMPARE(a.modules[1].module_id, 2u);
    QCOMPARE(a.modules[1].checkpoint, std::string("init/module2"));
    QCOMPARE(a.deadline_ms, env.clock.now_ms.load() + 1000);
    TaskGrant retry = lease_or_die(*env.coordinator, "w0");
    QCOMPARE(retry.lease_id, a.lease_id);
    TaskGrant b = lease_or_die(*env.coordinator, "w1");
    QCOMPARE(b.path_id, 1u);
    QVERIFY(b.lease_id != a.lease_id);
    QCOMPARE(env.count_seen(EventKind::kLeaseGranted), size_t{2});
  }

  void nothingToLeaseIsAWaitWithAReason() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2();
    spec.paths.resize(1);
    spec.modules = {spec.modules[0], spec.modules[2]};
    auto run = env.coordinator->create_run(spec);
    QVERIFY2(run.is_ok(), run.status().message().c_str());
    register_workers(*env.coordinator, 2);
    lease_or_die(*env.coordinator, "w0");
    env.clock.advance(300);
    auto reply = env.coordinator->lease_task("w1");
    QVERIFY(reply.is_ok());
    QVERIFY(!reply->task);
    QVERIFY2(contains(reply->reason, "waiting for leases in flight"), reply->reason.c_str());
    QCOMPARE(reply->wait_ms, int64_t{700});  // until w0's lease would expire
  }

  void heartbeatsExtendTheLeaseAndSilenceExpiresIt() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 2);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    for (int i = 0; i < 5; ++i) {
      env.clock.advance(900);
      auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 10 * i);
      QVERIFY(beat.is_ok());
      QVERIFY2(beat->lease_valid, beat->reason.c_str());
      QCOMPARE(beat->lease_deadline_ms, env.clock.now_ms.load() + 1000);
    }
    env.clock.advance(1000);  // exactly at the deadline: too late
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 60);
    QVERIFY(beat.is_ok());
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "lease " + std::to_string(grant.lease_id) + " expired at") &&
                 contains(beat->reason, "task requeued"),
             beat->reason.c_str());
    QCOMPARE(env.count_seen(EventKind::kLeaseExpired), size_t{1});
    // The same task goes to the next worker that asks.
    TaskGrant again = lease_or_die(*env.coordinator, "w1");
    QCOMPARE(again.path_id, grant.path_id);
    QVERIFY(again.lease_id > grant.lease_id);
    // Heartbeats naming someone else's or an unknown lease are told so.
    auto foreign = env.coordinator->heartbeat("w0", again.lease_id, 0);
    QVERIFY(foreign.is_ok() && !foreign->lease_valid);
    QVERIFY2(contains(foreign->reason, "belongs to worker w1"), foreign->reason.c_str());
    auto unknown = env.coordinator->heartbeat("w0", 999, 0);
    QVERIFY(unknown.is_ok() && !unknown->lease_valid);
    QVERIFY2(contains(unknown->reason, "unknown"), unknown->reason.c_str());
  }

  void maxLeaseIsAHardDeadlineHoweverItHeartbeats() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2();
    spec.max_lease_ms = 2500;
    auto run = env.coordinator->create_run(spec);
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    env.clock.advance(900);
    QVERIFY(env.coordinator->heartbeat("w0", grant.lease_id, 1)->lease_valid);
    env.clock.advance(900);
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 2);
    QVERIFY(beat->lease_valid);
    QCOMPARE(beat->lease_deadline_ms, grant.deadline_ms - 1000 + 2500);  // capped
    env.clock.advance(700);
    beat = env.coordinator->heartbeat("w0", grant.lease_id, 3);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "max_lease_ms"), beat->reason.c_str());
  }

  void preemptRequeuesOnceAndTheWorkerIsTold() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    auto preempted = env.coordinator->preempt(grant.lease_id);
    QVERIFY(preempted.is_ok());
    QVERIFY(preempted->changed);
    auto twice = env.coordinator->preempt(grant.lease_id);
    QVERIFY(twice.is_ok());
    QVERIFY(!twice->changed);
    QVERIFY2(contains(twice->message, "already preempted"), twice->message.c_str());
    QCOMPARE(env.coordinator->preempt(12345).status().code(), StatusCode::kNotFound);
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 0);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "preempted by an operator"), beat->reason.c_str());
    QCOMPARE(env.coordinator->run_status(*run)->tasks_queued, int64_t{4});
    QCOMPARE(env.count_seen(EventKind::kLeasePreempted), size_t{1});
  }

  void drainLetsTheCurrentLeaseFinishButGivesNoNewOne() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    QVERIFY(env.coordinator->drain("w0")->changed);
    QVERIFY(!env.coordinator->drain("w0")->changed);
    QCOMPARE(env.coordinator->drain("nobody").status().code(), StatusCode::kNotFound);
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 5);
    QVERIFY(beat->lease_valid && beat->drain);
    auto pushed = push_task(*env.coordinator, grant);
    QVERIFY(pushed.is_ok() && pushed->task_complete);
    auto next = env.coordinator->lease_task("w0");
    QVERIFY(next.is_ok());
    QVERIFY(!next->task && next->drain);
    QVERIFY2(contains(next->reason, "draining"), next->reason.c_str());
    auto again = env.coordinator->register_worker({"w0", "host", "cpu", "0.1.0"});
    QVERIFY(again.is_ok() && again->drain);  // a restart does not undo the drain ...
    QVERIFY(!env.coordinator->lease_task("w0")->task);
    QVERIFY(env.coordinator->undrain("w0")->changed);  // ... the operator does
    QVERIFY(env.coordinator->lease_task("w0")->task);
  }

  // With task affinity each worker gets back the (path, shard) it trained at the previous outer
  // step, whatever order the workers ask in; a newcomer waits while the owners are present, and
  // takes a task once its owner is gone (silent for two of the workers' longest polls, 10 s
  // here) or the task has waited the grace. Without it, lease order rules.
  void taskAffinityKeepsPathsOnTheirWorkers() {
    for (int64_t grace : {60'000, 3'000, 0}) {
      const bool affinity = grace > 0;
      Env env;
      env.affinity_grace_ms = grace;
      QVERIFY(env.open());
      std::map<std::string, uint32_t> shard_of;
      run_with_step_zero_trained(*env.coordinator, &shard_of);
      auto newcomer = env.coordinator->lease_task("w4");
      QVERIFY(newcomer.is_ok());
      if (affinity) {
        QVERIFY(!newcomer->task);
        QVERIFY2(contains(newcomer->reason, "task affinity"), newcomer->reason.c_str());
      } else {
        QVERIFY(newcomer->task);
        QCOMPARE(newcomer->task->shard_id, shard_of["w0"]);  // lease order: the first shard
      }
      for (const char* w : {"w3", "w2", "w1"}) {
        TaskGrant grant = lease_or_die(*env.coordinator, w);
        QCOMPARE(grant.outer_step, uint64_t{1});
        if (affinity) QCOMPARE(grant.shard_id, shard_of[w]);
        QVERIFY(push_task(*env.coordinator, grant)->task_complete);
      }
      if (affinity) {
        // w0 was heard from and is idle, but does not come: its task goes to w4 once w0 has
        // been silent for 10 s (grace 60 s) or the task has waited the grace (3 s).
        QVERIFY(!env.coordinator->lease_task("w4")->task);
        env.clock.advance(grace == 3'000 ? 3'000 : 9'000);
        if (grace != 3'000) QVERIFY(!env.coordinator->lease_task("w4")->task);
        env.clock.advance(grace == 3'000 ? 1 : 1'001);
        TaskGrant taken = lease_or_die(*env.coordinator, "w4");
        QCOMPARE(taken.shard_id, shard_of["w0"]);
      }
    }
  }

  // The coordinator is down for 30 s after step 0 (longer than the owners' 10 s of silence and
  // than the 3 s grace): its downtime counts neither against the owners nor as the tasks' wait,
  // so after the restart a newcomer still waits, the owners get their own tasks back, and w0's
  // task goes to the newcomer 10 s (or the 3 s grace) after the restart, not at once.
  void taskAffinityHoldsAcrossACoordinatorRestart() {
    for (int64_t grace : {60'000, 3'000}) {
      Env env;
      env.affinity_grace_ms = grace;
      QVERIFY(env.open());
      std::map<std::string, uint32_t> shard_of;
      run_with_step_zero_trained(*env.coordinator, &shard_of);
      env.clock.advance(30'000);
      QVERIFY(env.open());
      auto newcomer = env.coordinator->lease_task("w4");
      QVERIFY(newcomer.is_ok());
      QVERIFY2(!newcomer->task, "an owner's task went to a newcomer right after the restart");
      QVERIFY2(contains(newcomer->reason, "task affinity"), newcomer->reason.c_str());
      for (const char* w : {"w3", "w2", "w1"}) {
        TaskGrant grant = lease_or_die(*env.coordinator, w);
        QCOMPARE(grant.outer_step, uint64_t{1});
        QCOMPARE(grant.shard_id, shard_of[w]);
        QVERIFY(push_task(*env.coordinator, grant)->task_complete);
      }
      env.clock.advance(grace == 3'000 ? 2'999 : 9'999);
      QVERIFY(!env.coordinator->lease_task("w4")->task);
      env.clock.advance(1);
      TaskGrant taken = lease_or_die(*env.coordinator, "w4");
      QCOMPARE(taken.shard_id, shard_of["w0"]);
    }
  }

  // A restart that expires the leases in flight (kExpireLeases) does not make their workers look
  // gone: each owner's requeued task waits for it, and it gets the task back when it asks.
  void restartThatExpiresLeasesKeepsTheirTasksForTheirOwners() {
    Env env;
    env.affinity_grace_ms = 60'000;
    QVERIFY(env.open());
    std::map<std::string, uint32_t> shard_of;
    run_with_step_zero_trained(*env.coordinator, &shard_of);
    for (const char* w : {"w0", "w1", "w2", "w3"})
      QCOMPARE(lease_or_die(*env.coordinator, w).shard_id, shard_of[w]);
    env.clock.advance(100);
    QVERIFY(env.open(dipaco::RestartPolicy::kExpireLeases));
    auto newcomer = env.coordinator->lease_task("w4");
    QVERIFY(newcomer.is_ok());
    QVERIFY2(!newcomer->task, "a task whose lease the restart ended went to a newcomer");
    for (const char* w : {"w3", "w0"}) {
      TaskGrant again = lease_or_die(*env.coordinator, w);
      QCOMPARE(again.outer_step, uint64_t{1});
      QCOMPARE(again.shard_id, shard_of[w]);
    }
  }

  // A worker told to wait while the queued tasks are held for their owners is told to come back
  // when the first grace (3 s) ends, not after the longest wait (5 s): then a task is free to it.
  // A coordinator restart in between does not count its downtime (30 s) against the grace.
  void waitHintEndsWhenAHeldTaskIsFree() {
    Env env;
    env.affinity_grace_ms = 3'000;
    QVERIFY(env.open());
    std::map<std::string, uint32_t> shard_of;
    run_with_step_zero_trained(*env.coordinator, &shard_of);
    auto held = env.coordinator->lease_task("w4");
    QVERIFY(!held->task);
    QCOMPARE(held->wait_ms, int64_t{3'000});
    env.clock.advance(1'000);
    held = env.coordinator->lease_task("w4");
    QVERIFY(!held->task);
    QCOMPARE(held->wait_ms, int64_t{2'000});
    env.clock.advance(30'000);
    QVERIFY(env.open());
    held = env.coordinator->lease_task("w4");
    QVERIFY(!held->task);
    QCOMPARE(held->wait_ms, int64_t{2'000});
    env.clock.advance(1'999);
    QVERIFY(!env.coordinator->lease_task("w4")->task);
    env.clock.advance(1);
    QVERIFY(env.coordinator->lease_task("w4")->task);
  }

  void pauseStopsNewLeasesAndResumeRestartsThem() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 2);
    TaskGrant held = lease_or_die(*env.coordinator, "w0");
    QVERIFY(env.coordinator->pause(*run)->changed);
    QVERIFY(!env.coordinator->pause(*run)->changed);
    auto waiting = env.coordinator->lease_task("w1");
    QVERIFY(!waiting->task);
    QVERIFY2(contains(waiting->reason, "is paused"), waiting->reason.c_str());
    QVERIFY(env.coordinator->heartbeat("w0", held.lease_id, 1)->lease_valid);  // in flight goes on
    QVERIFY(env.coordinator->resume(*run)->changed);
    QVERIFY(env.coordinator->lease_task("w1")->task);
    QCOMPARE(env.coordinator->pause(77).status().code(), StatusCode::kNotFound);
  }

  void setInnerStepsAppliesFromTheNextOuterStep() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2(3, 50));
    register_workers(*env.coordinator, 1);
    TaskGrant first = lease_or_die(*env.coordinator, "w0");
    QVERIFY(env.coordinator->set_inner_steps(*run, 200)->changed);
    QCOMPARE(env.coordinator->set_inner_steps(*run, 0).status().code(),
             StatusCode::kInvalidArgument);
    QVERIFY(push_task(*env.coordinator, first)->task_complete);
    for (int i = 0; i < 3; ++i) {  // the rest of step 0 still runs with H=50
      TaskGrant grant = lease_or_die(*env.coordinator, "w0");
      QCOMPARE(grant.outer_step, uint64_t{0});
      QCOMPARE(grant.inner_steps, 50u);
      QVERIFY(push_task(*env.coordinator, grant)->task_complete);
    }
    QCOMPARE(*aggregate_all(*env.coordinator, *run), 4);
    TaskGrant next = lease_or_die(*env.coordinator, "w0");
    QCOMPARE(next.outer_step, uint64_t{1});
    QCOMPARE(next.inner_steps, 200u);
  }

  void pushesAreIdempotentBySequence() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    std::string bytes = coordinator_test::gradient_bytes(grant.lease_id, 0);
    PushChunk chunk{grant.lease_id, 0, 0, 0, bytes.size(), std::string_view(bytes).substr(0, 30)};
    auto first = env.coordinator->accept_push(chunk);
    QVERIFY(first.is_ok() && first->accepted && !first->duplicate && !first->module_complete);
    auto check = env.coordinator->begin_push(grant.lease_id, 0, 0);
    QVERIFY(check.is_ok() && check->duplicate);
    auto retry = env.coordinator->accept_push(chunk);
    QVERIFY(retry.is_ok() && retry->accepted && retry->duplicate);
    PushChunk rest{grant.lease_id, 1, 0, 30, bytes.size(), std::string_view(bytes).substr(30)};
    auto second = env.coordinator->accept_push(rest);
    QVERIFY(second.is_ok() && second->module_complete && !second->task_complete);
    QCOMPARE(db_count(env.db_path(), "SELECT sum(size_bytes) FROM push_chunks"),
             int64_t(bytes.size()));
    QCOMPARE(db_count(env.db_path(), "SELECT last_sequence FROM leases"), int64_t{1});

    std::string other = coordinator_test::gradient_bytes(grant.lease_id, 2);
    auto done = env.coordinator->accept_push({grant.lease_id, 2, 2, 0, other.size(), other});
    QVERIFY(done.is_ok() && done->task_complete);
    // A retry of the last chunk after the lease completed is still acknowledged, not counted.
    auto late_retry = env.coordinator->accept_push({grant.lease_id, 2, 2, 0, other.size(), other});
    QVERIFY(late_retry.is_ok() && late_retry->accepted && late_retry->duplicate);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM reports"), int64_t{2});
    QCOMPARE(env.count_seen(EventKind::kLeaseCompleted), size_t{1});
    QCOMPARE(env.coordinator->run_status(*run)->tasks_done, int64_t{1});
  }

  void pushesForDeadLeasesAreRefusedWithTheReason() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 2);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    std::string bytes = coordinator_test::gradient_bytes(grant.lease_id, 0);
    QVERIFY(env.coordinator->accept_push({grant.lease_id, 0, 0, 0, bytes.size(), bytes})->accepted);
    env.clock.advance(1500);
    auto late = env.coordinator->accept_push({grant.lease_id, 1, 2, 0, bytes.size(), bytes});
    QVERIFY(late.is_ok());
    QVERIFY(!late->accepted);
    QVERIFY2(contains(late->reason, "lease " + std::to_string(grant.lease_id) + " expired at ") &&
                 contains(late->reason, "; task requeued"),
             late->reason.c_str());
    auto check = env.coordinator->begin_push(grant.lease_id, 2, 1);
    QVERIFY(check.is_ok() && !check->accepted);
    auto unknown = env.coordinator->accept_push({4242, 0, 0, 0, bytes.size(), bytes});
    QVERIFY(unknown.is_ok() && !unknown->accepted);
    QVERIFY2(contains(unknown->reason, "lease 4242 is unknown"), unknown->reason.c_str());
    QCOMPARE(env.count_seen(EventKind::kPushRefused), size_t{2});  // begin_push records nothing
    // The requeued task is done by someone else; the dead lease's half push never counts.
    TaskGrant redo = lease_or_die(*env.coordinator, "w1");
    QCOMPARE(redo.path_id, grant.path_id);
    QVERIFY(push_task(*env.coordinator, redo)->task_complete);
    for (int i = 0; i < 3; ++i)
      QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w1"))->task_complete);
    auto pending = env.coordinator->pending_aggregations(*run);
    QVERIFY(pending.is_ok());
    for (const auto& decision : *pending)
      for (const auto& report : decision.reports) QVERIFY(report.lease_id != grant.lease_id);
  }

  void malformedPushesAreErrorsAndChangeNothing_data() {
    QTest::addColumn<int>("which");
    QTest::addColumn<QString>("message");
    QTest::newRow("empty") << 0 << "empty chunk";
    QTest::newRow("oversized") << 1 << "over the limit of 64";
    QTest::newRow("past the end") << 2 << "fall outside";
    QTest::newRow("module not on path") << 3 << "module 1 is not on path 0";
    QTest::newRow("retry differs") << 4 << "this retry differs";
    QTest::newRow("overlap") << 5 << "overlap an accepted chunk";
    QTest::newRow("total changes") << 6 << "in earlier chunks";
    QTest::newRow("module already whole") << 7 << "already complete";
  }
  void malformedPushesAreErrorsAndChangeNothing() {
    QFETCH(int, which);
    QFETCH(QString, message);
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    int64_t lease = grant.lease_id;
    std::string bytes(100, 'x');
    std::string_view view(bytes);
    QVERIFY(env.coordinator->accept_push({lease, 0, 0, 0, 40, view.substr(0, 20)})->accepted);
    QVERIFY(env.coordinator->accept_push({lease, 1, 2, 0, 10, view.substr(0, 10)})->accepted);
    const PushChunk bad[] = {
        {lease, 5, 0, 20, 40, view.substr(0, 0)},  {lease, 5, 0, 0, 100, view.substr(0, 65)},
        {lease, 5, 0, 30, 40, view.substr(0, 20)}, {lease, 5, 1, 0, 40, view.substr(0, 20)},
        {lease, 0, 0, 20, 40, view.substr(0, 20)}, {lease, 5, 0, 10, 40, view.substr(0, 20)},
        {lease, 5, 0, 20, 50, view.substr(0, 20)}, {lease, 5, 2, 0, 10, view.substr(0, 10)},
    };
    int64_t chunks_before = db_count(env.db_path(), "SELECT count(*) FROM push_chunks");
    int64_t events_before = db_count(env.db_path(), "SELECT count(*) FROM events");
    auto reply = env.coordinator->accept_push(bad[which]);
    QVERIFY(!reply.is_ok());
    QCOMPARE(reply.status().code(), StatusCode::kInvalidArgument);
    QVERIFY2(contains(reply.status().message(), message.toStdString()),
             reply.status().message().c_str());
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM push_chunks"), chunks_before);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM events"), events_before);
    QVERIFY(env.coordinator->heartbeat("w0", lease, 1)->lease_valid);
  }

  void aModuleAggregatesWhenAllItsPathsAreInAndAPathWaitsForAllItsModules() {
    Env env;
    env.store = nullptr;  // chunk files in env.dir
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 4);
    TaskGrant grants[4];
    for (int p = 0; p < 4; ++p) grants[p] = lease_or_die(*env.coordinator, "w" + std::to_string(p));
    // Paths 0 and 1 finish: module 0 (used by paths 0, 1) is ready; modules 2, 3 are not.
    QVERIFY(push_task(*env.coordinator, grants[0])->task_complete);
    QVERIFY(env.coordinator->pending_aggregations(*run)->empty());
    QVERIFY(push_task(*env.coordinator, grants[1])->task_complete);
    auto pending = env.coordinator->pending_aggregations(*run);
    QCOMPARE(pending->size(), size_t{1});
    const auto& decision = pending->front();
    QCOMPARE(decision.module_id, 0u);
    QCOMPARE(decision.outer_step, uint64_t{0});
    QCOMPARE(decision.paths_using, 2u);
    QVERIFY(!decision.partial);
    QCOMPARE(decision.reports.size(), size_t{2});
    QCOMPARE(decision.reports[0].path_id, 0u);
    QCOMPARE(decision.reports[1].shard_tokens, uint64_t{2000});
    auto payload = env.coordinator->read_gradient(decision.reports[1]);
    QVERIFY(payload.is_ok());
    QCOMPARE(*payload, coordinator_test::gradient_bytes(grants[1].lease_id, 0));
    QCOMPARE(env.count_seen(EventKind::kAggregationReady), size_t{1});

    // Not ready yet: a clear refusal.
    auto early = env.coordinator->complete_aggregation(*run, 2, 0, "c", "s");
    QCOMPARE(early.code(), StatusCode::kFailedPrecondition);
    QVERIFY2(contains(early.message(), "1 of 2 tasks resolved"), early.message().c_str());

    QVERIFY(env.coordinator->complete_aggregation(*run, 0, 0, "m0v1", "sha01"));
    QVERIFY(env.coordinator->complete_aggregation(*run, 0, 0, "m0v1", "sha01"));  // retry
    QCOMPARE(env.coordinator->complete_aggregation(*run, 0, 0, "other", "x").code(),
             StatusCode::kFailedPrecondition);
    QCOMPARE(env.coordinator->run_status(*run)->module_versions.at(0), uint64_t{1});
    // Path 0's step 1 still needs module 2 at version 1.
    auto waiting = env.coordinator->lease_task("w0");
    QVERIFY(!waiting->task);
    QVERIFY(push_task(*env.coordinator, grants[2])->task_complete);
    QVERIFY(push_task(*env.coordinator, grants[3])->task_complete);
    QCOMPARE(*aggregate_all(*env.coordinator, *run), 3);
    TaskGrant next = lease_or_die(*env.coordinator, "w0");
    QCOMPARE(next.outer_step, uint64_t{1});
    QCOMPARE(next.modules[0].version, uint64_t{1});
    QCOMPARE(next.modules[0].checkpoint, std::string("m0v1"));
    // The aggregated chunks' files are gone.
    QVERIFY(!QFile::exists(QString::fromStdString(decision.reports[1].chunks[0])));
  }

  void partialAggregationSkipsTheStragglersAfterTheDeadline() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2(2);
    spec.partial.after_ms = 5000;
    spec.partial.min_fraction = 0.5;
    spec.lease_timeout_ms = 60000;
    auto run = env.coordinator->create_run(spec);
    register_workers(*env.coordinator, 4);
    TaskGrant grants[4];
    for (int p = 0; p < 4; ++p) grants[p] = lease_or_die(*env.coordinator, "w" + std::to_string(p));
    QVERIFY(push_task(*env.coordinator, grants[0])->task_complete);  // modules 0 and 2
    QVERIFY(push_task(*env.coordinator, grants[3])->task_complete);  // modules 1 and 3
    env.clock.advance(4999);
    QVERIFY(env.coordinator->pending_aggregations(*run)->empty());
    env.clock.advance(1);
    auto pending = env.coordinator->pending_aggregations(*run);
    QCOMPARE(pending->size(), size_t{4});
    for (const auto& decision : *pending) {
      QVERIFY(decision.partial);
      QCOMPARE(decision.reports.size(), size_t{1});
      QCOMPARE(decision.tasks_expected, 2u);
    }
    auto status = env.coordinator->run_status(*run);
    QCOMPARE(status->tasks_skipped, int64_t{2});
    QCOMPARE(env.count_seen(EventKind::kLeaseCancelled), size_t{2});
    auto beat = env.coordinator->heartbeat("w1", grants[1].lease_id, 9);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "partial aggregation"), beat->reason.c_str());
    auto late = push_task(*env.coordinator, grants[1]);
    QVERIFY(late.is_ok() && !late->accepted);
    QCOMPARE(*aggregate_all(*env.coordinator, *run), 4);
    QCOMPARE(env.coordinator->run_status(*run)->tasks_queued, int64_t{4});  // step 1 for all
  }

  void partialAggregationNeedsTheMinimumFraction() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2(2);
    spec.partial.after_ms = 100;
    spec.partial.min_fraction = 0.75;
    spec.lease_timeout_ms = 60000;
    auto run = env.coordinator->create_run(spec);
    register_workers(*env.coordinator, 2);
    QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w0"))->task_complete);
    lease_or_die(*env.coordinator, "w1");
    env.clock.advance(10000);
    QVERIFY(env.coordinator->pending_aggregations(*run)->empty());  // 1 of 2 < 0.75
  }

  void theRunFinishesAfterItsLastOuterStep() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2(2));
    register_workers(*env.coordinator, 1);
    for (int step = 0; step < 2; ++step) {
      for (int p = 0; p < 4; ++p)
        QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w0"))->task_complete);
      QCOMPARE(*aggregate_all(*env.coordinator, *run), 4);
    }
    auto status = env.coordinator->run_status(*run);
    QCOMPARE(status->state, std::string("finished"));
    QCOMPARE(status->tasks_done, int64_t{8});
    for (auto [module, version] : status->module_versions) QCOMPARE(version, uint64_t{2});
    auto reply = env.coordinator->lease_task("w0");
    QVERIFY(!reply->task);
    QVERIFY2(contains(reply->reason, "no run is active"), reply->reason.c_str());
    QCOMPARE(env.count_seen(EventKind::kRunFinished), size_t{1});
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM module_versions"), int64_t{12});
  }

  void eventsAndMetricsAreStoredAndStreamed() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    QVERIFY(env.coordinator->report_metrics(
        {{*run, 0, 0, 10, "train_loss", 3.5, 0}, {*run, 0, 0, 20, "train_loss", 3.1, 0}}));
    QCOMPARE(env.coordinator->report_metrics({{99, 0, 0, 0, "x", 1, 0}}).code(),
             StatusCode::kNotFound);
    QCOMPARE(db_count(env.db_path(), "SELECT count(*) FROM metrics"), int64_t{2});
    QCOMPARE(env.count_seen(EventKind::kMetric), size_t{2});
    env.clock.advance(2000);
    QVERIFY(env.coordinator->tick());
    auto events = env.coordinator->events(*run);
    QVERIFY(events.is_ok());
    QCOMPARE(events->size(), size_t{3});
    QCOMPARE((*events)[0].kind, EventKind::kRunCreated);
    QCOMPARE((*events)[1].kind, EventKind::kLeaseGranted);
    QCOMPARE((*events)[2].kind, EventKind::kLeaseExpired);
    QVERIFY(contains((*events)[2].detail, "lease " + std::to_string(grant.lease_id)));
    auto later = env.coordinator->events(*run, (*events)[1].id);
    QCOMPARE(later->size(), size_t{1});
  }

  void aFailedCallLeavesNoEventsBehind() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    size_t seen = env.seen.size();
    QVERIFY(!env.coordinator->complete_aggregation(*run, 0, 0, "c", "s"));
    QCOMPARE(env.seen.size(), seen);
  }

  void reopeningMidRunContinuesWhereItStopped() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2(2));
    register_workers(*env.coordinator, 2);
    for (int p = 0; p < 4; ++p)
      QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w0"))->task_complete);
    auto before = env.coordinator->pending_aggregations(*run);
    QCOMPARE(before->size(), size_t{4});
    QVERIFY(env.coordinator->complete_aggregation(*run, 0, 0, "m0v1", "a"));
    QVERIFY(env.open());  // a restarted coordinator over the same database
    auto after = env.coordinator->pending_aggregations(*run);
    QCOMPARE(after->size(), size_t{3});  // decisions survive; the recorded one is gone
    QCOMPARE(*aggregate_all(*env.coordinator, *run), 3);
    for (int p = 0; p < 4; ++p)
      QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w1"))->task_complete);
    QCOMPARE(*aggregate_all(*env.coordinator, *run), 4);
    QCOMPARE(env.coordinator->run_status(*run)->state, std::string("finished"));
  }

  // The coordinator was down longer than the lease timeout (1 s): its downtime does not count
  // against the leases in flight, which get one lease timeout from the restart.
  void restartKeepsLeasesForALeaseTimeoutByDefault() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 2);
    TaskGrant kept = lease_or_die(*env.coordinator, "w0");
    TaskGrant lost = lease_or_die(*env.coordinator, "w1");
    env.clock.advance(1500);
    QVERIFY(env.open(dipaco::RestartPolicy::kKeepLeases));
    env.clock.advance(900);
    QVERIFY(env.coordinator->heartbeat("w0", kept.lease_id, 1)->lease_valid);
    QVERIFY(push_task(*env.coordinator, kept)->task_complete);
    env.clock.advance(200);  // w1 stayed silent since the restart: a lease timeout passes
    auto beat = env.coordinator->heartbeat("w1", lost.lease_id, 1);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "no heartbeat"), beat->reason.c_str());
  }

  // A lease kept across a restart gets one lease timeout (1 s) from the restart, never past its
  // hard deadline (max_lease_ms 2.5 s from its grant) and never earlier than it had.
  void restartKeepsALeaseNoLaterThanItsHardDeadline() {
    Env env;
    QVERIFY(env.open());
    RunSpec spec = grid_2x2();
    spec.max_lease_ms = 2500;
    QVERIFY(env.coordinator->create_run(spec).is_ok());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    const int64_t granted = grant.deadline_ms - 1000;
    const std::string deadline =
        "SELECT deadline_ms FROM leases WHERE id = " + std::to_string(grant.lease_id);
    QVERIFY(env.open(dipaco::RestartPolicy::kKeepLeases));  // at once: keeps granted + 1 s
    QCOMPARE(db_count(env.db_path(), deadline), granted + 1000);
    env.clock.advance(1000);
    QVERIFY(env.open(dipaco::RestartPolicy::kKeepLeases));
    QCOMPARE(db_count(env.db_path(), deadline), granted + 2000);
    env.clock.advance(1000);
    QVERIFY(env.open(dipaco::RestartPolicy::kKeepLeases));
    QCOMPARE(db_count(env.db_path(), deadline), granted + 2500);  // the hard deadline
    env.clock.advance(501);
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 1);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "max_lease_ms"), beat->reason.c_str());
  }

  void restartCanExpireEveryLeaseInFlight() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    QVERIFY(env.open(dipaco::RestartPolicy::kExpireLeases));
    auto beat = env.coordinator->heartbeat("w0", grant.lease_id, 1);
    QVERIFY(!beat->lease_valid);
    QVERIFY2(contains(beat->reason, "the coordinator restarted; task requeued"),
             beat->reason.c_str());
    auto late = push_task(*env.coordinator, grant);
    QVERIFY(late.is_ok() && !late->accepted);
    QCOMPARE(env.coordinator->run_status(*run)->tasks_queued, int64_t{4});
    QVERIFY(env.open(dipaco::RestartPolicy::kExpireLeases));  // nothing left to expire
    QCOMPARE(env.coordinator->run_status(*run)->tasks_queued, int64_t{4});
  }

  void aCrashInsideATransactionChangesNothing() {
    Env env;
    env.store = nullptr;  // the child writes a real chunk file before it dies
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    TaskGrant grant = lease_or_die(*env.coordinator, "w0");
    std::string bytes = coordinator_test::gradient_bytes(grant.lease_id, 0);
    QVERIFY(env.coordinator->accept_push({grant.lease_id, 0, 0, 0, bytes.size(), bytes})->accepted);
    const char* tables[] = {"push_chunks", "reports", "events", "leases", "aggregations"};
    std::vector<int64_t> before;
    for (const char* table : tables)
      before.push_back(db_count(env.db_path(), std::string("SELECT count(*) FROM ") + table));
    env.coordinator.reset();

    pid_t child = fork();
    QVERIFY(child >= 0);
    if (child == 0) {
      // The child completes the task, and dies just before COMMIT.
      dipaco::CoordinatorOptions options = env.options();
      options.before_commit = [] { _exit(0); };
      auto coordinator = dipaco::Coordinator::open(options);
      if (!coordinator.is_ok()) _exit(2);
      std::string other = coordinator_test::gradient_bytes(grant.lease_id, 2);
      (void)(*coordinator)->accept_push({grant.lease_id, 1, 2, 0, other.size(), other});
      _exit(3);
    }
    int wstatus = 0;
    QCOMPARE(waitpid(child, &wstatus, 0), child);
    QVERIFY(WIFEXITED(wstatus));
    QCOMPARE(WEXITSTATUS(wstatus), 0);
    for (size_t i = 0; i < std::size(tables); ++i)
      QCOMPARE(db_count(env.db_path(), std::string("SELECT count(*) FROM ") + tables[i]),
               before[i]);
    QVERIFY(env.open());
    std::string other = coordinator_test::gradient_bytes(grant.lease_id, 2);
    auto retried = env.coordinator->accept_push({grant.lease_id, 1, 2, 0, other.size(), other});
    QVERIFY(retried.is_ok() && retried->accepted && !retried->duplicate && retried->task_complete);
  }

  void aCrashDuringAggregationKeepsTheOldVersion() {
    Env env;
    QVERIFY(env.open());
    auto run = env.coordinator->create_run(grid_2x2());
    register_workers(*env.coordinator, 1);
    for (int p = 0; p < 4; ++p)
      QVERIFY(push_task(*env.coordinator, lease_or_die(*env.coordinator, "w0"))->task_complete);
    QCOMPARE(env.coordinator->pending_aggregations(*run)->size(), size_t{4});
    std::string before = state_digest(env.db_path());
    env.coordinator.reset();

    pid_t child = fork();
    QVERIFY(child >= 0);
    if (child == 0) {
      dipaco::CoordinatorOptions options = env.options();
      options.before_commit = [] { _exit(0); };
      auto coordinator = dipaco::Coordinator::open(options);
      if (!coordinator.is_ok()) _exit(2);
      (void)(*coordinator)->complete_aggregation(*run, 0, 0, "m0v1", "sha");
      _exit(3);
    }
    int wstatus = 0;
    QCOMPARE(waitpid(child, &wstatus, 0), child);
    QVERIFY(WIFEXITED(wstatus));
    QCOMPARE(WEXITSTATUS(wstatus), 0);
    QCOMPARE(state_digest(env.db_path()), before);
    QVERIFY(env.open());
    QCOMPARE(env.coordinator->pending_aggregations(*run)->size(), size_t{4});
    QCOMPARE(env.coordinator->run_status(*run)->module_versions.at(0), uint64_t{0});
    QVERIFY(env.coordinator->complete_aggregation(*run, 0, 0, "m0v1", "sha"));
    QCOMPARE(env.coordinator->run_status(*run)->module_versions.at(0), uint64_t{1});
  }

  void aNewerDatabaseIsRefused() {
    Env env;
    QVERIFY(env.open());
    env.coordinator.reset();
    {
      auto db = dipaco::SqliteDb::open(env.db_path());
      QVERIFY(db->exec("UPDATE schema_version SET version = " +
                       std::to_string(dipaco::latest_schema_version() + 1)));
    }
    auto status = env.open();
    QCOMPARE(status.code(), StatusCode::kFailedPrecondition);
    QVERIFY2(contains(status.message(), "newer dipaco"), status.message().c_str());
  }
};

QTEST_GUILESS_MAIN(CoordinatorTransitionsTest)
#include "test_coordinator_transitions.moc"
