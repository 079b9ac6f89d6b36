#include <QtTest>

#include "worker_config.h"

namespace {

std::string error_of(const std::string& toml) {
  auto config = dipaco::parse_worker_config(toml, "worker.toml");
  return config.is_ok() ? std::string() : config.status().message();
}

}  // namespace

class WorkerConfigTest : public QObject {
  Q_OBJECT

 private slots:
  void defaultsWhenEmpty() {
    auto config = dipaco::parse_worker_config("", "worker.toml");
    QVERIFY(config.is_ok());
    QCOMPARE(config->backend, std::string("auto"));
    QCOMPARE(config->cache_dir, std::string("/var/cache/dipaco"));
    QVERIFY(config->tls);
    QVERIFY(config->devices.empty());
  }

  void readsEveryKey() {
    auto config = dipaco::parse_worker_config(R"toml(
[coordinator]
address = "10.0.0.1:7443"
token_file = "/etc/dipaco/worker.token"
tls = false
ca_file = "/etc/ssl/ca.pem"
[worker]
id = "gpu-host-3"
cache_dir = "/tmp/cache"
backend = "cuda"
devices = [0, 2]
cpu_threads = 8
fallback_to_cpu = true
max_memory_gib = 0
)toml",
                                              "worker.toml");
    QVERIFY2(config.is_ok(), config.status().message().c_str());
    QCOMPARE(config->coordinator_address, std::string("10.0.0.1:7443"));
    QVERIFY(!config->tls);
    QCOMPARE(config->worker_id, std::string("gpu-host-3"));
    QCOMPARE(config->devices, (std::vector<int>{0, 2}));
    QCOMPARE(config->cpu_threads, 8);
    QVERIFY(config->fallback_to_cpu);
    QCOMPARE(config->max_memory_gib, 0.0);
  }

  void errorsNameTheKeyAndFile() {
    // Nothing enforces a memory budget yet: a non-zero one is refused, not silently ignored.
    QVERIFY(error_of("[worker]\nmax_memory_gib = 60\n")
                .find("worker.toml: [worker] max_memory_gib is not supported yet; remove it") !=
            std::string::npos);
    QVERIFY(error_of("[worker]\nbackend = \"gpu\"\n")
                .find("worker.toml: [worker] backend must be "
                      "one of auto|cpu|cuda, got 'gpu'") != std::string::npos);
    QVERIFY(error_of("[worker]\nbackedn = \"cpu\"\n")
                .find("unknown key 'worker.backedn' (did you "
                      "mean 'backend'?)") != std::string::npos);
    QVERIFY(error_of("[worker]\ncpu_threads = \"many\"\n").find("cpu_threads has the wrong type") !=
            std::string::npos);
    QVERIFY(error_of("[worker]\ndevices = [-1]\n").find("devices must hold CUDA device indices") !=
            std::string::npos);
    QVERIFY(error_of("[coordinator]\naddress = \"nohost\"\n")
                .find("worker.toml: [coordinator] address: 'nohost' is not an address to dial: "
                      "it has no :port; use host:port") != std::string::npos);
    QVERIFY(error_of("[server]\n").find("unknown key 'server'") != std::string::npos);
  }

  void syntaxErrorsGiveLineAndColumn() {
    std::string error = error_of("[worker]\nbackend = \n");
    QVERIFY2(error.rfind("worker.toml:2:", 0) == 0, error.c_str());
  }

  void backoffAndLogLevelKeys() {
    auto config = dipaco::parse_worker_config(
        "[coordinator]\nbackoff_initial_ms = 50\nbackoff_max_ms = 800\n[worker]\nlog_level = "
        "\"warning\"\n",
        "worker.toml");
    QVERIFY2(config.is_ok(), config.status().message().c_str());
    QCOMPARE(config->backoff_initial_ms, int64_t{50});
    QCOMPARE(config->backoff_max_ms, int64_t{800});
    QCOMPARE(config->log_level, std::string("warning"));
    QVERIFY(dipaco::worker_log_level(config->log_level) == dipaco::LogLevel::kWarning);
    QVERIFY(!dipaco::worker_log_level(""));
    auto defaults = dipaco::parse_worker_config("", "worker.toml");
    QCOMPARE(defaults->backoff_initial_ms, int64_t{100});
    QCOMPARE(defaults->backoff_max_ms, int64_t{5000});
    QVERIFY(defaults->log_level.empty());
    QVERIFY(error_of("[coordinator]\nbackoff_initial_ms = 900\nbackoff_max_ms = 800\n")
                .find("needs 1 <= backoff_initial_ms <= backoff_max_ms") != std::string::npos);
    QVERIFY(error_of("[coordinator]\nbackoff_initial_ms = 0\n").find("got 0 and 5000") !=
            std::string::npos);
    QVERIFY(error_of("[worker]\nlog_level = \"verbose\"\n")
                .find("log_level must be one of debug|info|warning|error, got 'verbose'") !=
            std::string::npos);
  }

  void rpcTimeoutKey() {
    auto defaults = dipaco::parse_worker_config("", "worker.toml");
    QCOMPARE(defaults->rpc_timeout_ms, int64_t{30000});
    auto config =
        dipaco::parse_worker_config("[coordinator]\nrpc_timeout_ms = 120000\n", "worker.toml");
    QVERIFY2(config.is_ok(), config.status().message().c_str());
    QCOMPARE(config->rpc_timeout_ms, int64_t{120000});
    QVERIFY(error_of("[coordinator]\nrpc_timeout_ms = 10\n")
                .find("worker.toml: [coordinator] rpc_timeout_ms must be between 1000 and "
                      "3600000 (milliseconds), got 10") != std::string::npos);
    QVERIFY(error_of("[coordinator]\nrpc_timeout_ms = 3600001\n").find("got 3600001") !=
            std::string::npos);
    QVERIFY(error_of("[coordinator]\nrpc_timeout_ms = \"30s\"\n")
                .find("[coordinator] rpc_timeout_ms has the wrong type") != std::string::npos);
    QVERIFY(
        error_of("[coordinator]\nrpc_timout_ms = 1000\n").find("did you mean 'rpc_timeout_ms'?") !=
        std::string::npos);
  }

  void stallAndStopGraceKeys() {
    auto defaults = dipaco::parse_worker_config("", "worker.toml");
    QCOMPARE(defaults->stall_timeout_s, 600.0);
    QCOMPARE(defaults->stop_grace_s, 90.0);
    auto config = dipaco::parse_worker_config("[worker]\nstall_timeout_s = 0\nstop_grace_s = 2.5\n",
                                              "worker.toml");
    QVERIFY2(config.is_ok(), config.status().message().c_str());
    QCOMPARE(config->stall_timeout_s, 0.0);
    QCOMPARE(config->stop_grace_s, 2.5);
    QVERIFY(error_of("[worker]\nstop_grace_s = -1\n")
                .find("[worker] stop_grace_s must be in [0, 604800] seconds") != std::string::npos);
    QVERIFY(error_of("[worker]\nstall_timeout_s = \"10m\"\n")
                .find("[worker] stall_timeout_s has the wrong type") != std::string::npos);
  }

  // Every form gRPC dials is accepted; anything else fails the config check with what is wrong
  // and what a valid address looks like (it used to pass and be retried forever at run time).
  void coordinatorAddressForms_data() {
    QTest::addColumn<QString>("address");
    QTest::addColumn<QString>("error");  // empty: accepted
    const QString ok;
    QTest::newRow("name") << "coordinator.example:7443" << ok;
    QTest::newRow("ipv4") << "10.0.0.1:7443" << ok;
    QTest::newRow("lowest port") << "localhost:1" << ok;
    QTest::newRow("highest port") << "localhost:65535" << ok;
    QTest::newRow("ipv6") << "[::1]:7443" << ok;
    QTest::newRow("ipv6 zone") << "[fe80::1%eth0]:7443" << ok;
    QTest::newRow("dns uri") << "dns:///coordinator.example:7443" << ok;
    QTest::newRow("unix") << "unix:/run/dipaco/coordinator.sock" << ok;
    QTest::newRow("unix relative") << "unix:coordinator.sock" << ok;
    QTest::newRow("unix uri") << "unix:///run/dipaco/coordinator.sock" << ok;
    QTest::newRow("dns no port") << "dns:///coord" << ok;  // gRPC's default port, 443
    QTest::newRow("dns ipv6 no port") << "dns:///[::1]" << ok;
    QTest::newRow("dns authority") << "dns://8.8.8.8/coordinator.example:443" << ok;
    QTest::newRow("dns authority port") << "dns://ns1.example:53/coord:7443" << ok;
    QTest::newRow("ipv4 scheme") << "ipv4:1.2.3.4:7443" << ok;
    QTest::newRow("ipv4 list") << "ipv4:1.2.3.4:7443,10.0.0.2:7444" << ok;
    QTest::newRow("ipv6 scheme") << "ipv6:[::1]:7443" << ok;
    QTest::newRow("unix abstract") << "unix-abstract:dipaco-coordinator" << ok;
    QTest::newRow("port not a number") << "coord:abc"
                                       << "the port 'abc' is not a number in 1..65535";
    QTest::newRow("no port") << "coord:"
                             << "the port '' is not a number in 1..65535";
    QTest::newRow("port 0") << "coord:0"
                            << "the port '0' is not a number in 1..65535";
    QTest::newRow("port too big") << "coord:65536"
                                  << "the port '65536' is not a number";
    QTest::newRow("signed port") << "coord:+80"
                                 << "the port '+80' is not a number";
    QTest::newRow("no host") << ":7443"
                             << "it has no host before the ':'";
    QTest::newRow("ipv6 no port") << "[::1]"
                                  << "an IPv6 address needs ]:port after it";
    QTest::newRow("ipv6 empty port") << "[::1]:"
                                     << "the port '' is not a number";
    QTest::newRow("ipv6 no brackets") << "::1:7443"
                                      << "an IPv6 address needs brackets";
    QTest::newRow("not ipv6") << "[coord]:7443"
                              << "'coord' is not an IPv6 address";
    QTest::newRow("space in host") << "my host:7443"
                                   << "'my host' is not a host name";
    QTest::newRow("url") << "https://coord:7443"
                         << "drop https://: use host:port or dns:///host:port";
    QTest::newRow("http url") << "http://127.0.0.1:33699"
                              << "drop http://: use host:port or dns:///host:port";
    QTest::newRow("ipv4 scheme no port") << "ipv4:1.2.3.4"
                                         << "'1.2.3.4' is not an IPv4 address:port";
    QTest::newRow("ipv4 scheme name") << "ipv4:coord:7443"
                                      << "'coord:7443' is not an IPv4 address:port";
    QTest::newRow("ipv6 scheme unbracketed") << "ipv6:::1:7443"
                                             << "is not [an IPv6 address]:port";
    QTest::newRow("unix abstract no name") << "unix-abstract:"
                                           << "unix-abstract: needs a name";
    QTest::newRow("dns bad server") << "dns://bad server/coord:7443"
                                    << "the DNS server 'bad server' is not host[:port]";
    QTest::newRow("dns server only") << "dns://8.8.8.8"
                                     << "dns: must be followed by ///host:port";
    QTest::newRow("dns without slashes") << "dns:coord:7443"
                                         << "dns: must be followed by ///";
    QTest::newRow("dns empty") << "dns:///"
                               << "it has no :port";
    QTest::newRow("unix no path") << "unix:"
                                  << "a Unix socket needs a path";
    QTest::newRow("unix authority") << "unix://host/sock"
                                    << "unix:// must be followed by an";
  }

  void coordinatorAddressForms() {
    QFETCH(QString, address);
    QFETCH(QString, error);
    const std::string message =
        error_of("[coordinator]\naddress = \"" + address.toStdString() + "\"\n");
    if (error.isEmpty()) {
      QVERIFY2(message.empty(), message.c_str());
      return;
    }
    QVERIFY2(message.find(error.toStdString()) != std::string::npos, message.c_str());
    QVERIFY2(message.rfind("worker.toml: [coordinator] address: '" + address.toStdString() + "'",
                           0) == 0,
             message.c_str());
    // Every refusal says what a valid address looks like.
    QVERIFY2(
        message.find("; use host:port (coordinator.example:7443, 10.0.0.1:7443), "
                     "[ipv6]:port ([::1]:7443), dns:///host:port, unix:/path") != std::string::npos,
        message.c_str());
  }

  void theDefaultIdIsTheHostWhateverTheDevices() {
    // Kept across upgrades: an id derived from the devices would rename a fleet's workers and
    // lose their drains.
    dipaco::WorkerConfig config;
    QCOMPARE(dipaco::worker_id_or_default(config, "gpu7"), std::string("gpu7"));
    config.devices = {0, 1};
    QCOMPARE(dipaco::worker_id_or_default(config, "gpu7"), std::string("gpu7"));
    config.worker_id = "mine";
    QCOMPARE(dipaco::worker_id_or_default(config, "gpu7"), std::string("mine"));
  }

  void missingFileIsNotFound() {
    auto config = dipaco::load_worker_config("/nonexistent/worker.toml");
    QVERIFY(!config.is_ok());
    QCOMPARE(config.status().code(), dipaco::StatusCode::kNotFound);
  }
};

QTEST_GUILESS_MAIN(WorkerConfigTest)
#include "test_worker_config.moc"
