// Worker identities and sticky drains over loopback: a second worker process with an id that is
// still present is refused (ALREADY_EXISTS) and keeps retrying until the first goes silent; a
// worker that stops cleanly gives its id back (Unregister) so that the next registers at once;
// a worker whose id was taken over drops its task and registers again instead of training on;
// a worker that registers while drained idles instead of exiting and works after
// UndrainWorker; ListWorkers needs the operator token. Presence windows are long (seconds)
// against the few-ms beats of the tests, so a loaded machine does not change the outcome.
#include <QtTest>
#include <atomic>
#include <thread>

#include "fake_task_runner.h"
#include "rpc_fixture.h"
#include "test_support.h"
#include "worker_client.h"

using dipaco::test::contains;
using namespace rpc_test;
namespace v1 = dipaco::v1;

namespace {

// Presence window of most tests: 2 * max(max_wait_ms, heartbeat_interval_ms) = 2 s, against
// test-thread heartbeats every 50 ms.
constexpr int64_t kMaxWaitMs = 1000;
// The drain test waits for a predecessor to go silent (a sleep; only "longer than" matters).
constexpr int64_t kDrainTestWaitMs = 150;
// Long enough that nobody counts as gone while a test runs.
constexpr int64_t kForeverMs = 60000;

dipaco::WorkerClientOptions worker_options(Served& s, const std::string& id,
                                           const std::string& instance) {
  dipaco::WorkerClientOptions options;
  options.channel.address = s.server->target();
  options.channel.insecure = true;
  options.token = kWorkerToken;
  options.worker_id = id;
  options.instance_id = instance;
  options.host = "second-host";
  options.cache_dir = s.dir.filePath(QString::fromStdString("cache-" + instance)).toStdString();
  options.backoff_initial_ms = 10;
  options.backoff_max_ms = 50;
  options.max_tasks = 1;
  return options;
}

grpc::Status register_as(Served& s, const std::string& id, const std::string& host,
                         const std::string& instance, v1::RegisterResponse* response) {
  v1::RegisterRequest request;
  request.set_worker_id(id);
  request.set_host(host);
  request.set_instance_id(instance);
  return s.stub->Register(context().get(), request, response);
}

// The coordinator's row for worker `id` (empty id when there is none).
dipaco::WorkerStatus worker_row(Served& s, const std::string& id) {
  auto workers = s.coordinator->workers();
  if (workers.is_ok()) {
    for (const auto& w : *workers) {
      if (w.worker_id == id) return w;
    }
  }
  return {};
}

// Runs a worker's run(stop) on its own thread; the test thread checks what it returned (QTest
// macros belong on the test thread). A test that fails early stops the worker on the way out.
class WorkerThread {
 public:
  WorkerThread(dipaco::WorkerClient& client, std::atomic<int>& stop)
      : stop_(stop), thread_([this, &client] {
          result_ = client.run(stop_);
          returned_ = true;
        }) {}
  ~WorkerThread() {
    if (!thread_.joinable()) return;
    stop_ = 2;
    thread_.join();
  }
  bool returned() const { return returned_.load(); }
  // run()'s result once it returned within timeout_ms, else an error that says so.
  dipaco::Status join(int timeout_ms) {
    if (!wait_until([&] { return returned(); }, timeout_ms))
      return dipaco::internal_error("run() did not return within " + std::to_string(timeout_ms) +
                                    " ms");
    thread_.join();
    return result_;
  }

 private:
  std::atomic<int>& stop_;
  std::atomic<bool> returned_{false};
  dipaco::Status result_;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace

class RpcWorkerIdentityTest : public QObject {
  Q_OBJECT

 private slots:
  void aSecondProcessWithTheSameIdWaitsForTheFirstToGo() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kMaxWaitMs;
    QVERIFY(s.start());
    v1::RegisterResponse registered;
    QVERIFY(register_as(s, "gpu-host", "first-host", "aaaa", &registered).ok());
    const std::string first_session = registered.session_id();

