// Worker identities and drains in the coordinator: a second process with a worker id that is
// still present is refused (the coordinator's downtime not counted), a cleanly stopped process
// gives its id back, a replaced process's calls are refused, an older worker (no instance) is
// not checked, and an operator's drain survives the worker registering again until undrain().
#include <QtTest>
#include <string>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"
#include "test_support.h"

using coordinator_test::Env;
using coordinator_test::grid_2x2;
using dipaco::EventKind;
using dipaco::WorkerInfo;
using dipaco::test::contains;

namespace {

WorkerInfo worker(const std::string& id, const std::string& host, const std::string& instance) {
  WorkerInfo info{id, host, "cpu", "0.1.0"};
  info.instance_id = instance;
  return info;
}

// How long a silent worker still counts as present with the fixture's options.
int64_t presence_window_ms(Env& env) {
  auto options = env.options();
  return 2 * std::max(options.max_wait_ms, options.heartbeat_interval_ms);
}

// Opens a 2x2 run with worker "w" (instance "aaaa", host-a) holding a lease: its id, 0 on error.
int64_t open_with_a_leasing_worker(Env& env) {
  if (!env.open().is_ok() || !env.coordinator->create_run(grid_2x2()).is_ok()) return 0;
  auto registered = env.coordinator->register_worker(worker("w", "host-a", "aaaa"));
  if (!registered.is_ok() || !registered->refusal.empty()) return 0;
  auto lease = env.coordinator->lease_task("w", "aaaa");
  return lease.is_ok() && lease->task ? lease->task->lease_id : 0;
}

}  // namespace

class CoordinatorWorkersTest : public QObject {
  Q_OBJECT

 private slots:
  void aSecondInstanceOfAPresentWorkerIsRefused() {
    Env env;
    QVERIFY(env.open());
    auto first = env.coordinator->register_worker(worker("gpu-host", "host-a", "aaaa"));
    QVERIFY(first.is_ok());
    QVERIFY(first->refusal.empty());
    env.clock.advance(1500);
    auto second = env.coordinator->register_worker(worker("gpu-host", "host-b", "bbbb"));
    QVERIFY(second.is_ok());
    QVERIFY2(contains(second->refusal, "worker id \"gpu-host\""), second->refusal.c_str());
    QVERIFY2(contains(second->refusal, "host host-a"), second->refusal.c_str());
    QVERIFY2(contains(second->refusal, "last heard 1.5 s ago"), second->refusal.c_str());
    QVERIFY2(contains(second->refusal, "if that was this worker before a crash"),
             second->refusal.c_str());
    QVERIFY2(contains(second->refusal, "give each worker process its own [worker] id"),
             second->refusal.c_str());
    // Nothing changed: the table still names the first process's host.
    auto workers = env.coordinator->workers();
    QVERIFY(workers.is_ok());
    QCOMPARE(workers->size(), size_t{1});
    QCOMPARE((*workers)[0].host, std::string("host-a"));
    // The same process registering again (a lost reply, a new connection) is fine.
    auto again = env.coordinator->register_worker(worker("gpu-host", "host-a", "aaaa"));
    QVERIFY(again.is_ok());
    QVERIFY(again->refusal.empty());
  }

  void aSilentPredecessorIsReplaced() {
    Env env;
    QVERIFY(env.open());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
    env.clock.advance(presence_window_ms(env) - 1);
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-b", "bbbb"))->refusal.empty());
    env.clock.advance(1);  // silent for the whole window: no longer present
    auto replaced = env.coordinator->register_worker(worker("w", "host-b", "bbbb"));
    QVERIFY(replaced.is_ok());
    QVERIFY2(replaced->refusal.empty(), replaced->refusal.c_str());
    // Now the old process is the stranger.
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
  }

  void heartbeatsAndLeaseCallsKeepAWorkerPresent() {
    Env env;
    QVERIFY(env.open());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
    for (int i = 0; i < 4; ++i) {
      env.clock.advance(presence_window_ms(env) / 2);
      QVERIFY(env.coordinator->lease_task("w").is_ok());  // no run: a wait, but it was heard
    }
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-b", "bbbb"))->refusal.empty());
  }

  void aCleanStopGivesTheIdBackAtOnce() {
    Env env;
    const int64_t lease_id = open_with_a_leasing_worker(env);
    QVERIFY(lease_id > 0);
    QVERIFY(env.coordinator->drain("w")->changed);
    // Another instance cannot give the id back, nor can an unknown worker.
    QVERIFY(!*env.coordinator->unregister_worker("w", "bbbb"));
    QVERIFY(!*env.coordinator->unregister_worker("ghost", "aaaa"));
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-a", "bbbb"))->refusal.empty());
    // The process that holds it can: the next one registers at once, still drained, and the
    // live lease is untouched (the restarted worker gets it back).
    QVERIFY(*env.coordinator->unregister_worker("w", "aaaa"));
    auto next = env.coordinator->register_worker(worker("w", "host-a", "bbbb"));
    QVERIFY(next.is_ok());
    QVERIFY2(next->refusal.empty(), next->refusal.c_str());
    QVERIFY(next->drain);
    QCOMPARE((*env.coordinator->workers())[0].live_lease_id, lease_id);
  }

