// The SIGHUP reload decision (worker/worker_reload.h): which changed keys apply now, at the
// next connection, or only after a restart, and what the worker runs with afterwards.
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>

#include "test_support.h"
#include "util/atomic_file.h"
#include "worker_reload.h"

using dipaco::ReloadPlan;
using dipaco::ReloadTiming;
using dipaco::WorkerConfig;
using dipaco::WorkerCredentials;
using dipaco::test::contains;

namespace {

const dipaco::ReloadChange* find_change(const ReloadPlan& plan, const std::string& key) {
  auto found = std::find_if(plan.changes.begin(), plan.changes.end(),
                            [&](const dipaco::ReloadChange& c) { return c.key == key; });
  return found == plan.changes.end() ? nullptr : &*found;
}

WorkerConfig running_config() {
  WorkerConfig config;
  config.coordinator_address = "10.0.0.1:7443";
  config.token_file = "/etc/dipaco/worker.token";
  config.cache_dir = "/var/cache/dipaco";
  return config;
}

WorkerConfig parse(const std::string& toml) {
  auto config = dipaco::parse_worker_config(toml, "worker.toml");
  if (!config.is_ok()) qFatal("%s", config.status().message().c_str());
  return *config;
}

}  // namespace

class WorkerReloadTest : public QObject {
  Q_OBJECT

 private slots:
  void sameConfigChangesNothing() {
    WorkerCredentials credentials{"token", "", "", ""};
    ReloadPlan plan =
        dipaco::plan_worker_reload(running_config(), credentials, running_config(), credentials);
    QVERIFY(plan.changes.empty());
    QVERIFY(!plan.reconnect());
    QVERIFY(!plan.has(ReloadTiming::kNow));
  }

  void connectionKeysApplyAtTheNextConnection() {
    WorkerConfig loaded = running_config();
    loaded.coordinator_address = "10.0.0.2:7443";
    loaded.token_file = "/etc/dipaco/new.token";
    loaded.max_tasks = 5;
    loaded.backoff_max_ms = 60000;
    loaded.rpc_timeout_ms = 120000;
    ReloadPlan plan = dipaco::plan_worker_reload(running_config(), {}, loaded, {});
    QCOMPARE(plan.changes.size(), size_t{5});
    for (const auto& change : plan.changes) {
      QVERIFY2(change.timing == ReloadTiming::kNextConnection, change.key.c_str());
    }
    QVERIFY(plan.reconnect());
    QCOMPARE(plan.next_config.coordinator_address, std::string("10.0.0.2:7443"));
    QCOMPARE(plan.next_config.max_tasks, int64_t{5});
    QCOMPARE(plan.next_config.backoff_max_ms, int64_t{60000});
    QCOMPARE(plan.next_config.rpc_timeout_ms, int64_t{120000});
    QVERIFY(find_change(plan, "[coordinator] rpc_timeout_ms") != nullptr);
    const auto* address = find_change(plan, "[coordinator] address");
    QVERIFY(address != nullptr);
    QCOMPARE(address->running_value, std::string("\"10.0.0.1:7443\""));
    QVERIFY(contains(dipaco::describe_reload_change(*address), "next connects"));
  }

  void logLevelAppliesNowWithoutReconnecting() {
    WorkerConfig loaded = running_config();
    loaded.log_level = "debug";
    ReloadPlan plan = dipaco::plan_worker_reload(running_config(), {}, loaded, {});
    QCOMPARE(plan.changes.size(), size_t{1});
    QVERIFY(plan.has(ReloadTiming::kNow));
    QVERIFY(!plan.reconnect());
    QCOMPARE(plan.next_config.log_level, std::string("debug"));
    QCOMPARE(dipaco::describe_reload_change(plan.changes[0]),
             std::string("[worker] log_level: \"\" -> \"debug\" (applied now)"));
  }

  void restartKeysKeepTheirRunningValues() {
    WorkerConfig loaded = running_config();
    loaded.cache_dir = "/srv/cache";
    loaded.devices = {0, 1};
    loaded.backend = "cuda";
    loaded.runner = "fake";
    loaded.coordinator_address = "10.0.0.9:7443";  // live, alongside
    ReloadPlan plan = dipaco::plan_worker_reload(running_config(), {}, loaded, {});
    QCOMPARE(plan.changes.size(), size_t{5});
    for (const char* key :
         {"[worker] cache_dir", "[worker] devices", "[worker] backend", "[worker] runner"}) {
      const auto* change = find_change(plan, key);
      QVERIFY2(change != nullptr, key);
      QVERIFY2(change->timing == ReloadTiming::kNeedsRestart, key);
    }
    QCOMPARE(plan.next_config.cache_dir, std::string("/var/cache/dipaco"));
    QVERIFY(plan.next_config.devices.empty());
    QCOMPARE(plan.next_config.backend, std::string("auto"));
    QCOMPARE(plan.next_config.runner, std::string("train"));
    QCOMPARE(plan.next_config.coordinator_address, std::string("10.0.0.9:7443"));
    QVERIFY(plan.reconnect());
    std::string line = dipaco::describe_reload_change(*find_change(plan, "[worker] cache_dir"));
    QCOMPARE(line, std::string("[worker] cache_dir: \"/var/cache/dipaco\" -> \"/srv/cache\" "
                               "(needs a restart; still using \"/var/cache/dipaco\")"));
    QCOMPARE(dipaco::describe_reload_change(*find_change(plan, "[worker] devices")),
             std::string("[worker] devices: [] -> [0, 1] (needs a restart; still using [])"));
  }

