// WorkerClient with FakeTaskRunner against an in-process coordinator over loopback: whole runs,
// the module cache, handing a lease back on a hard stop, backing off after failed tasks, the
// stall watchdog, a refused token retried (never the end of the worker), and TLS / mTLS
// transports (certificates made with the openssl tool at test
// time).
#include <QProcess>
#include <QStandardPaths>
#include <QtTest>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "fake_task_runner.h"
#include "rpc_fixture.h"
#include "test_support.h"
#include "worker_client.h"
#include "worker_reload.h"

using dipaco::test::contains;
using namespace rpc_test;
namespace v1 = dipaco::v1;

namespace {

dipaco::WorkerClientOptions worker_options(Served& s, const std::string& id) {
  dipaco::WorkerClientOptions options;
  options.channel.address = s.server->target();
  options.channel.insecure = true;
  options.token = kWorkerToken;
  options.worker_id = id;
  options.host = "test";
  options.cache_dir = s.dir.filePath(QString::fromStdString("cache-" + id)).toStdString();
  options.push_chunk_bytes = 1500;  // several chunks per module
  options.backoff_initial_ms = 10;
  options.backoff_max_ms = 100;
  return options;
}

// Polls aggregation until the run finishes or `timeout_ms` passes.
bool run_to_end(Served& s, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    s.server->poll_once();
    auto status = s.coordinator->run_status(s.run_id);
    if (status.is_ok() && status->state == "finished") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The live lease of worker `id` on the coordinator (0 = none).
int64_t live_lease_of(Served& s, const std::string& id) {
  auto workers = s.coordinator->workers();
  if (!workers.is_ok()) return 0;
  for (const auto& w : *workers) {
    if (w.worker_id == id) return w.live_lease_id;
  }
  return 0;
}

// A worker whose token the coordinator refuses: it reads `token_file` again the way a SIGHUP
// reload does (read_worker_credentials) and counts the reads; its waits are short.
dipaco::WorkerClientOptions refused_worker_options(Served& s, const std::string& id,
                                                   const std::string& token_file,
                                                   std::atomic<int>* rereads) {
  dipaco::WorkerClientOptions options = worker_options(s, id);
  dipaco::WorkerConfig config;
  config.token_file = token_file;
  auto credentials = dipaco::read_worker_credentials(config);
  options.token = credentials.is_ok() ? credentials->token : "";
  options.auth_backoff_initial_ms = 10;
  options.auth_backoff_max_ms = 50;
  options.reread_token = [config, rereads]() -> dipaco::Result<std::string> {
    ++*rereads;
    DIPACO_ASSIGN_OR_RETURN(dipaco::WorkerCredentials read,
                            dipaco::read_worker_credentials(config));
    return read.token;
  };
  return options;
}

// A WorkerClient whose run() goes on a thread of its own.
class WorkerThread {
 public:
  WorkerThread(const dipaco::WorkerClientOptions& options, dipaco::TaskRunner& runner)
      : client_(options, runner), thread_([this] {
          run_ok_ = client_.run(stop).is_ok();
          returned_ = true;
        }) {}
  ~WorkerThread() {
    stop = 2;
    if (thread_.joinable()) thread_.join();
  }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  bool returned() const { return returned_.load(); }
  // Waits for run() to return (OK: true); past `timeout_ms` stops it hard (false).
  bool wait_returned_ok(int timeout_ms) {
    const bool done = wait_until([&] { return returned_.load(); }, timeout_ms);
    if (!done) stop = 2;
    thread_.join();
    return done && run_ok_;
  }
  // After wait_returned_ok.
  const dipaco::WorkerStats& stats() const { return client_.stats(); }

  std::atomic<int> stop{0};

 private:
  dipaco::WorkerClient client_;
  std::atomic<bool> returned_{false};
  std::atomic<bool> run_ok_{false};
  std::thread thread_;  // last: starts once the members above exist
};

// Self-signed certificate for CN=localhost (and IP 127.0.0.1) via the openssl tool.
bool make_cert(const QString& dir, const QString& name) {
  QProcess openssl;
  openssl.start("openssl",
                {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
                 "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", dir + "/" + name + ".key",
                 "-out", dir + "/" + name + ".pem"});
  return openssl.waitForFinished(30000) && openssl.exitCode() == 0;
}

grpc::Status register_over(const dipaco::ChannelOptions& channel) {
  auto made = dipaco::make_channel(channel);
  if (!made.is_ok()) return {grpc::StatusCode::INVALID_ARGUMENT, made.status().message()};
  auto stub = v1::Coordinator::NewStub(*made);
  v1::RegisterRequest request;
  request.set_worker_id("tls-worker");
  v1::RegisterResponse response;
  auto c = context();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  return stub->Register(c.get(), request, &response);
}

// The coordinator's chunk files, with one write that fails (an I/O error on the coordinator's
// disk: the push stream breaks there, after the chunks before it were accepted; 0 = none), and
// writes that take `write_ms` each (a slow link or disk).
class FaultyGradientStore : public dipaco::OuterGradientStore {
 public:
  // keep_failing: every write from failing_write on fails (a disk that stays full).
  FaultyGradientStore(std::string dir, uint64_t failing_write, int64_t write_ms = 0,
                      bool keep_failing = false)
      : files_(std::move(dir)),
        failing_write_(failing_write),
        write_ms_(write_ms),
        keep_failing_(keep_failing) {}
  dipaco::Result<std::string> write_chunk(int64_t run_id, int64_t lease_id, uint32_t module_id,
                                          uint64_t sequence, std::string_view bytes) override {
    const uint64_t call = ++calls_;
    if (call == failing_write_ || (keep_failing_ && failing_write_ > 0 && call > failing_write_))
      return dipaco::io_error("injected: disk write failed");
    std::this_thread::sleep_for(std::chrono::milliseconds(write_ms_));
    ++written_;
    return files_.write_chunk(run_id, lease_id, module_id, sequence, bytes);
  }
  dipaco::Result<std::string> read_all(const std::vector<std::string>& refs) override {
    return files_.read_all(refs);
  }
  void remove(const std::vector<std::string>& refs) override { files_.remove(refs); }
  uint64_t written() const { return written_.load(); }  // chunks stored

 private:
  dipaco::OuterGradientFiles files_;
  uint64_t failing_write_;  // 1-based
  int64_t write_ms_;
  bool keep_failing_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> written_{0};
};

// Module id -> versions of it in a worker's cache (whole versions, no partial downloads).
std::map<uint32_t, std::vector<uint64_t>> cached_versions(const std::string& modules_dir) {
  std::map<uint32_t, std::vector<uint64_t>> versions;
  for (const auto& entry : std::filesystem::directory_iterator(modules_dir)) {
    unsigned module = 0;
    unsigned long long version = 0;
    char rest = 0;
    const std::string name = entry.path().filename().string();
    if (std::sscanf(name.c_str(), "run-%*[0-9].module-%u.v-%llu%c", &module, &version, &rest) == 2)
      versions[module].push_back(version);
  }
  return versions;
}

// Writes a small file at `path`, creating its directory.
bool put_file(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  return !ec && dipaco::write_file_atomically(path.string(), "cached").is_ok();
}

// The names in `dir` that start with `prefix`.
std::vector<std::string> names_starting(const std::filesystem::path& dir,
                                        const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(prefix)) names.push_back(name);
  }
  return names;
}

}  // namespace