  void aReplacedProcessIsRefusedOnEveryCall() {
    Env env;
    const int64_t lease_id = open_with_a_leasing_worker(env);
    QVERIFY(lease_id > 0);
    // A was paused for longer than the presence window; B takes the id over.
    env.clock.advance(presence_window_ms(env));
    QVERIFY(env.coordinator->register_worker(worker("w", "host-b", "bbbb"))->refusal.empty());
    // A resumes: everything it sends is refused, with the reason.
    auto beat = env.coordinator->heartbeat("w", lease_id, 3, "aaaa");
    QCOMPARE(beat.status().code(), dipaco::StatusCode::kFailedPrecondition);
    QVERIFY2(contains(beat.status().message(), "replaced by a newer registration of worker id w"),
             beat.status().message().c_str());
    QCOMPARE(env.coordinator->lease_task("w", "aaaa").status().code(),
             dipaco::StatusCode::kFailedPrecondition);
    QCOMPARE(env.coordinator->release_lease(lease_id, "w", "stopping", "aaaa").status().code(),
             dipaco::StatusCode::kFailedPrecondition);
    QCOMPARE(env.coordinator->check_current_instance("w", "aaaa").code(),
             dipaco::StatusCode::kFailedPrecondition);
    // B, and an older worker that sends no instance, are served.
    QVERIFY(env.coordinator->check_current_instance("w", "bbbb").is_ok());
    QVERIFY(env.coordinator->heartbeat("w", 0, 0, "bbbb").is_ok());
    QVERIFY(env.coordinator->lease_task("w", "bbbb").is_ok());
    QVERIFY(env.coordinator->heartbeat("w", lease_id, 3).is_ok());
    // A registering again is refused while B is present.
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
  }

  void theCoordinatorsDowntimeIsNotAHoldersSilence() {
    Env env;
    QVERIFY(env.open());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
    env.clock.advance(presence_window_ms(env) / 4);
    env.coordinator.reset();  // the coordinator stops for a long time
    env.clock.advance(10 * presence_window_ms(env));
    QVERIFY(env.open());
    // A was present when the coordinator stopped: still present right after the restart.
    auto refused = env.coordinator->register_worker(worker("w", "host-b", "bbbb"));
    QVERIFY(refused.is_ok());
    QVERIFY(!refused->refusal.empty());
    // ... until it has been silent for a whole window of the coordinator's up time.
    env.clock.advance(presence_window_ms(env));
    auto taken = env.coordinator->register_worker(worker("w", "host-b", "bbbb"));
    QVERIFY(taken.is_ok());
    QVERIFY2(taken->refusal.empty(), taken->refusal.c_str());
  }

  void anEmptyInstanceKeepsTodaysBehaviour() {
    Env env;
    QVERIFY(env.open());
    // An older worker (no instance) takes over a present id, and is taken over in turn.
    QVERIFY(env.coordinator->register_worker(worker("w", "host-a", "aaaa"))->refusal.empty());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-old", ""))->refusal.empty());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-b", "bbbb"))->refusal.empty());
    QVERIFY(env.coordinator->register_worker(worker("w", "host-old", ""))->refusal.empty());
  }

  void aDrainSurvivesRegisteringAgainUntilUndrain() {
    Env env;
    QVERIFY(env.open());
    QVERIFY(env.coordinator->create_run(grid_2x2()).is_ok());
    auto first = env.coordinator->register_worker(worker("w", "host-a", "aaaa"));
    QVERIFY(first.is_ok());
    QVERIFY(!first->drain);
    QVERIFY(env.coordinator->drain("w")->changed);
    // The worker finished and its process was restarted (kubelet, systemd): still drained.
    env.clock.advance(presence_window_ms(env));
    auto restarted = env.coordinator->register_worker(worker("w", "host-a", "cccc"));
    QVERIFY(restarted.is_ok());
    QVERIFY2(restarted->refusal.empty(), restarted->refusal.c_str());
    QVERIFY(restarted->drain);
    auto lease = env.coordinator->lease_task("w");
    QVERIFY(lease.is_ok());
    QVERIFY(!lease->task);
    QVERIFY(lease->drain);
    QCOMPARE((*env.coordinator->workers())[0].state, std::string("draining"));

    auto undrained = env.coordinator->undrain("w");
    QVERIFY(undrained.is_ok());
    QVERIFY(undrained->changed);
    QVERIFY2(contains(undrained->message, "takes tasks again"), undrained->message.c_str());
    QVERIFY(env.count_seen(EventKind::kWorkerUndrained) == 1);
    QVERIFY(!env.coordinator->undrain("w")->changed);  // not draining any more
    QCOMPARE(env.coordinator->undrain("ghost").status().code(), dipaco::StatusCode::kNotFound);
    lease = env.coordinator->lease_task("w");
    QVERIFY(lease.is_ok());
    QVERIFY(lease->task.has_value());
    QVERIFY(!lease->drain);
    QVERIFY(!env.coordinator->register_worker(worker("w", "host-a", "cccc"))->drain);
  }
};

QTEST_GUILESS_MAIN(CoordinatorWorkersTest)
#include "test_coordinator_workers.moc"
