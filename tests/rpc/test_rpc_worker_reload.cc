// SIGHUP config reload of a real `dipaco-worker` process against an in-process coordinator on
// 127.0.0.1: a broken file is refused and the old config kept; a fixed address and token take
// effect without a restart; a changed cache_dir is reported as needing a restart and not used;
// max_tasks lowered while a task runs lets that task finish and push before the worker stops.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QProcess>
#include <QtTest>
#include <chrono>
#include <csignal>
#include <thread>

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

  std::string text() const {
    return "[coordinator]\naddress = \"" + address + "\"\ntoken_file = \"" + token_file +
           "\"\ntls = false\nbackoff_initial_ms = 10\nbackoff_max_ms = 100\n"
           "[worker]\nid = \"reload-worker\"\ncache_dir = \"" +
           cache_dir + "\"\nrunner = \"fake\"\nfake_step_ms = " + std::to_string(fake_step_ms) +
           "\nmax_tasks = " + std::to_string(max_tasks) + "\n";
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

  void reloadLetsTheRunningTaskFinish() {
    Served s;
    QVERIFY(s.start());
    QString config = s.dir.filePath("worker.toml");
    // 4 inner steps of 500 ms: the task runs for 2 s.
    WorkerToml toml{s.server->target(), s.dir.filePath("worker.token").toStdString(),
                    s.dir.filePath("cache").toStdString(), /*fake_step_ms=*/500};
    QVERIFY(write_config(config, toml.text()));
    WorkerProcess worker(config);
    int64_t lease = 0;
    auto until = Clock::now() + std::chrono::seconds(30);
    while (lease == 0 && Clock::now() < until && worker.running()) {
      auto workers = s.coordinator->workers();
      QVERIFY(workers.is_ok());
      for (const auto& w : *workers) {
        if (w.worker_id == "reload-worker") lease = w.live_lease_id;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
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
};

QTEST_GUILESS_MAIN(RpcWorkerReloadTest)
#include "test_rpc_worker_reload.moc"