  void aTokenRotatedInPlaceIsAChangeWithoutShowingIt() {
    WorkerCredentials old_credentials{"old-secret-token", "", "", ""};
    WorkerCredentials new_credentials{"new-secret-token", "", "", ""};
    ReloadPlan plan = dipaco::plan_worker_reload(running_config(), old_credentials,
                                                 running_config(), new_credentials);
    QCOMPARE(plan.changes.size(), size_t{1});
    QCOMPARE(plan.changes[0].key, std::string("[coordinator] token_file contents"));
    QVERIFY(plan.reconnect());
    QCOMPARE(plan.next_credentials.token, std::string("new-secret-token"));
    std::string line = dipaco::describe_reload_change(plan.changes[0]);
    QVERIFY2(!contains(line, "secret"), line.c_str());
  }

  // Every key of the file, changed at once, is classified exactly once.
  void everyKeyIsClassified() {
    WorkerConfig changed = parse(
        "[coordinator]\naddress = \"h:1\"\ntoken_file = \"/t\"\ntls = false\nca_file = \"/ca\"\n"
        "client_cert_file = \"/c\"\nclient_key_file = \"/k\"\nserver_name = \"n\"\n"
        "backoff_initial_ms = 7\nbackoff_max_ms = 70\n"
        "[worker]\nid = \"w\"\ncache_dir = \"/c2\"\nbackend = \"cpu\"\ndevices = [3]\n"
        "cpu_threads = 2\nfallback_to_cpu = true\nrunner = \"fake\"\n"
        "fake_step_ms = 9\nmax_tasks = 4\nstall_timeout_s = 30\nstop_grace_s = 20\n"
        "log_level = \"error\"\n");
    ReloadPlan plan = dipaco::plan_worker_reload(parse(""), {}, changed, {});
    QCOMPARE(plan.changes.size(), size_t{21});
    int now = 0, next = 0, restart = 0;
    for (const auto& change : plan.changes) {
      QCOMPARE(std::count_if(plan.changes.begin(), plan.changes.end(),
                             [&](const auto& c) { return c.key == change.key; }),
               std::ptrdiff_t{1});
      now += change.timing == ReloadTiming::kNow;
      next += change.timing == ReloadTiming::kNextConnection;
      restart += change.timing == ReloadTiming::kNeedsRestart;
    }
    QCOMPARE(now, 2);
    QCOMPARE(next, 11);
    QCOMPARE(restart, 8);
  }

  void credentialsAreReadAndErrorsNameTheKey() {
    QTemporaryDir dir;
    std::string token = dir.filePath("worker.token").toStdString();
    std::string ca = dir.filePath("ca.pem").toStdString();
    QVERIFY(dipaco::write_file_atomically(token, "  abc123 \n"));
    QVERIFY(dipaco::write_file_atomically(ca, "PEM"));
    WorkerConfig config = running_config();
    config.token_file = token;
    config.ca_file = ca;
    auto credentials = dipaco::read_worker_credentials(config);
    QVERIFY2(credentials.is_ok(), credentials.status().message().c_str());
    QCOMPARE(credentials->token, std::string("abc123"));
    QCOMPARE(credentials->ca_pem, std::string("PEM"));
    QVERIFY(credentials->client_cert_pem.empty());

    config.ca_file = dir.filePath("missing.pem").toStdString();
    auto missing = dipaco::read_worker_credentials(config);
    QVERIFY(!missing.is_ok());
    QVERIFY2(contains(missing.status().message(), "[coordinator] ca_file"),
             missing.status().message().c_str());
    config.ca_file.clear();
    QVERIFY(dipaco::write_file_atomically(token, "\n"));
    auto empty = dipaco::read_worker_credentials(config);
    QVERIFY(!empty.is_ok());
    QVERIFY2(contains(empty.status().message(), "[coordinator] token_file"),
             empty.status().message().c_str());
  }
};

QTEST_GUILESS_MAIN(WorkerReloadTest)
#include "test_worker_reload.moc"