class RpcWorkerTest : public QObject {
  Q_OBJECT

 private slots:
  void fourWorkersFinishARun() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/3));
    dipaco::FakeTaskRunner runner(1);
    std::atomic<int> stop{0};
    std::vector<std::unique_ptr<dipaco::WorkerClient>> workers;
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w)
      workers.push_back(std::make_unique<dipaco::WorkerClient>(
          worker_options(s, "w" + std::to_string(w)), runner));
    for (auto& worker : workers)
      threads.emplace_back([&, client = worker.get()] { QVERIFY(client->run(stop).is_ok()); });
    bool finished = run_to_end(s, 60000);
    stop = 1;
    for (auto& thread : threads) thread.join();
    QVERIFY(finished);
    uint64_t completed = 0, down = 0;
    for (auto& worker : workers) {
      completed += worker->stats().tasks_completed;
      down += worker->stats().bytes_down;
    }
    auto status = s.coordinator->run_status(s.run_id);
    QCOMPARE(status->tasks_done, int64_t{12});
    QCOMPARE(completed, uint64_t{12});
    for (const auto& [module, version] : status->module_versions) QCOMPARE(version, uint64_t{3});
    QVERIFY(down > 0);
    // Each worker cached each (module, version) it used once.
    for (int w = 0; w < 4; ++w) {
      std::string cache = s.dir.filePath(QString("cache-w%1/modules").arg(w)).toStdString();
      if (!std::filesystem::exists(cache)) continue;
      for (const auto& entry : std::filesystem::directory_iterator(cache))
        QVERIFY2(entry.path().extension() != ".part", entry.path().c_str());
    }
  }

  void hardStopHandsTheLeaseBack() {
    Served s;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner slow(200);  // 4 inner steps of 200 ms
    std::atomic<int> stop{0};
    dipaco::WorkerClient worker(worker_options(s, "leaver"), slow);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (s.coordinator->run_status(s.run_id)->tasks_leased == 0 &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_leased, int64_t{1});
    stop = 2;
    thread.join();
    auto status = s.coordinator->run_status(s.run_id);
    QCOMPARE(status->tasks_leased, int64_t{0});
    QCOMPARE(status->tasks_queued, int64_t{4});
    QCOMPARE(status->tasks_done, int64_t{0});
    QCOMPARE(worker.stats().tasks_lost, uint64_t{1});
  }

  // A runner that fails every task (a broken GPU): the worker hands each lease back and waits
  // longer and longer before the next one instead of leasing again at once, and keeps running.
  void failingRunnerBacksOff() {
    Served s;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner broken(0, {.fail_tasks = 1000000});
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "broken");
    options.backoff_initial_ms = 50;  // waits of at least 25, 50, then 100 ms each
    options.backoff_max_ms = 200;
    dipaco::WorkerClient worker(options, broken);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    QVERIFY(wait_until([&] { return broken.runs() >= 1; }, 20000));
    const auto start = std::chrono::steady_clock::now();
    const uint64_t runs_at_start = broken.runs();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const uint64_t runs = broken.runs() - runs_at_start;
    const auto window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count();
    stop = 2;
    thread.join();
    // The waits alone allow at most 2 + window / 100 ms leases in the window; leasing again at
    // once gave hundreds.
    const uint64_t bound = 2 + static_cast<uint64_t>(window_ms) / 100;
    qInfo("%llu failed tasks in %lld ms (bound %llu)", static_cast<unsigned long long>(runs),
          static_cast<long long>(window_ms), static_cast<unsigned long long>(bound));
    QVERIFY2(runs <= bound, std::to_string(runs).c_str());
    QVERIFY2(runs >= 1, "the worker stopped leasing after failed tasks");
    QCOMPARE(worker.stats().tasks_completed, uint64_t{0});
    // The stop can land between the last run's failure and its accounting: that run then ends
    // as cancelled (lost, handed back) rather than failed.
    const uint64_t failed = worker.stats().tasks_failed;
    QVERIFY2(failed == broken.runs() || failed + 1 == broken.runs(),
             qPrintable(QString("%1 failed of %2 runs").arg(failed).arg(broken.runs())));
    QCOMPARE(worker.stats().tasks_lost, broken.runs());
    auto status = s.coordinator->run_status(s.run_id);
    QCOMPARE(status->tasks_leased, int64_t{0});  // every failed lease was handed back
    QCOMPARE(status->tasks_done, int64_t{0});
  }

  // Once the runner works again (here after 3 failures) the worker completes tasks.
  void workerRecoversAfterFailedTasks() {
    Served s;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner flaky(0, {.fail_tasks = 3});
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "flaky");
    options.max_tasks = 2;
    dipaco::WorkerClient worker(options, flaky);
    QVERIFY(worker.run(stop).is_ok());  // returns after max_tasks
    QCOMPARE(worker.stats().tasks_failed, uint64_t{3});
    QCOMPARE(worker.stats().tasks_completed, uint64_t{2});
    QCOMPARE(flaky.runs(), uint64_t{5});
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{2});
  }

  // A runner that hangs (no inner step, no activity): the watchdog gives the lease back long
  // before the coordinator's lease timeout (60 s here) would, although heartbeats kept it alive.
  void stalledRunnerHandsItsLeaseBack() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/60000));
    dipaco::FakeTaskRunner hung(0, {.hang = true});
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "hung");
    options.stall_timeout_ms = 300;
    options.backoff_initial_ms = 60000;  // no second lease while the test looks
    options.backoff_max_ms = 60000;
    dipaco::WorkerClient worker(options, hung);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    int64_t lease = 0;
    QVERIFY(wait_until([&] { return (lease = live_lease_of(s, "hung")) != 0; }, 20000));
    const bool handed_back = wait_until([&] { return live_lease_of(s, "hung") == 0; }, 20000);
    stop = 2;
    thread.join();
    QVERIFY(handed_back);
    auto summary = s.coordinator->lease_summary(lease);
    QVERIFY(summary.is_ok() && summary->has_value());
    QVERIFY2((*summary)->state != "live" && (*summary)->state != "completed",
             (*summary)->state.c_str());
    QCOMPARE(hung.runs(), uint64_t{1});
    QCOMPARE(worker.stats().tasks_failed, uint64_t{1});
    QCOMPARE(worker.stats().tasks_lost, uint64_t{1});
    auto status = s.coordinator->run_status(s.run_id);
    QCOMPARE(status->tasks_leased, int64_t{0});
    QCOMPARE(status->tasks_queued, int64_t{4});
  }

  // Slow inner steps, each shorter than the stall timeout, are progress: a task of 4 steps of
  // 150 ms (600 ms in all) completes under a 400 ms watchdog.
  void slowStepsAreNotAStall() {
    Served s;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner slow(150);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "slow");
    options.stall_timeout_ms = 400;
    options.max_tasks = 1;
    dipaco::WorkerClient worker(options, slow);
    QVERIFY(worker.run(stop).is_ok());
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    QCOMPARE(worker.stats().tasks_failed, uint64_t{0});
    QCOMPARE(slow.runs(), uint64_t{1});
  }

  // A push stream that breaks after 3 of its 8 chunks were accepted: the retry asks the
  // coordinator what it holds and sends only the other 5; the task completes and the
  // coordinator stored each chunk once.
  void brokenPushResumesWhereTheCoordinatorStopped() {
    Served s;
    auto store = std::make_shared<FaultyGradientStore>(s.dir.path().toStdString(),
                                                       /*failing_write=*/4);
    s.gradient_store = store;
    QVERIFY(s.start());
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "resumer");
    options.max_tasks = 1;
    dipaco::WorkerClient worker(options, runner);
    QVERIFY(worker.run(stop).is_ok());
    // 2 modules of 4 * 3 + 5000 bytes in chunks of 1500: 4 chunks each.
    const uint64_t chunks = 8;
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    QCOMPARE(worker.stats().tasks_lost, uint64_t{0});
    QCOMPARE(worker.stats().push_retries, uint64_t{1});
    QCOMPARE(worker.stats().push_chunks_skipped, uint64_t{3});
    QCOMPARE(store->written(), chunks);
    // The first stream wrote at most all 8 chunks, the retry exactly the 5 missing ones.
    QVERIFY2(worker.stats().push_chunks_sent >= 4 + 5 && worker.stats().push_chunks_sent <= 8 + 5,
             std::to_string(worker.stats().push_chunks_sent).c_str());
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
  }

  // A coordinator that answers but cannot store the push (its disk stays full) does not keep the
  // worker retrying while the heartbeats keep the lease alive: after 20 attempts in a row
  // without a new chunk held the push gives up, and the worker goes on to its next lease.
  void pushGivesUpWhenTheCoordinatorKeepsFailing() {
    Served s;
    auto store = std::make_shared<FaultyGradientStore>(s.dir.path().toStdString(),
                                                       /*failing_write=*/4, /*write_ms=*/0,
                                                       /*keep_failing=*/true);
    s.gradient_store = store;
    QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/30000));
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "disk-full");
    options.backoff_initial_ms = 1;
    options.backoff_max_ms = 20;
    dipaco::WorkerClient worker(options, runner);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    // The same lease comes back to the same worker, which trains it again: a second run means
    // the first push gave up.
    const bool gave_up = wait_until([&] { return runner.runs() >= 2; }, 20000);
    stop = 2;
    thread.join();
    QVERIFY2(gave_up, "the push kept retrying against a coordinator that kept failing");
    QVERIFY(worker.stats().tasks_lost >= 1);
    QCOMPARE(worker.stats().tasks_completed, uint64_t{0});
    QVERIFY2(worker.stats().push_retries >= 19,
             std::to_string(worker.stats().push_retries).c_str());
  }

  // A push whose 8 chunks take 300 ms each to store (2.4 s) and a 2 s rpc_timeout_ms: at a
  // floor of 2000 bytes/s the stream's deadline grows by 5 s for its ~10 KB and one attempt
  // gets through. At a floor that adds nothing the first stream hits its deadline part-way;
  // the retry sends only the chunks the coordinator had not stored, and completes.
  void pushDeadlineGrowsWithItsBytes() {
    for (const bool scaled : {true, false}) {
      Served s;
      auto store = std::make_shared<FaultyGradientStore>(s.dir.path().toStdString(),
                                                         /*failing_write=*/0, /*write_ms=*/300);
      s.gradient_store = store;
      QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/30000));
      dipaco::FakeTaskRunner runner(0);
      std::atomic<int> stop{0};
      dipaco::WorkerClientOptions options = worker_options(s, "slow-link");
      options.max_tasks = 1;
      options.rpc_timeout_ms = 2000;
      options.push_min_bytes_per_second = scaled ? 2000 : uint64_t{1} << 40;
      dipaco::WorkerClient worker(options, runner);
      QVERIFY(worker.run(stop).is_ok());
      QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
      QCOMPARE(store->written(), uint64_t{8});
      if (scaled) {
        QCOMPARE(worker.stats().push_retries, uint64_t{0});
        QCOMPARE(worker.stats().push_chunks_sent, uint64_t{8});
      } else {
        QVERIFY(worker.stats().push_retries >= 1);
        QVERIFY2(worker.stats().push_chunks_skipped >= 1,
                 std::to_string(worker.stats().push_chunks_skipped).c_str());
      }
    }
  }

  // The coordinator goes away while the worker trains and comes back ~2 s after the worker
  // began to push: far more than the 20 attempts the push used to have at these backoffs (10 to
  // 20 ms), far less than the 10 s lease. The push keeps trying until the lease's deadline, so
  // the finished task is not lost.
  void pushOutlastsACoordinatorRestart() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/10000));
    dipaco::FakeTaskRunner runner(100);  // 4 inner steps of 100 ms
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "patient");
    options.backoff_max_ms = 20;
    options.max_tasks = 1;
    dipaco::WorkerClient worker(options, runner);
    std::atomic<bool> returned{false};
    std::thread thread([&] {
      QVERIFY(worker.run(stop).is_ok());
      returned = true;
    });
    QVERIFY(wait_until([&] { return runner.runs() >= 1; }, 20000));  // inputs fetched
    const std::string address = s.server->target();
    s.server.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(2400));
    QVERIFY(s.start_server(address));
    const bool done = wait_until([&] { return returned.load(); }, 20000);
    if (!done) stop = 2;
    thread.join();
    QVERIFY(done);
    qInfo("push retries while the coordinator was away: %llu",
          static_cast<unsigned long long>(worker.stats().push_retries));
    QVERIFY2(worker.stats().push_retries > 20, std::to_string(worker.stats().push_retries).c_str());
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    QCOMPARE(worker.stats().tasks_lost, uint64_t{0});
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
  }

  // A coordinator that does not come back: the push gives up once the lease's deadline (1.5 s
  // after the lease; no heartbeat moved it) has passed, also under a graceful stop, and the
  // worker returns.
  void pushGivesUpAtTheLeaseDeadline() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/1500));
    dipaco::FakeTaskRunner runner(50);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "orphan");
    options.backoff_max_ms = 50;
    dipaco::WorkerClient worker(options, runner);
    std::atomic<bool> returned{false};
    std::thread thread([&] {
      QVERIFY(worker.run(stop).is_ok());
      returned = true;
    });
    QVERIFY(wait_until([&] { return runner.runs() >= 1; }, 20000));
    s.server.reset();
    stop = 1;  // finish the task (push included), then return
    const bool done = wait_until([&] { return returned.load(); }, 20000);
    if (!done) stop = 2;
    thread.join();
    QVERIFY2(done, "the push kept retrying past the lease's deadline");
    QCOMPARE(worker.stats().tasks_completed, uint64_t{0});
    QCOMPARE(worker.stats().tasks_lost, uint64_t{1});
    QVERIFY(worker.stats().push_retries >= 1);
  }

  // A token the coordinator does not know (rotated on the worker first): the worker does not
  // return; it reads its token file again after each refusal and retries, and registers and
  // completes a task once the file holds a token the coordinator accepts.
  void refusedTokenIsRetriedUntilTheTokenFileIsFixed() {
    Served s;
    QVERIFY(s.start());
    const std::string token_file = s.dir.filePath("rotated.token").toStdString();
    QVERIFY(dipaco::write_file_atomically(token_file, "# rotated too early\nworker-token-next\n")
                .is_ok());
    std::atomic<int> rereads{0};
    dipaco::WorkerClientOptions options =
        refused_worker_options(s, "rotated", token_file, &rereads);
    QCOMPARE(options.token, std::string("worker-token-next"));
    options.max_tasks = 1;
    dipaco::FakeTaskRunner runner(0);
    WorkerThread worker(options, runner);
    QVERIFY2(wait_until([&] { return rereads.load() >= 5; }, 20000),
             "the worker did not read its token file again after refusals");
    QVERIFY2(!worker.returned(), "the worker returned on a refused token");
    // The right token, rotated in place.
    QVERIFY(dipaco::write_file_atomically(token_file, std::string(kWorkerToken) + "\n").is_ok());
    QVERIFY(worker.wait_returned_ok(20000));
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
  }

  // The other order: the worker already holds the new token, the coordinator learns it later
  // (dipaco serve's SIGHUP swaps its tokens): the worker keeps retrying and then gets through.
  // A stop ends a long wait after a refusal at once.
  void refusedTokenIsRetriedUntilTheCoordinatorKnowsIt() {
    Served s;
    QVERIFY(s.start());
    const std::string next = "worker-token-next-1357";
    const std::string token_file = s.dir.filePath("next.token").toStdString();
    QVERIFY(dipaco::write_file_atomically(token_file, next + "\n").is_ok());
    std::atomic<int> rereads{0};
    dipaco::WorkerClientOptions options = refused_worker_options(s, "early", token_file, &rereads);
    options.max_tasks = 1;
    dipaco::FakeTaskRunner runner(0);
    {
      WorkerThread worker(options, runner);
      QVERIFY(wait_until([&] { return rereads.load() >= 5; }, 20000));
      QVERIFY2(!worker.returned(), "the worker returned on a refused token");
      dipaco::AuthTokens rotating;
      rotating.worker = {kWorkerToken, next};
      rotating.op = {kOperatorToken};
      QVERIFY(s.server->set_tokens(rotating).is_ok());
      QVERIFY(worker.wait_returned_ok(20000));
      QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    }

    // A refused token with a long wait (a minute): a stop ends it.
    QVERIFY(s.server->set_tokens({kWorkerToken, kOperatorToken}).is_ok());
    options.auth_backoff_initial_ms = 60000;
    options.auth_backoff_max_ms = 60000;
    rereads = 0;
    WorkerThread waiting(options, runner);
    QVERIFY(wait_until([&] { return rereads.load() >= 1; }, 20000));
    waiting.stop = 1;
    QVERIFY2(waiting.wait_returned_ok(10000), "a stop did not end the wait after a refused token");
    QCOMPARE(waiting.stats().tasks_completed, uint64_t{0});
  }

  // The token is refused while a task runs (its heartbeats and push): the push is retried until
  // the lease's deadline (no heartbeat moves it), the task dropped, and the worker goes on; once
  // the token is accepted again it completes another task.
  void pushWithARefusedTokenWaitsUntilTheLeaseDeadline() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/2, /*lease_timeout_ms=*/1500));
    const std::string token_file = s.dir.filePath("worker.token").toStdString();
    std::atomic<int> rereads{0};
    dipaco::WorkerClientOptions options =
        refused_worker_options(s, "mid-task", token_file, &rereads);
    options.max_tasks = 1;
    dipaco::FakeTaskRunner runner(100);  // 4 inner steps of 100 ms
    WorkerThread worker(options, runner);
    QVERIFY(wait_until([&] { return runner.runs() >= 1; }, 20000));  // inputs fetched
    dipaco::AuthTokens others;
    others.worker = {"someone-elses-token"};
    others.op = {kOperatorToken};
    QVERIFY(s.server->set_tokens(others).is_ok());
    // Past the lease's deadline (1.5 s after the lease) with room to spare.
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    QVERIFY2(!worker.returned(), "the worker returned on a refused token");
    QVERIFY(s.server->set_tokens({kWorkerToken, kOperatorToken}).is_ok());
    QVERIFY(worker.wait_returned_ok(20000));
    QVERIFY(rereads.load() >= 1);
    QVERIFY2(worker.stats().push_retries >= 1, std::to_string(worker.stats().push_retries).c_str());
    QCOMPARE(worker.stats().tasks_lost, uint64_t{1});
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
  }

  // One worker does all 16 tasks of a 4-step run: after each completed task the older versions
  // of its modules leave the cache, which ends with one version (the last one used) per module
  // instead of all four. (The worker stops after its 16th task: a lease after the run's end
  // would drop the run's files altogether, filesOfEndedRunsLeaveTheCache.)
  void cacheKeepsOneVersionPerModule() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/4));
    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "solo");
    options.max_tasks = 16;
    dipaco::WorkerClient worker(options, runner);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    const bool finished = run_to_end(s, 60000);
    stop = 1;
    thread.join();
    QVERIFY(finished);
    QCOMPARE(worker.stats().tasks_completed, uint64_t{16});
    auto versions = cached_versions(s.dir.filePath("cache-solo/modules").toStdString());
    QCOMPARE(versions.size(), size_t{4});
    for (const auto& [module, held] : versions) {
      QCOMPARE(held.size(), size_t{1});
      QCOMPARE(held.front(), uint64_t{3});
    }
  }

  // Once its run is finished the worker deletes the run's modules, shard and optimizer state,
  // and those of a run the coordinator does not know; a paused run (it may lease again) and a
  // folder that is not a run id of this coordinator are kept.
  void filesOfEndedRunsLeaveTheCache() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/1));
    auto toml = dipaco::read_file(s.dir.filePath("run.toml").toStdString());
    QVERIFY(toml.is_ok());
    auto planned = dipaco::plan_simple_run(*toml, "run.toml", s.dir.path().toStdString());
    QVERIFY(planned.is_ok());
    auto paused = s.coordinator->create_run(planned->spec);
    QVERIFY(paused.is_ok());
    QVERIFY(s.coordinator->pause(*paused).is_ok());
    const std::string run = std::to_string(s.run_id), paused_run = std::to_string(*paused);

    const std::filesystem::path cache = s.dir.filePath("cache-tidy").toStdString();
    const std::string state_file = "path-0-shard-10.safetensors";
    QVERIFY(put_file(cache / "state" / ("run-" + run) / state_file));
    QVERIFY(put_file(cache / "state" / ("run-" + paused_run) / state_file));
    QVERIFY(put_file(cache / "modules" / ("run-" + paused_run + ".module-0.v-0")));
    QVERIFY(put_file(cache / "state" / "run-999" / state_file));
    QVERIFY(put_file(cache / "modules" / "run-999.module-0.v-3"));
    QVERIFY(put_file(cache / "shards" / "run-999.shard-10.part"));
    QVERIFY(put_file(cache / "state" / "run-elsewhere" / state_file));

    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "tidy");
    options.cached_runs_ask_interval_ms = 0;  // every lease: the test need not wait a minute
    dipaco::WorkerClient worker(options, runner);
    std::thread thread([&] { QVERIFY(worker.run(stop).is_ok()); });
    const bool finished = run_to_end(s, 60000);
    // The next lease after the end (an idle worker asks at least every max_wait_ms) drops it.
    const bool dropped = wait_until(
        [&] { return !std::filesystem::exists(cache / "state" / ("run-" + run)); }, 30000);
    stop = 1;
    thread.join();
    QVERIFY(finished);
    QVERIFY(dropped);
    QCOMPARE(worker.stats().tasks_completed, uint64_t{4});
    QCOMPARE(names_starting(cache / "modules", "run-" + run + "."), std::vector<std::string>{});
    QCOMPARE(names_starting(cache / "shards", "run-" + run + "."), std::vector<std::string>{});
    QVERIFY(!std::filesystem::exists(cache / "state" / "run-999"));
    QCOMPARE(names_starting(cache / "modules", "run-999."), std::vector<std::string>{});
    QCOMPARE(names_starting(cache / "shards", "run-999."), std::vector<std::string>{});
    QVERIFY(std::filesystem::exists(cache / "state" / ("run-" + paused_run) / state_file));
    QCOMPARE(names_starting(cache / "modules", "run-" + paused_run + "."),
             std::vector<std::string>{"run-" + paused_run + ".module-0.v-0"});
    QVERIFY(std::filesystem::exists(cache / "state" / "run-elsewhere" / state_file));

    // What the coordinator answers: finished and unknown runs, never a live (here paused) one
    // nor an id it does not spell that way.
    v1::RegisterRequest reg;
    reg.set_worker_id("asker");
    v1::RegisterResponse registered;
    QVERIFY(s.stub->Register(context().get(), reg, &registered).ok());
    v1::LeaseTaskRequest request;
    request.set_session_id(registered.session_id());
    for (const std::string& id :
         {run, paused_run, std::string("999"), std::string("0999"), std::string("elsewhere")})
      request.add_cached_run_ids(id);
    v1::LeaseTaskResponse response;
    QVERIFY(s.stub->LeaseTask(context().get(), request, &response).ok());
    QVERIFY(!response.has_task());
    const std::vector<std::string> ended(response.ended_run_ids().begin(),
                                         response.ended_run_ids().end());
    QCOMPARE(ended, (std::vector<std::string>{run, "999"}));
  }

  // A run id that names another run (the coordinator's database was replaced under a worker's
  // cache): the cached shards and optimizer state of the old run must not feed the new one.
  void cacheOfAnotherRunUnderTheSameIdIsReplaced() {
    Served s;
    QVERIFY(s.start());
    const std::string run = std::to_string(s.run_id);
    const std::filesystem::path cache = s.dir.filePath("cache-reused").toStdString();
    const std::filesystem::path state = cache / "state" / ("run-" + run) / "path-0-shard-0.st";
    QVERIFY(put_file(state));
    for (int shard = 0; shard < 16; ++shard)
      QVERIFY(put_file(cache / "shards" / ("run-" + run + ".shard-" + std::to_string(shard))));
    const std::filesystem::path record = cache / "runs" / ("run-" + run + ".config-sha256");
    QVERIFY(put_file(record));
    QVERIFY(dipaco::write_file_atomically(record.string(), "an-older-run-config\n").is_ok());
    const auto stale = dipaco::read_file(
        (cache / "shards" / ("run-" + run + ".shard-0")).string());  // what put_file wrote
    QVERIFY(stale.is_ok());

    dipaco::FakeTaskRunner runner(0);
    std::atomic<int> stop{0};
    dipaco::WorkerClientOptions options = worker_options(s, "reused");
    options.max_tasks = 1;
    dipaco::WorkerClient worker(options, runner);
    QVERIFY(worker.run(stop).is_ok());  // returns after its one task
    QCOMPARE(worker.stats().tasks_completed, uint64_t{1});
    QVERIFY(!std::filesystem::exists(state));
    auto claimed = dipaco::read_file(record.string());
    QVERIFY(claimed.is_ok());
    QCOMPARE(claimed->size(), size_t{65});  // the run config's sha256 in hex, and a newline
    // One shard was fetched again from the coordinator; the other stale ones are gone.
    int shards_left = 0;
    for (const auto& entry : std::filesystem::directory_iterator(cache / "shards")) {
      ++shards_left;
      auto bytes = dipaco::read_file(entry.path().string());
      QVERIFY(bytes.is_ok());
      QVERIFY(*bytes != *stale);
    }
    QCOMPARE(shards_left, 1);
  }

  void tlsAndMutualTls() {
    if (QStandardPaths::findExecutable("openssl").isEmpty())
      QSKIP(
          "skipped: the openssl tool is not installed (apt-get install openssl) to make test "
          "certificates");
    Served s;
    QVERIFY(s.start());
    QString dir = s.dir.path();
    QVERIFY(make_cert(dir, "server"));
    QVERIFY(make_cert(dir, "client"));
    auto file = [&](const char* name) { return (dir + "/" + name).toStdString(); };

    dipaco::ServerOptions options;
    options.tls_cert_file = file("server.pem");
    options.tls_key_file = file("server.key");
    options.service.tokens = {kWorkerToken, kOperatorToken};
    options.service.hooks = dipaco::simple_run_hooks(dir.toStdString());
    auto tls = dipaco::RpcServer::start(*s.coordinator, options);
    QVERIFY2(tls.is_ok(), tls.status().message().c_str());
    dipaco::ChannelOptions channel;
    channel.address = (*tls)->target();
    channel.ca_file = file("server.pem");
    channel.server_name_override = "localhost";
    grpc::Status status = register_over(channel);
    QVERIFY2(status.ok(), status.error_message().c_str());
    dipaco::ChannelOptions plaintext;
    plaintext.address = (*tls)->target();
    plaintext.insecure = true;
    QVERIFY(!register_over(plaintext).ok());

    options.client_ca_file = file("client.pem");
    auto mtls = dipaco::RpcServer::start(*s.coordinator, options);
    QVERIFY2(mtls.is_ok(), mtls.status().message().c_str());
    channel.address = (*mtls)->target();
    QVERIFY(!register_over(channel).ok());  // no client certificate
    channel.client_cert_file = file("client.pem");
    channel.client_key_file = file("client.key");
    status = register_over(channel);
    QVERIFY2(status.ok(), status.error_message().c_str());
    (*tls)->shutdown();
    (*mtls)->shutdown();
  }

  void unixSocketForLocalWorkers() {
    Served s;
    QVERIFY(s.start());
    dipaco::ServerOptions options;
    options.address = "unix:" + s.dir.filePath("coordinator.sock").toStdString();
    options.insecure = true;
    options.service.tokens = {kWorkerToken, kOperatorToken};
    options.service.hooks = dipaco::simple_run_hooks(s.dir.path().toStdString());
    auto server = dipaco::RpcServer::start(*s.coordinator, options);
    QVERIFY2(server.is_ok(), server.status().message().c_str());
    QCOMPARE((*server)->target(), options.address);
    dipaco::ChannelOptions channel;
    channel.address = (*server)->target();
    channel.insecure = true;
    grpc::Status status = register_over(channel);
    QVERIFY2(status.ok(), status.error_message().c_str());
  }

  void plaintextMustBeAskedFor() {
    Served s;
    QVERIFY(s.start());
    dipaco::ServerOptions options;
    options.service.tokens = {kWorkerToken, kOperatorToken};
    options.service.hooks = dipaco::simple_run_hooks(s.dir.path().toStdString());
    auto server = dipaco::RpcServer::start(*s.coordinator, options);
    QVERIFY(!server.is_ok());
    QVERIFY(contains(server.status().message(), "--insecure"));
    options.insecure = true;
    options.service.tokens.op.clear();
    server = dipaco::RpcServer::start(*s.coordinator, options);
    QVERIFY(!server.is_ok());
    QVERIFY(contains(server.status().message(), "operator token"));
  }
};

QTEST_GUILESS_MAIN(RpcWorkerTest)
#include "test_rpc_worker.moc"
