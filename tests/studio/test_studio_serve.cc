// End to end: a real `dipaco serve` process (plaintext on 127.0.0.1, the rpc tests' 2x2 run
// file) and two `dipaco work --runner fake` processes train the run while the studio's main
// window is attached: the dashboard sees the leases and aggregations of the whole run, and an
// operator action from the studio reaches the server. A wrong token gets the plain error.
#include <QFile>
#include <QProcess>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>
#include <memory>
#include <vector>

#include "dashboard_panel.h"
#include "launch_panel.h"
#include "main_window.h"
#include "rpc/rpc_fixture.h"
#include "studio_test_support.h"

namespace {

struct Processes {
  std::vector<std::unique_ptr<QProcess>> all;

  QProcess* start(const QStringList& arguments) {
    auto p = std::make_unique<QProcess>();
    p->setProcessChannelMode(QProcess::ForwardedErrorChannel);
    p->start(QStringLiteral(DIPACO_CLI_PATH), arguments);
    all.push_back(std::move(p));
    return all.back().get();
  }

  ~Processes() {
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      QProcess* p = it->get();
      if (p->state() == QProcess::NotRunning) continue;
      p->terminate();
      if (!p->waitForFinished(10000)) p->kill();
      p->waitForFinished(5000);
    }
  }
};

}  // namespace

class StudioServeTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void attachesToARealServeAndWatchesTheRun() {
    QTemporaryDir dir;
    rpc_test::write_run(dir, /*outer_steps=*/2);
    const auto file = [&](const char* name) { return dir.filePath(QString::fromLatin1(name)); };
    Processes processes;
    QProcess* serve = processes.start(
        {"serve", "--db", file("coordinator.db"), "--address", "127.0.0.1:0", "--insecure",
         "--worker-token-file", file("worker.token"), "--operator-token-file",
         file("operator.token"), "--run", file("run.toml"), "--port-file", file("port")});
    QVERIFY(serve->waitForStarted(10000));
    QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(file("port")), 20000);
    QFile port_file(file("port"));
    QVERIFY(port_file.open(QIODevice::ReadOnly));
    const int port = port_file.readAll().trimmed().toInt();
    QVERIFY(port > 0);
    const std::string address = "127.0.0.1:" + std::to_string(port);

    dipaco::studio::AttachSettings settings;
    settings.address = address;
    settings.tls = false;
    settings.token = "wrong-token";
    settings.run_id = 1;
    dipaco::studio::MainWindow window;
    dipaco::studio::LaunchPanel* launch = window.launch();
    QSignalSpy attached(launch, &dipaco::studio::LaunchPanel::serve_attached);
    QSignalSpy detached(launch, &dipaco::studio::LaunchPanel::serve_detached);
    launch->set_attach_settings(settings);
    QString error;
    QVERIFY2(launch->attach(&error), qPrintable(error));
    QTRY_COMPARE_WITH_TIMEOUT(detached.count(), 1, 20000);
    QVERIFY2(launch->attach_status().contains(QStringLiteral("refused the token")),
             qPrintable(launch->attach_status()));

    settings.token = rpc_test::kOperatorToken;
    launch->set_attach_settings(settings);
    QVERIFY2(launch->attach(&error), qPrintable(error));
    QTRY_COMPARE_WITH_TIMEOUT(attached.count(), 1, 20000);
    QVERIFY2(window.dashboard()->status_text().contains(QStringLiteral("Watching run 1")),
             qPrintable(window.dashboard()->status_text()));
    window.show();
    window.tabs()->setCurrentWidget(window.dashboard());

    for (const char* id : {"w1", "w2"}) {
      QProcess* worker =
          processes.start({"work", "--address", QString::fromStdString(address), "--insecure",
                           "--token-file", file("worker.token"), "--cache-dir", file(id),
                           "--worker-id", id, "--runner", "fake", "--fake-step-ms", "5"});
      QVERIFY(worker->waitForStarted(10000));
    }
    // 2 outer steps x 4 paths: 8 grants, 8 completions, 4 modules x 2 aggregations and versions,
    // run created and finished all reach the dashboard's timeline.
    dipaco::studio::DashboardPanel* dash = window.dashboard();
    QTRY_VERIFY_WITH_TIMEOUT(dash->timeline_points() >= 8 + 8 + 16 + 2, 120000);
    QVERIFY(dash->events_applied() >= 34);
    // WatchRun also streams the workers' metric points (the fake runner reports one train_loss
    // per task) and lease events name their worker: loss curves and the worker table fill.
    QTRY_VERIFY_WITH_TIMEOUT(dash->train_points(0) + dash->train_points(1) + dash->train_points(2) +
                                     dash->train_points(3) >=
                                 8,
                             60000);
    QTRY_VERIFY_WITH_TIMEOUT(dash->worker_table()->rowCount() >= 2, 20000);

    // An operator action from the studio reaches the server (the run is finished: no change).
    auto reply = launch->remote_control()->pause();
    QVERIFY2(reply.is_ok(), reply.is_ok() ? "" : reply.status().message().c_str());
    QVERIFY(
        !studio_test::write_screenshot(&window, QStringLiteral("dashboard-attached")).isEmpty());
    launch->detach();
    QTRY_COMPARE(detached.count(), 2);
  }
};

QTEST_MAIN(StudioServeTest)
#include "test_studio_serve.moc"