    // A plain second Register is refused with the id, the other host and the fix.
    grpc::Status refused = register_as(s, "gpu-host", "second-host", "bbbb", &registered);
    QCOMPARE(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
    QVERIFY2(contains(refused.error_message(), "\"gpu-host\""), refused.error_message().c_str());
    QVERIFY2(contains(refused.error_message(), "host first-host"), refused.error_message().c_str());
    QVERIFY2(contains(refused.error_message(), "its own [worker] id"),
             refused.error_message().c_str());
    QVERIFY2(contains(refused.error_message(), "before a crash"), refused.error_message().c_str());

    // The second process keeps retrying while the first heartbeats ...
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClient second(worker_options(s, "gpu-host", "bbbb"), runner);
    WorkerThread worker(second, stop);
    for (int i = 0; i < 12; ++i) {  // 12 x 50 ms: the second retries several times
      v1::HeartbeatRequest beat;
      beat.set_session_id(first_session);
      v1::HeartbeatResponse reply;
      QVERIFY(s.stub->Heartbeat(context().get(), beat, &reply).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      QCOMPARE(worker_row(s, "gpu-host").host, std::string("first-host"));
      QVERIFY(!worker.returned());
    }
    QCOMPARE(worker_row(s, "gpu-host").live_lease_id, int64_t{0});

    // ... and registers and works once the first has gone silent.
    const dipaco::Status result = worker.join(20000);
    QVERIFY2(result.is_ok(), result.to_string().c_str());
    QCOMPARE(second.stats().tasks_completed, uint64_t{1});
    QCOMPARE(worker_row(s, "gpu-host").host, std::string("second-host"));
  }

  void aStopEndsTheRetries() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = 60000;  // the first stays present
    QVERIFY(s.start());
    v1::RegisterResponse registered;
    QVERIFY(register_as(s, "busy", "first-host", "aaaa", &registered).ok());
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClient second(worker_options(s, "busy", "bbbb"), runner);
    WorkerThread worker(second, stop);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    QVERIFY(!worker.returned());
    stop = 1;  // SIGTERM
    const dipaco::Status result = worker.join(5000);
    QVERIFY2(result.is_ok(), result.to_string().c_str());
    QCOMPARE(second.stats().tasks_completed, uint64_t{0});
    QCOMPARE(worker_row(s, "busy").host, std::string("first-host"));  // the holder kept the id
  }

  void aCleanStopGivesTheIdBack() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kForeverMs;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClient first(worker_options(s, "restarted", "aaaa"), runner);
    QVERIFY(first.run(stop).is_ok());  // max_tasks = 1, then a clean exit
    QCOMPARE(first.stats().tasks_completed, uint64_t{1});
    // The next process registers at once, although the first was heard from just now.
    v1::RegisterResponse registered;
    grpc::Status next = register_as(s, "restarted", "third-host", "bbbb", &registered);
    QVERIFY2(next.ok(), next.error_message().c_str());
    QCOMPARE(worker_row(s, "restarted").host, std::string("third-host"));
    // Unregister only gives back the caller's own instance.
    v1::UnregisterRequest stale;
    stale.set_session_id(registered.session_id());
    stale.set_instance_id("aaaa");
    v1::UnregisterResponse reply;
    QVERIFY(s.stub->Unregister(context().get(), stale, &reply).ok());
    QVERIFY(!reply.unregistered());
    QCOMPARE(register_as(s, "restarted", "h", "cccc", &registered).error_code(),
             grpc::StatusCode::ALREADY_EXISTS);
  }

