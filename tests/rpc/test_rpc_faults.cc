// Faults with real processes over loopback: `dipaco serve` and `dipaco work --runner fake`
// processes killed with SIGKILL at random points, a coordinator killed and restarted on the
// same database, a worker stopped (SIGSTOP) past its lease deadline, the worker token rotated
// (serve's SIGHUP) while a worker holds only the new one. After each run the
// database must show every task done exactly once: one completed lease and one report per
// module per task, every module at the last version.
#include <QProcess>
#include <QtTest>
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include "rpc_fixture.h"
#include "store/sqlite_db.h"
#include "util/atomic_file.h"

using namespace rpc_test;

namespace {

constexpr uint64_t kOuterSteps = 3;
constexpr int kTasks = 4 * static_cast<int>(kOuterSteps);

// One scalar from the coordinator's database (a fresh connection; the server may be running).
int64_t query(const QTemporaryDir& dir, const std::string& sql) {
  auto db = dipaco::SqliteDb::open(dir.filePath("coordinator.db").toStdString());
  if (!db.is_ok()) return -1;
  auto statement = db->prepare(sql);
  if (!statement.is_ok()) return -1;
  auto row = statement->step();
  if (!row.is_ok() || !*row) return -1;
  return statement->column_int64(0);
}

struct Cluster {
  QTemporaryDir dir;
  std::unique_ptr<QProcess> serve;
  int port = 0;
  std::map<std::string, std::unique_ptr<QProcess>> workers;
  std::map<const QProcess*, std::string> output;  // of processes started with MergedChannels

  QString file(const char* name) const { return dir.filePath(name); }

  bool start_serve(QProcess::ProcessChannelMode mode = QProcess::ForwardedErrorChannel) {
    QFile::remove(file("port"));
    serve = std::make_unique<QProcess>();
    serve->setProcessChannelMode(mode);
    serve->start(
        DIPACO_CLI_PATH,
        {"serve", "--db", file("coordinator.db"), "--address", QString("127.0.0.1:%1").arg(port),
         "--insecure", "--worker-token-file", file("worker.token"), "--operator-token-file",
         file("operator.token"), "--run", file("run.toml"), "--port-file", file("port")});
    if (!serve->waitForStarted(10000)) return false;
    for (int i = 0; i < 300; ++i) {
      std::ifstream in(file("port").toStdString());
      if (in >> port && port > 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void start_worker(const std::string& id, int step_ms, const char* token_file = "worker.token",
                    QProcess::ProcessChannelMode mode = QProcess::ForwardedErrorChannel) {
    auto process = std::make_unique<QProcess>();
    process->setProcessChannelMode(mode);
    process->start(DIPACO_CLI_PATH,
                   {"work", "--address", QString("127.0.0.1:%1").arg(port), "--insecure",
                    "--token-file", file(token_file), "--cache-dir", file(("cache-" + id).c_str()),
                    "--worker-id", QString::fromStdString(id), "--runner", "fake", "--fake-step-ms",
                    QString::number(step_ms)});
    process->waitForStarted(10000);
    workers[id] = std::move(process);
  }

  // Collects the output of a process started with MergedChannels until it contains `text`
  // (true), `timeout_ms` passes or the process ends.
  bool wait_for_output(QProcess& process, const std::string& text, int timeout_ms) {
    std::string& log = output[&process];
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      log += process.readAll().toStdString();
      if (log.find(text) != std::string::npos) return true;
      if (std::chrono::steady_clock::now() >= until || process.state() == QProcess::NotRunning)
        return false;
      process.waitForReadyRead(50);
    }
  }

  bool finished() const {
    return query(dir, "SELECT count(*) FROM runs WHERE state = 'finished'") == 1;
  }

  bool wait_finished(int timeout_ms) const {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < until) {
      if (finished()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  void stop_all() {
    for (auto& [id, process] : workers) {
      if (process->state() == QProcess::NotRunning) continue;
      ::kill(static_cast<pid_t>(process->processId()), SIGCONT);
      process->terminate();
      if (!process->waitForFinished(10000)) process->kill();
      process->waitForFinished(5000);
    }
    if (serve && serve->state() != QProcess::NotRunning) {
      serve->terminate();
      if (!serve->waitForFinished(10000)) serve->kill();
      serve->waitForFinished(5000);
    }
  }

  ~Cluster() { stop_all(); }

  // Every task done once; one report per (task, module); every module at the last version.
  void check_counted_once() const {
    QCOMPARE(query(dir, "SELECT count(*) FROM tasks WHERE state = 'done'"), int64_t{kTasks});
    QCOMPARE(query(dir, "SELECT count(*) FROM leases WHERE state = 'completed'"), int64_t{kTasks});
    QCOMPARE(query(dir, "SELECT count(DISTINCT task) FROM leases WHERE state = 'completed'"),
             int64_t{kTasks});
    QCOMPARE(query(dir, "SELECT count(*) FROM reports"), int64_t{2 * kTasks});
    QCOMPARE(
        query(dir, "SELECT count(*) FROM modules WHERE version = " + std::to_string(kOuterSteps)),
        int64_t{4});
    // The copy aggregator makes every version byte-identical to version 0.
    QCOMPARE(query(dir,
                   "SELECT count(*) FROM module_versions v JOIN module_versions v0 ON "
                   "v0.module = v.module AND v0.version = 0 WHERE v.sha256 != v0.sha256"),
             int64_t{0});
  }
};

}  // namespace

class RpcFaultTest : public QObject {
  Q_OBJECT

 private slots:
  void workersKilledAtRandomPointsCountEachTaskOnce() {
    Cluster c;
    write_run(c.dir, kOuterSteps, /*lease_timeout_ms=*/1500, /*inner_steps=*/4);
    QVERIFY(c.start_serve());
    for (int w = 0; w < 3; ++w) c.start_worker("w" + std::to_string(w), 20);
    std::mt19937 random(20261126);
    int kills = 0;
    for (int round = 0; round < 8 && !c.finished(); ++round) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 400)(random)));
      auto victim = c.workers.begin();
      std::advance(victim, std::uniform_int_distribution<int>(0, 2)(random));
      std::string id = victim->first;
      c.workers[id]->kill();  // SIGKILL
      c.workers[id]->waitForFinished(5000);
      ++kills;
      // Half come back under the same id, half as new workers (their old lease expires at its
      // deadline and the task is requeued). One under the same id is refused (ALREADY_EXISTS)
      // until the killed process has been silent for the presence window (10 s here, longer
      // than this lease timeout): its live lease has usually expired by then.
      std::string next = round % 2 == 0 ? id : id + "-r" + std::to_string(round);
      c.start_worker(next, 20);
      if (next != id) c.workers.erase(id);
    }
    QVERIFY(kills > 0);
    QVERIFY2(c.wait_finished(90000), "the run did not finish within 90 s");
    c.stop_all();
    c.check_counted_once();
  }

