// A real `dipaco-worker` process against an in-process coordinator on 127.0.0.1.
// SIGHUP config reload: a broken file is refused and the old config kept; a fixed address and
// token take effect without a restart; a changed cache_dir is reported as needing a restart and
// not used; max_tasks lowered while a task runs lets that task finish and push before the worker
// stops. SIGTERM: the running task may finish within stop_grace_s; past it the lease is handed
// back and the worker exits 0. A token the coordinator refuses does not end the worker: it
// retries, and a fixed token file with a SIGHUP gets it through. --check fails when backend =
// "cuda" finds no usable GPU; config errors (also a missing address or token file) exit 2.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QProcess>
#include <QtTest>
#include <chrono>
#include <csignal>
#include <thread>

#include "rpc/auth.h"
#include "rpc_fixture.h"
#include "test_support.h"

using dipaco::test::contains;
using namespace rpc_test;

namespace {

using Clock = std::chrono::steady_clock;

// A loopback port nobody listens on (bound, read back, released).
int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), size);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct WorkerToml {
  std::string address;
  std::string token_file;
  std::string cache_dir;
  int64_t fake_step_ms = 1;
  int64_t max_tasks = 0;
  std::string more_worker_keys;  // "key = value\n" lines for [worker]

  std::string text() const {
    return "[coordinator]\naddress = \"" + address + "\"\ntoken_file = \"" + token_file +
           "\"\ntls = false\nbackoff_initial_ms = 10\nbackoff_max_ms = 100\n"
           "[worker]\nid = \"reload-worker\"\ncache_dir = \"" +
           cache_dir + "\"\nrunner = \"fake\"\nfake_step_ms = " + std::to_string(fake_step_ms) +
           "\nmax_tasks = " + std::to_string(max_tasks) + "\n" + more_worker_keys;
  }
};

// `dipaco-worker --config FILE`, its merged output collected while waiting.
class WorkerProcess {
 public:
  explicit WorkerProcess(const QString& config) {
    process_.setProcessChannelMode(QProcess::MergedChannels);
    process_.start(DIPACO_WORKER_PATH, {"--config", config});
  }
  ~WorkerProcess() {
    if (process_.state() != QProcess::NotRunning) {
      process_.kill();
      process_.waitForFinished(5000);
    }
  }

  const std::string& log() const { return log_; }
  bool running() const { return process_.state() != QProcess::NotRunning; }
  int exit_code() const { return process_.exitCode(); }
  void send(int signal) { ::kill(static_cast<pid_t>(process_.processId()), signal); }

  // Collects output until it contains `text` (true) or `timeout_ms` passes or the process ends.
  bool wait_for_log(const std::string& text, int timeout_ms) {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!contains(log_, text) && Clock::now() < until && running()) collect();
    collect();
    return contains(log_, text);
  }

  // Collects output until the process ends (true) or `timeout_ms` passes.
  bool wait_for_exit(int timeout_ms) {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (running() && Clock::now() < until) collect();
    collect();
    return !running();
  }

 private:
  void collect() {
    if (running()) process_.waitForReadyRead(50);
    log_ += process_.readAll().toStdString();
  }

  QProcess process_;
  std::string log_;
};

bool write_config(const QString& path, const std::string& text) {
  return dipaco::write_file_atomically(path.toStdString(), text).is_ok();
}