  // The devices a worker describes reach ListWorkers (`dipaco ctl workers`, the studio): equal
  // GPUs counted, name, total memory and compute capability; no description is one "cpu".
  void theDevicesAWorkerSendsAreListed() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kForeverMs;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions gpu_options = worker_options(s, "gpu-box", "aaaa");
    const dipaco::WorkerDevice h100{"NVIDIA H100 80GB HBM3", true, uint64_t{81559} << 20, "9.0"};
    gpu_options.devices = {
        h100, h100, {"NVIDIA A100-SXM4-40GB", true, uint64_t{40960} << 20, "8.0"}};
    dipaco::WorkerClient gpu_worker(gpu_options, runner);
    QVERIFY(gpu_worker.run(stop).is_ok());
    dipaco::WorkerClient cpu_worker(worker_options(s, "cpu-box", "bbbb"), runner);
    QVERIFY(cpu_worker.run(stop).is_ok());

    v1::ListWorkersResponse listed;
    QVERIFY(
        s.stub->ListWorkers(context(kOperatorToken).get(), v1::ListWorkersRequest(), &listed).ok());
    QCOMPARE(listed.workers_size(), 2);
    for (const v1::WorkerSummary& worker : listed.workers()) {
      if (worker.worker_id() == "gpu-box") {
        QCOMPARE(worker.devices(), std::string("2x NVIDIA H100 80GB HBM3 81559 MiB cc 9.0; "
                                               "NVIDIA A100-SXM4-40GB 40960 MiB cc 8.0"));
      } else {
        QCOMPARE(worker.worker_id(), std::string("cpu-box"));
        QCOMPARE(worker.devices(), std::string("cpu"));
      }
    }
  }

  void aReplacedWorkerDropsItsTaskAndRegistersAgain() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kForeverMs;
    QVERIFY(s.start());
    dipaco::FakeRunnerFaults faults;
    faults.hang = true;  // trains until the lease is taken away
    dipaco::FakeTaskRunner runner(0, faults);
    std::atomic<int> stop{0};
    std::atomic<int> tasks_ended{0};
    auto options = worker_options(s, "shared-id", "aaaa");
    options.on_lease = [&](const std::string& lease) { tasks_ended += lease.empty() ? 1 : 0; };
    dipaco::WorkerClient paused(std::move(options), runner);
    WorkerThread worker(paused, stop);
    QVERIFY(wait_until([&] { return worker_row(s, "shared-id").live_lease_id != 0; }, 10000));

    // As if the first had been paused past the presence window: another process takes the id.
    QVERIFY(*s.coordinator->unregister_worker("shared-id", "aaaa"));
    v1::RegisterResponse registered;
    QVERIFY(register_as(s, "shared-id", "newer-host", "bbbb", &registered).ok());