  void coordinatorKilledAndRestartedResumesTheRun() {
    Cluster c;
    write_run(c.dir, kOuterSteps, /*lease_timeout_ms=*/3000, /*inner_steps=*/4);
    QVERIFY(c.start_serve());
    for (int w = 0; w < 2; ++w) c.start_worker("w" + std::to_string(w), 30);
    // Kill the coordinator once the first version exists (aggregation under way).
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (query(c.dir, "SELECT count(*) FROM module_versions") <= 4 &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    c.serve->kill();
    c.serve->waitForFinished(5000);
    int64_t versions_at_kill = query(c.dir, "SELECT count(*) FROM module_versions");
    QVERIFY(versions_at_kill > 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // workers back off
    QVERIFY(c.start_serve());                                     // same port, same database
    QVERIFY2(c.wait_finished(90000), "the run did not finish after the restart");
    c.stop_all();
    c.check_counted_once();
  }

  void stalledWorkerIsPreemptedAndTheRunCompletes() {
    Cluster c;
    write_run(c.dir, kOuterSteps, /*lease_timeout_ms=*/800, /*inner_steps=*/4);
    QVERIFY(c.start_serve());
    c.start_worker("stalled", 100);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (query(c.dir,
                 "SELECT count(*) FROM leases l JOIN workers w ON w.id = l.worker "
                 "WHERE w.name = 'stalled' AND l.state = 'live'") < 1 &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pid_t stalled = static_cast<pid_t>(c.workers["stalled"]->processId());
    QCOMPARE(::kill(stalled, SIGSTOP), 0);
    c.start_worker("healthy", 5);
    QVERIFY2(c.wait_finished(90000), "the run did not finish without the stalled worker");
    QVERIFY(query(c.dir,
                  "SELECT count(*) FROM leases l JOIN workers w ON w.id = l.worker "
                  "WHERE w.name = 'stalled' AND l.state = 'expired'") >= 1);
    QCOMPARE(::kill(stalled, SIGCONT), 0);
    c.stop_all();
    QCOMPARE(c.workers["stalled"]->exitStatus(), QProcess::NormalExit);
    c.check_counted_once();
  }

  // A worker token rotated with no stop. The worker already holds the new token, which the
  // coordinator refuses: the worker keeps retrying (it does not exit). The new token is added
  // as a second line of serve's worker token file and serve gets SIGHUP: the worker gets
  // through and the run finishes. A reload from an operator token file without a token is
  // refused and changes nothing. The old line removed and another SIGHUP: the old token is
  // refused, the new one accepted, by the same serve process.
  void workerTokenRotatedWithoutAStop() {
    Cluster c;
    write_run(c.dir, kOuterSteps, /*lease_timeout_ms=*/3000, /*inner_steps=*/4);
    const std::string next = "worker-token-next-9753";
    const std::string worker_file = c.file("worker.token").toStdString();
    const std::string operator_file = c.file("operator.token").toStdString();
    QVERIFY(dipaco::write_file_atomically(c.file("next.token").toStdString(), next + "\n").is_ok());
    QVERIFY(c.start_serve(QProcess::MergedChannels));
    QProcess& serve = *c.serve;
    const pid_t serve_pid = static_cast<pid_t>(serve.processId());
    c.start_worker("rotated", 1, "next.token", QProcess::MergedChannels);
    QProcess& worker = *c.workers["rotated"];
    QVERIFY2(c.wait_for_output(worker, "refused this worker's token", 30000),
             c.output[&worker].c_str());
    QCOMPARE(worker.state(), QProcess::Running);
    QCOMPARE(query(c.dir, "SELECT count(*) FROM tasks WHERE state = 'done'"), int64_t{0});

    QVERIFY(
        dipaco::write_file_atomically(
            worker_file, std::string(kWorkerToken) + "\n# rotation: the next token\n" + next + "\n")
            .is_ok());
    QCOMPARE(::kill(serve_pid, SIGHUP), 0);
    QVERIFY2(
        c.wait_for_output(serve, "tokens reloaded: 2 worker token(s), 1 operator token(s)", 20000),
        c.output[&serve].c_str());

    QVERIFY(dipaco::write_file_atomically(operator_file, "# no token yet\n").is_ok());
    QCOMPARE(::kill(serve_pid, SIGHUP), 0);
    QVERIFY2(c.wait_for_output(serve, "token reload failed, keeping the running tokens", 20000),
             c.output[&serve].c_str());
    QVERIFY2(c.wait_for_output(serve, operator_file + ": the token file is empty", 1000),
             c.output[&serve].c_str());
    QVERIFY(
        dipaco::write_file_atomically(operator_file, std::string(kOperatorToken) + "\n").is_ok());

    QVERIFY2(c.wait_finished(90000), "the run did not finish after the token rotation");
    QCOMPARE(worker.state(), QProcess::Running);

    QVERIFY(dipaco::write_file_atomically(worker_file, next + "\n").is_ok());
    QCOMPARE(::kill(serve_pid, SIGHUP), 0);
    QVERIFY2(
        c.wait_for_output(serve, "tokens reloaded: 1 worker token(s), 1 operator token(s)", 20000),
        c.output[&serve].c_str());
    dipaco::ChannelOptions channel;
    channel.address = "127.0.0.1:" + std::to_string(c.port);
    channel.insecure = true;
    auto made = dipaco::make_channel(channel);
    QVERIFY(made.is_ok());
    auto stub = dipaco::v1::Coordinator::NewStub(*made);
    dipaco::v1::RegisterRequest request;
    request.set_worker_id("after-rotation");
    dipaco::v1::RegisterResponse response;
    QCOMPARE(stub->Register(context(kWorkerToken).get(), request, &response).error_code(),
             grpc::StatusCode::UNAUTHENTICATED);
    QCOMPARE(stub->Register(context(next).get(), request, &response).error_code(),
             grpc::StatusCode::OK);
    QCOMPARE(serve.state(), QProcess::Running);
    c.stop_all();
    c.check_counted_once();
  }
};

QTEST_GUILESS_MAIN(RpcFaultTest)
#include "test_rpc_faults.moc"