// The lease the coordinator has given "reload-worker" (0 when none came within 30 s).
int64_t wait_for_live_lease(Served& s, const WorkerProcess& worker) {
  auto until = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < until && worker.running()) {
    auto workers = s.coordinator->workers();
    if (!workers.is_ok()) return 0;
    for (const auto& w : *workers) {
      if (w.worker_id == "reload-worker" && w.live_lease_id != 0) return w.live_lease_id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// `dipaco-worker --check --config FILE`: exit code and output.
struct CheckResult {
  int exit_code = -1;
  std::string output;
};

CheckResult run_check(const QString& config) {
  QProcess check;
  check.setProcessChannelMode(QProcess::MergedChannels);
  check.start(DIPACO_WORKER_PATH, {"--check", "--config", config});
  if (!check.waitForFinished(60000)) return {-1, "--check did not finish within 60 s"};
  return {check.exitCode(), check.readAll().toStdString()};
}

// `dipaco-worker ARGS` run to its end: exit code and output.
CheckResult run_worker(const QStringList& args) {
  QProcess worker;
  worker.setProcessChannelMode(QProcess::MergedChannels);
  worker.start(DIPACO_WORKER_PATH, args);
  if (!worker.waitForFinished(60000)) return {-1, "dipaco-worker did not finish within 60 s"};
  return {worker.exitCode(), worker.readAll().toStdString()};
}

// A [coordinator] section that passes --check: an address and a readable token file in `dir`.
std::string coordinator_section(const QTemporaryDir& dir) {
  std::string token = dir.filePath("worker.token").toStdString();
  if (!dipaco::write_file_atomically(token, "worker-token\n").is_ok()) return "";
  return "[coordinator]\naddress = \"127.0.0.1:1\"\ntoken_file = \"" + token + "\"\n";
}

}  // namespace

class RpcWorkerReloadTest : public QObject {
  Q_OBJECT

 private slots:
  void reloadFixesTheConnectionAndKeepsRestartKeys() {
    Served s;
    QVERIFY(s.start());
    QString config = s.dir.filePath("worker.toml");
    QVERIFY(dipaco::write_file_atomically(s.dir.filePath("wrong.token").toStdString(),
                                          "not-the-worker-token\n"));
    WorkerToml toml{"127.0.0.1:" + std::to_string(unused_port()),
                    s.dir.filePath("wrong.token").toStdString(),
                    s.dir.filePath("cache-a").toStdString()};
    QVERIFY(write_config(config, toml.text()));
    WorkerProcess worker(config);
    QVERIFY2(worker.wait_for_log("SIGHUP reloads the config", 20000), worker.log().c_str());
    QVERIFY2(worker.wait_for_log("retrying in", 20000), worker.log().c_str());
    // The start-time check report reaches the pipe while the worker runs (stdout line-buffered),
    // with the token's fingerprint for comparing with the coordinator's log.
    QVERIFY2(worker.log().find("check: ok") != std::string::npos, worker.log().c_str());
    QVERIFY2(worker.log().find("token: sha256 " + dipaco::token_fingerprint(
                                                      "not-the-worker-token")) != std::string::npos,
             worker.log().c_str());

    // A file that does not parse: refused, the worker keeps running on the old config.
    QVERIFY(write_config(config, "[coordinator]\naddress = \n"));
    worker.send(SIGHUP);
    QVERIFY2(worker.wait_for_log("config reload failed, keeping the running config", 20000),
             worker.log().c_str());
    QVERIFY2(worker.wait_for_log("worker.toml:2:", 1000), worker.log().c_str());
    QVERIFY(worker.running());

    // The right address and token (live), another cache dir (needs a restart), 2 tasks.
    toml.address = s.server->target();
    toml.token_file = s.dir.filePath("worker.token").toStdString();
    toml.cache_dir = s.dir.filePath("cache-b").toStdString();
    toml.max_tasks = 2;
    QVERIFY(write_config(config, toml.text()));
    worker.send(SIGHUP);
    QVERIFY2(worker.wait_for_exit(60000), worker.log().c_str());
    QVERIFY2(worker.exit_code() == 0, worker.log().c_str());
    QVERIFY2(contains(worker.log(), "[coordinator] address: \"127.0.0.1:"), worker.log().c_str());
    QVERIFY2(
        contains(worker.log(), "[worker] cache_dir: \"" + s.dir.filePath("cache-a").toStdString() +
                                   "\" -> \"" + toml.cache_dir + "\" (needs a restart"),
        worker.log().c_str());
    auto status = s.coordinator->run_status(s.run_id);
    QVERIFY(status.is_ok());
    QCOMPARE(status->tasks_done, int64_t{2});
    // The running cache dir was kept.
    QVERIFY(QDir(s.dir.filePath("cache-a/modules")).exists());
    QVERIFY(!QDir(s.dir.filePath("cache-b")).exists());
  }

  // A token rotated in the worker's file before the coordinator knows it: the worker logs that
  // the token was refused and keeps running; the file fixed in place and a SIGHUP, it connects
  // again, completes its task and exits 0.
  void refusedTokenWaitsForAFixedTokenFile() {
    Served s;
    QVERIFY(s.start());
    QString config = s.dir.filePath("worker.toml");
    const std::string token_file = s.dir.filePath("rotated.token").toStdString();
    QVERIFY(dipaco::write_file_atomically(token_file, "worker-token-not-yet-known\n"));
    WorkerToml toml{s.server->target(), token_file, s.dir.filePath("cache").toStdString()};
    toml.max_tasks = 1;
    QVERIFY(write_config(config, toml.text()));
    WorkerProcess worker(config);
    QVERIFY2(worker.wait_for_log("refused this worker's token", 20000), worker.log().c_str());
    QVERIFY2(worker.wait_for_log("retrying in", 1000), worker.log().c_str());
    QVERIFY(worker.running());

    QVERIFY(dipaco::write_file_atomically(token_file, std::string(kWorkerToken) + "\n"));
    worker.send(SIGHUP);
    QVERIFY2(worker.wait_for_exit(60000), worker.log().c_str());
    QVERIFY2(worker.exit_code() == 0, worker.log().c_str());
    QVERIFY2(contains(worker.log(), "[coordinator] token_file contents"), worker.log().c_str());
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
  }

  void reloadLetsTheRunningTaskFinish() {
    Served s;
    QVERIFY(s.start());
    QString config = s.dir.filePath("worker.toml");
    // 4 inner steps of 500 ms: the task runs for 2 s.
    WorkerToml toml{s.server->target(), s.dir.filePath("worker.token").toStdString(),
                    s.dir.filePath("cache").toStdString(), /*fake_step_ms=*/500};
    QVERIFY(write_config(config, toml.text()));
    WorkerProcess worker(config);
    const int64_t lease = wait_for_live_lease(s, worker);
    QVERIFY2(lease != 0, worker.log().c_str());

    toml.max_tasks = 1;
    QVERIFY(write_config(config, toml.text()));
    worker.send(SIGHUP);
    QVERIFY2(worker.wait_for_exit(60000), worker.log().c_str());
    QVERIFY2(worker.exit_code() == 0, worker.log().c_str());
    QVERIFY2(contains(worker.log(),
                      "[worker] max_tasks: 0 -> 1 (applies when the worker next "
                      "connects"),
             worker.log().c_str());
    auto summary = s.coordinator->lease_summary(lease);
    QVERIFY(summary.is_ok() && summary->has_value());
    QCOMPARE((*summary)->state, std::string("completed"));
    auto status = s.coordinator->run_status(s.run_id);
    QVERIFY(status.is_ok());
    QCOMPARE(status->tasks_done, int64_t{1});
    QVERIFY2(!contains(worker.log(), "handed back"), worker.log().c_str());
  }

  // One SIGTERM while a task runs. A task longer than stop_grace_s (4 inner steps of 1 s against
  // 0.5 s) has its lease handed back and the worker exits 0 instead of training on until an
  // orchestrator's SIGKILL; a task that ends within it (4 steps of 300 ms against 60 s) is
  // pushed first.
  void sigtermStopsWithinTheGrace_data() {
    QTest::addColumn<int>("step_ms");
    QTest::addColumn<QString>("grace_s");
    QTest::addColumn<bool>("finishes");
    QTest::newRow("task longer than the grace") << 1000 << "0.5" << false;
    QTest::newRow("task within the grace") << 300 << "60" << true;
  }

  void sigtermStopsWithinTheGrace() {
    QFETCH(int, step_ms);
    QFETCH(QString, grace_s);
    QFETCH(bool, finishes);
    Served s;
    QVERIFY(s.start());
    QString config = s.dir.filePath("worker.toml");
    WorkerToml toml{s.server->target(), s.dir.filePath("worker.token").toStdString(),
                    s.dir.filePath("cache").toStdString(), step_ms};
    const std::string grace = grace_s.toStdString();
    toml.more_worker_keys = "stop_grace_s = " + grace + "\n";
    QVERIFY(write_config(config, toml.text()));
    WorkerProcess worker(config);
    const int64_t lease = wait_for_live_lease(s, worker);
    QVERIFY2(lease != 0, worker.log().c_str());
    worker.send(SIGTERM);
    QVERIFY2(worker.wait_for_exit(30000), worker.log().c_str());
    QVERIFY2(worker.exit_code() == 0, worker.log().c_str());
    const std::string id = std::to_string(lease);
    QVERIFY2(contains(worker.log(), "stopping: finishing lease " + id + " (grace " + grace + " s"),
             worker.log().c_str());
    auto summary = s.coordinator->lease_summary(lease);
    QVERIFY(summary.is_ok() && summary->has_value());
    auto status = s.coordinator->run_status(s.run_id);
    QVERIFY(status.is_ok());
    QCOMPARE(status->tasks_leased, int64_t{0});
    if (finishes) {
      QCOMPARE((*summary)->state, std::string("completed"));
      QCOMPARE(status->tasks_done, int64_t{1});
      QVERIFY2(!contains(worker.log(), "handed back"), worker.log().c_str());
    } else {
      QVERIFY2((*summary)->state != "live" && (*summary)->state != "completed",
               (*summary)->state.c_str());
      QCOMPARE(status->tasks_done, int64_t{0});
      QVERIFY2(contains(worker.log(),
                        "lease " + id + " did not finish within the " + grace + " s grace"),
               worker.log().c_str());
      QVERIFY2(contains(worker.log(), "lease " + id + " handed back"), worker.log().c_str());
    }
  }

  // backend = "cuda" on a host without a usable GPU fails --check (the health check of the
  // Docker image, and the worker's own start), also with fallback_to_cpu; "auto" only warns.
  void checkFailsWhenTheConfiguredGpuIsMissing() {
    QTemporaryDir dir;
    const QString config = dir.filePath("worker.toml");
    const std::string coordinator = coordinator_section(dir);
    QVERIFY(!coordinator.empty());
    QVERIFY(write_config(config, coordinator + "[worker]\nbackend = \"auto\"\n"));
    CheckResult check = run_check(config);
    if (!contains(check.output, "cuda: 0 device(s)")) QSKIP("this host has a GPU");
    QVERIFY2(check.exit_code == 0, check.output.c_str());
    QVERIFY2(contains(check.output, "warning: backend = \"auto\" trains on the CPU"),
             check.output.c_str());
    // fallback_to_cpu: the worker itself would run, on the CPU; the check warns and fails.
    QVERIFY(write_config(config,
                         coordinator + "[worker]\nbackend = \"cuda\"\nfallback_to_cpu = true\n"));
    check = run_check(config);
    QVERIFY2(check.exit_code == 1, check.output.c_str());
    QVERIFY2(contains(check.output, "warning: "), check.output.c_str());
    QVERIFY2(contains(check.output, "error: [worker] backend = \"cuda\" but no GPU is usable"),
             check.output.c_str());
    QVERIFY2(contains(check.output, "check: FAILED"), check.output.c_str());
    // Without it the backend itself refuses.
    QVERIFY(write_config(config, coordinator + "[worker]\nbackend = \"cuda\"\n"));
    check = run_check(config);
    QVERIFY2(check.exit_code == 1, check.output.c_str());
    QVERIFY2(contains(check.output, "check: FAILED"), check.output.c_str());
    // The service makes the same check at start, and exits 1, which the unit restarts (the GPU
    // may come back), before it connects to anything.
    CheckResult started = run_worker({"--config", config});
    QVERIFY2(started.exit_code == 1, started.output.c_str());
    QVERIFY2(contains(started.output, "check: FAILED"), started.output.c_str());
    QVERIFY2(!contains(started.output, "started (pid"), started.output.c_str());
  }

  // Every config or usage error exits 2, which the systemd unit's RestartPreventExitStatus=2
  // does not restart; --check fails on a config the worker could not start with.
  void configErrorsExitTwo() {
    QTemporaryDir dir;
    const QString config = dir.filePath("worker.toml");
    const std::string coordinator = coordinator_section(dir);
    QVERIFY(!coordinator.empty());
    const std::string fake = "[worker]\nrunner = \"fake\"\nbackend = \"cpu\"\n";

    QVERIFY(write_config(config, coordinator + fake));
    CheckResult result = run_check(config);
    QVERIFY2(result.exit_code == 0, result.output.c_str());
    QVERIFY2(contains(result.output, "check: ok"), result.output.c_str());

    // The packaged config's empty address: --check fails, and so does a start.
    QVERIFY(write_config(config, "[coordinator]\naddress = \"\"\ntoken_file = \"" +
                                     dir.filePath("worker.token").toStdString() + "\"\n" + fake));
    result = run_check(config);
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "error: no [coordinator] address"), result.output.c_str());
    QVERIFY2(contains(result.output, "check: FAILED"), result.output.c_str());
    result = run_worker({"--config", config});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "no [coordinator] address"), result.output.c_str());

    // No token file at all, and a token file that is a directory.
    QVERIFY(write_config(config, "[coordinator]\naddress = \"127.0.0.1:1\"\n" + fake));
    result = run_check(config);
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "error: no [coordinator] token_file"), result.output.c_str());
    result = run_worker({"--config", config});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "error: no [coordinator] token_file"), result.output.c_str());
    QVERIFY(write_config(config, "[coordinator]\naddress = \"127.0.0.1:1\"\ntoken_file = \"" +
                                     dir.path().toStdString() + "\"\n" + fake));
    result = run_check(config);
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "is a directory"), result.output.c_str());
    result = run_worker({"--config", config});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    QVERIFY2(contains(result.output, "is a directory"), result.output.c_str());

    // A config that does not load, a missing --config file, a bad flag.
    QVERIFY(write_config(config, coordinator + "[worker]\nbackend = \"gpu\"\n"));
    result = run_worker({"--config", config});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    result = run_check(config);
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    result = run_worker({"--config", dir.filePath("missing.toml")});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
    result = run_worker({"--no-such-flag"});
    QVERIFY2(result.exit_code == 2, result.output.c_str());
  }
};

QTEST_GUILESS_MAIN(RpcWorkerReloadTest)
#include "test_rpc_worker_reload.moc"