    // Its next heartbeat is refused: it drops the task and registers again, which is refused
    // while the newer process is present. It neither exits nor takes the id back.
    QVERIFY(wait_until([&] { return tasks_ended.load() >= 1; }, 20000));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    QVERIFY(!worker.returned());
    QCOMPARE(worker_row(s, "shared-id").host, std::string("newer-host"));
    stop = 1;
    const dipaco::Status result = worker.join(5000);
    QVERIFY2(result.is_ok(), result.to_string().c_str());
    QCOMPARE(paused.stats().tasks_completed, uint64_t{0});
    QCOMPARE(paused.stats().tasks_lost, uint64_t{1});
    // Its clean exit did not give the newer process's id away.
    QCOMPARE(register_as(s, "shared-id", "h", "cccc", &registered).error_code(),
             grpc::StatusCode::ALREADY_EXISTS);
  }

  void aReplacedSessionIsRefusedOnEveryWorkerCall() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kForeverMs;
    QVERIFY(s.start());
    v1::RegisterResponse first, second;
    QVERIFY(register_as(s, "w", "host-a", "aaaa", &first).ok());
    QVERIFY(*s.coordinator->unregister_worker("w", "aaaa"));  // as if it had gone silent
    QVERIFY(register_as(s, "w", "host-b", "bbbb", &second).ok());
    QVERIFY(first.session_id() != second.session_id());

    v1::HeartbeatRequest beat;
    beat.set_session_id(first.session_id());
    v1::HeartbeatResponse beat_reply;
    grpc::Status refused = s.stub->Heartbeat(context().get(), beat, &beat_reply);
    QCOMPARE(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    QVERIFY2(contains(refused.error_message(), "replaced by a newer registration of worker id w"),
             refused.error_message().c_str());
    v1::LeaseTaskRequest lease;
    lease.set_session_id(first.session_id());
    v1::LeaseTaskResponse lease_reply;
    QCOMPARE(s.stub->LeaseTask(context().get(), lease, &lease_reply).error_code(),
             grpc::StatusCode::FAILED_PRECONDITION);
    v1::PushOuterGradientResponse push_reply;
    auto push_context = context();
    auto writer = s.stub->PushOuterGradient(push_context.get(), &push_reply);
    v1::OuterGradientChunk chunk;
    chunk.set_session_id(first.session_id());
    chunk.set_lease_id("1");
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status push = writer->Finish();
    QCOMPARE(push.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    QVERIFY2(contains(push.error_message(), "replaced"), push.error_message().c_str());

    // The current process is served.
    beat.set_session_id(second.session_id());
    QVERIFY(s.stub->Heartbeat(context().get(), beat, &beat_reply).ok());
    lease.set_session_id(second.session_id());
    QVERIFY(s.stub->LeaseTask(context().get(), lease, &lease_reply).ok());
  }

  void aDrainedWorkerIdlesUntilUndrained() {
    Served s;
    s.max_wait_ms = s.heartbeat_interval_ms = kDrainTestWaitMs;
    QVERIFY(s.start());
    v1::RegisterResponse registered;
    QVERIFY(register_as(s, "flaky-gpu", "h", "aaaa", &registered).ok());
    QVERIFY(!registered.drain());
    v1::DrainWorkerRequest drain;
    drain.set_worker_id("flaky-gpu");
    v1::OperatorResponse drained;
    QVERIFY(s.stub->DrainWorker(context(kOperatorToken).get(), drain, &drained).ok());
    QVERIFY(drained.changed());

    // The restarted process (same id, silent predecessor) registers drained and idles.
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * 2 * kDrainTestWaitMs));
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClient restarted(worker_options(s, "flaky-gpu", "cccc"), runner);
    WorkerThread worker(restarted, stop);
    QVERIFY(wait_until([&] { return worker_row(s, "flaky-gpu").host == "second-host"; }, 5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(4 * kDrainTestWaitMs));  // a few polls
    QVERIFY2(!worker.returned(), "a worker registered while drained exited instead of idling");
    QCOMPARE(worker_row(s, "flaky-gpu").live_lease_id, int64_t{0});
    QCOMPARE(worker_row(s, "flaky-gpu").state, std::string("draining"));

    // ListWorkers shows it (operator role only).
    v1::ListWorkersResponse listed;
    QCOMPARE(s.stub->ListWorkers(context().get(), v1::ListWorkersRequest(), &listed).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY(
        s.stub->ListWorkers(context(kOperatorToken).get(), v1::ListWorkersRequest(), &listed).ok());
    QCOMPARE(listed.workers_size(), 1);
    QCOMPARE(listed.workers(0).worker_id(), std::string("flaky-gpu"));
    QCOMPARE(listed.workers(0).host(), std::string("second-host"));
    QCOMPARE(listed.workers(0).state(), std::string("draining"));
    QVERIFY(listed.workers(0).last_heard_unix_ms() > 0);
    QVERIFY(listed.workers(0).live_lease_id().empty());

    v1::OperatorResponse undrained;
    QVERIFY(s.stub->UndrainWorker(context(kOperatorToken).get(), drain, &undrained).ok());
    QVERIFY(undrained.changed());
    const dipaco::Status result = worker.join(20000);  // max_tasks = 1
    QVERIFY2(result.is_ok(), result.to_string().c_str());
    QCOMPARE(restarted.stats().tasks_completed, uint64_t{1});
    QCOMPARE(worker_row(s, "flaky-gpu").state, std::string("active"));
  }
};

QTEST_GUILESS_MAIN(RpcWorkerIdentityTest)
#include "test_rpc_worker_identity.moc"
