// dipaco ctl against a spawned `dipaco serve` on 127.0.0.1 (plaintext): the worker table, drain
// and undrain, pause and resume, watch --for, and the errors and exit codes for a bad token, an
// unknown worker, no server, and bad usage.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QtTest>
#include <csignal>
#include <fstream>
#include <memory>
#include <thread>

#include "cli_runner.h"
#include "rpc/rpc_fixture.h"

namespace v1 = dipaco::v1;

class CliCtlTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    rpc_test::write_run(dir_);
    QFile bad(file("wrong.token"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("not-the-operator-token\n");
    bad.close();
    serve_.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    serve_.start(DIPACO_CLI_PATH,
                 {"serve", "--db", file("coordinator.db"), "--address", "127.0.0.1:0", "--insecure",
                  "--worker-token-file", file("worker.token"), "--operator-token-file",
                  file("operator.token"), "--run", file("run.toml"), "--port-file", file("port")});
    QVERIFY(serve_.waitForStarted(10000));
    for (int i = 0; i < 1500 && port_ <= 0; ++i) {
      std::ifstream in(file("port").toStdString());
      if (!(in >> port_)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    QVERIFY2(port_ > 0, "dipaco serve did not write its port");
    // A worker registers (as dipaco-worker would), so that the table has a row.
    dipaco::ChannelOptions channel;
    channel.address = address().toStdString();
    channel.insecure = true;
    auto made = dipaco::make_channel(channel);
    QVERIFY(made.is_ok());
    auto stub = v1::Coordinator::NewStub(*made);
    v1::RegisterRequest request;
    request.set_worker_id("gpu-a-gpu0");
    request.set_host("gpu-a");
    request.set_version("9.9.9");
    v1::RegisterResponse response;
    auto context = rpc_test::context();
    QVERIFY(stub->Register(context.get(), request, &response).ok());
  }

  void cleanupTestCase() {
    serve_.terminate();
    serve_.waitForFinished(30000);
  }

  void workersPrintsATable() {
    CliResult r = ctl({"workers"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("ID") && r.out.contains("HOST") && r.out.contains("LAST HEARD"),
             qPrintable(r.out));
    QVERIFY2(r.out.contains("gpu-a-gpu0") && r.out.contains("gpu-a") && r.out.contains("active") &&
                 r.out.contains("9.9.9"),
             qPrintable(r.out));
  }

  void workersAsJsonForScripts() {
    CliResult r = ctl({"workers", "--json"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    const QJsonDocument doc = QJsonDocument::fromJson(r.out.toUtf8());
    QVERIFY2(doc.isArray(), qPrintable(r.out));
    QCOMPARE(doc.array().size(), 1);
    const QJsonObject worker = doc.array().at(0).toObject();
    QCOMPARE(worker.value("id").toString(), QString("gpu-a-gpu0"));
    QCOMPARE(worker.value("host").toString(), QString("gpu-a"));
    QCOMPARE(worker.value("version").toString(), QString("9.9.9"));
    QVERIFY(worker.value("lease").isNull());
    QVERIFY(worker.value("last_heard_unix_ms").toDouble() > 1.7e12);  // a Unix time in ms
  }

  void drainAndUndrain() {
    CliResult r = ctl({"drain", "gpu-a-gpu0"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("draining"), qPrintable(r.out));
    r = ctl({"workers"});
    QVERIFY2(r.out.contains("draining"), qPrintable(r.out));
    r = ctl({"undrain", "gpu-a-gpu0"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("takes tasks again"), qPrintable(r.out));
    r = ctl({"undrain", "gpu-a-gpu0"});  // nothing to undo: still a success, said so
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("nothing changed"), qPrintable(r.out));
    r = ctl({"drain", "ghost"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("no worker with id \"ghost\" (see dipaco ctl workers)") &&
                 !r.err.contains("register first"),
             qPrintable(r.err));
    r = ctl({"undrain", "ghost"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("no worker with id \"ghost\""), qPrintable(r.err));
  }

  void pauseResumeAndWatch() {
    CliResult r = ctl({"pause", "1"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("paused"), qPrintable(r.out));
    r = ctl({"resume", "1"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    r = ctl({"inner-steps", "1", "7"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    r = ctl({"watch", "1", "--for", "1"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("run_created"), qPrintable(r.out));
    QVERIFY2(r.out.contains("run_paused") && r.out.contains("run_resumed"), qPrintable(r.out));
    r = ctl({"pause", "99"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("99"), qPrintable(r.err));
  }

  void aBadTokenOrNoServerIsAClearFailure() {
    CliResult r = run_cli({"ctl", "--address", address(), "--insecure", "--token-file",
                           file("wrong.token"), "workers"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("refused the token") && r.err.contains("--token-file"),
             qPrintable(r.err));
    r = run_cli({"ctl", "--address", address(), "--insecure", "--token-file", file("worker.token"),
                 "workers"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("operator token"), qPrintable(r.err));
    r = run_cli({"ctl", "--address", "127.0.0.1:1", "--insecure", "--token-file",
                 file("operator.token"), "workers"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("no coordinator at 127.0.0.1:1"), qPrintable(r.err));
  }

  // One coordinator per database and per port: a second serve is refused, naming the first.
  void aSecondServeOnTheSameDatabaseOrPortIsRefused() {
    CliResult r =
        run_cli({"serve", "--db", file("coordinator.db"), "--address", "127.0.0.1:0", "--insecure",
                 "--worker-token-file", file("worker.token"), "--operator-token-file",
                 file("operator.token"), "--run", file("run.toml")},
                QString(), 60000);
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("is in use by another coordinator (dipaco serve, pid " +
                            QString::number(serve_.processId()) + ")"),
             qPrintable(r.err));
    r = run_cli({"serve", "--db", file("second.db"), "--address", address(), "--insecure",
                 "--worker-token-file", file("worker.token"), "--operator-token-file",
                 file("operator.token"), "--run", file("run.toml")},
                QString(), 60000);
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("cannot listen on " + address()), qPrintable(r.err));
    // Neither left anything behind: the second database was never created.
    QVERIFY(!QFile::exists(file("second.db")));
    QVERIFY(!QFile::exists(file("second.db.lock")));
    QVERIFY(QFile::exists(file("coordinator.db.lock")));  // the first one's, still held
  }

  // A SIGHUP while serve starts (here right after it read its tokens, before it listens) is
  // counted, not fatal: serve goes on to listen and then reloads the tokens.
  void aSighupDuringTheStartIsHandledOnceServing() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    rpc_test::write_run(dir);
    QProcess serve;
    serve.setProcessChannelMode(QProcess::MergedChannels);
    serve.start(DIPACO_CLI_PATH,
                {"serve", "--db", dir.filePath("coordinator.db"), "--address", "127.0.0.1:0",
                 "--insecure", "--worker-token-file", dir.filePath("worker.token"),
                 "--operator-token-file", dir.filePath("operator.token"), "--run",
                 dir.filePath("run.toml"), "--port-file", dir.filePath("port")});
    QVERIFY(serve.waitForStarted(10000));
    QByteArray log;
    for (int i = 0; i < 1000 && !log.contains("dipaco serve: tokens:"); ++i) {
      serve.waitForReadyRead(20);
      log += serve.readAll();
    }
    QVERIFY2(log.contains("dipaco serve: tokens:"), log.constData());
    QCOMPARE(::kill(static_cast<pid_t>(serve.processId()), SIGHUP), 0);
    for (int i = 0; i < 1000 && !log.contains("tokens reloaded"); ++i) {
      if (serve.state() != QProcess::Running) break;
      serve.waitForReadyRead(20);
      log += serve.readAll();
    }
    QVERIFY2(serve.state() == QProcess::Running, log.constData());
    QVERIFY2(log.contains("listening on"), log.constData());
    QVERIFY2(log.contains("SIGHUP: tokens reloaded: 1 worker token(s)"), log.constData());
    serve.terminate();
    QVERIFY(serve.waitForFinished(30000));
    QCOMPARE(serve.exitStatus(), QProcess::NormalExit);
    QCOMPARE(serve.exitCode(), 0);
  }

  void usageErrorsExitTwo() {
    CliResult url = run_cli({"ctl", "--address", "http://127.0.0.1:7443", "--insecure",
                             "--token-file", file("operator.token"), "workers"});
    QCOMPARE(url.exit_code, 2);
    QVERIFY2(url.err.contains("--address") && url.err.contains("drop http://"),
             qPrintable(url.err));
    QCOMPARE(run_cli({"ctl"}).exit_code, 2);
    CliResult r = run_cli({"ctl", "frobnicate"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unknown command 'frobnicate'"), qPrintable(r.err));
    QCOMPARE(ctl({"drain"}).exit_code, 2);
    QCOMPARE(ctl({"pause", "one"}).exit_code, 2);
    QCOMPARE(ctl({"inner-steps", "1"}).exit_code, 2);
    r = ctl({"inner-steps", "1", "-3"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("N must be a positive whole number, not '-3'"), qPrintable(r.err));
    r = ctl({"inner-steps", "-1", "3"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("RUN must be a positive whole number, not '-1'"), qPrintable(r.err));
    r = ctl({"inner-steps", "1", "0"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("N must be a positive whole number, not '0'"), qPrintable(r.err));
    r = run_cli({"ctl", "--address", address(), "--insecure", "workers"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("--token-file is required"), qPrintable(r.err));
    r = run_cli({"ctl", "--insecure", "--ca-file", "x.pem", "--token-file", "t", "workers"});
    QCOMPARE(r.exit_code, 2);
    r = run_cli({"ctl", "--help"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY(r.out.contains("undrain ID") && r.out.contains("watch RUN"));
    r = run_cli({"ctl", "drain", "--help"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("usage: dipaco ctl drain"), qPrintable(r.out));
  }

 private:
  QString file(const char* name) const { return dir_.filePath(name); }
  QString address() const { return QString("127.0.0.1:%1").arg(port_); }
  CliResult ctl(QStringList args) {
    return run_cli(QStringList{"ctl", "--address", address(), "--insecure", "--token-file",
                               file("operator.token")} +
                       args,
                   QString(), 60000);
  }

  QTemporaryDir dir_;
  QProcess serve_;
  int port_ = 0;
};

QTEST_GUILESS_MAIN(CliCtlTest)
#include "test_cli_ctl.moc"
