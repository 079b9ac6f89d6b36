// Attach to a running `dipaco serve`: the studio's gRPC client against a real CoordinatorService
// on 127.0.0.1 (tests/rpc's in-process server). Events of the watched run reach the dashboard,
// operator actions reach the coordinator, and every kind of failure (no server, wrong token,
// worker token, unknown run, TLS against plaintext, an unreadable CA file) is said plainly.
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QtTest>
#include <string>
#include <vector>

#include "attach_errors.h"
#include "dashboard_panel.h"
#include "launch_panel.h"
#include "main_window.h"
#include "rpc/rpc_fixture.h"
#include "serve_attachment.h"
#include "studio_test_support.h"
#include "test_support.h"
#include "watch_event.h"

using dipaco::EventKind;
using dipaco::RunEvent;
using dipaco::studio::AttachSettings;
using dipaco::studio::ServeAttachment;
namespace v1 = dipaco::v1;

namespace {

AttachSettings plaintext(const rpc_test::Served& s, const std::string& token) {
  AttachSettings a;
  a.address = s.server->target();
  a.tls = false;
  a.token = token;
  a.run_id = s.run_id;
  return a;
}

// Registers `worker` and leases a task: the coordinator records a lease_granted event.
bool lease_one(rpc_test::Served& s, const std::string& worker) {
  v1::RegisterRequest reg;
  reg.set_worker_id(worker);
  v1::RegisterResponse registered;
  auto c = rpc_test::context();
  if (!s.stub->Register(c.get(), reg, &registered).ok()) return false;
  v1::LeaseTaskRequest request;
  request.set_session_id(registered.session_id());
  v1::LeaseTaskResponse response;
  auto c2 = rpc_test::context();
  return s.stub->LeaseTask(c2.get(), request, &response).ok() && response.has_task();
}

// Attaches with `settings` and returns the failure message (empty when it connected).
QString attach_failure(const AttachSettings& settings) {
  ServeAttachment attachment;
  QSignalSpy failed(&attachment, &ServeAttachment::failed);
  QSignalSpy connected(&attachment, &ServeAttachment::connected);
  QString error;
  if (!attachment.attach(settings, std::make_shared<dipaco::studio::RunEventBuffer>(), &error))
    return error;
  if (!QTest::qWaitFor([&] { return failed.count() > 0 || connected.count() > 0; }, 20000))
    return QStringLiteral("(neither connected nor failed in 20 s)");
  return failed.isEmpty() ? QString() : failed.first().first().toString();
}

bool has_kind(const std::vector<RunEvent>& events, EventKind kind) {
  for (const RunEvent& e : events) {
    if (e.kind == kind) return true;
  }
  return false;
}

}  // namespace

class StudioAttachTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void watchesARunAndSendsOperatorActions() {
    rpc_test::Served s;
    QVERIFY(s.start());
    auto buffer = std::make_shared<dipaco::studio::RunEventBuffer>();
    ServeAttachment attachment;
    QSignalSpy connected(&attachment, &ServeAttachment::connected);
    QString error;
    QElapsedTimer clock;
    clock.start();
    QVERIFY2(attachment.attach(plaintext(s, rpc_test::kOperatorToken), buffer, &error),
             qPrintable(error));
    const qint64 attach_call_ms = clock.elapsed();
    QTRY_VERIFY_WITH_TIMEOUT(connected.count() == 1, 20000);
    qInfo("attach() returned after %lld ms; first event after %lld ms (loopback)",
          static_cast<long long>(attach_call_ms), static_cast<long long>(clock.elapsed()));
    QVERIFY(attachment.watching());
    std::vector<RunEvent> seen;
    auto drain = [&] {
      for (RunEvent& e : buffer->take_all()) seen.push_back(std::move(e));
    };
    QTRY_VERIFY_WITH_TIMEOUT((drain(), has_kind(seen, EventKind::kRunCreated)), 10000);
    QCOMPARE(seen.front().run_id, s.run_id);

    // A worker leases a task on the server: the grant streams to the studio.
    QVERIFY(lease_one(s, "w1"));
    QTRY_VERIFY_WITH_TIMEOUT((drain(), has_kind(seen, EventKind::kLeaseGranted)), 10000);

    // Operator actions go over the operator RPCs; their events come back on the stream.
    auto paused = attachment.control()->pause();
    QVERIFY2(paused.is_ok(), paused.is_ok() ? "" : paused.status().message().c_str());
    QVERIFY(paused->changed);
    QVERIFY(dipaco::test::contains(paused->message, "paused"));
    QTRY_VERIFY_WITH_TIMEOUT((drain(), has_kind(seen, EventKind::kRunPaused)), 10000);
    auto h = attachment.control()->set_inner_steps(9);
    QVERIFY(h.is_ok());
    QTRY_VERIFY_WITH_TIMEOUT((drain(), has_kind(seen, EventKind::kInnerStepsChanged)), 10000);
    QVERIFY(attachment.control()->resume().is_ok());
    QTRY_VERIFY_WITH_TIMEOUT((drain(), has_kind(seen, EventKind::kRunResumed)), 10000);
    auto drained = attachment.control()->drain("w1");
    QVERIFY(drained.is_ok());
    QVERIFY(drained->changed);
    // The worker table comes from ListWorkers.
    QVERIFY(attachment.control()->lists_workers());
    auto workers = attachment.control()->workers();
    QVERIFY2(workers.is_ok(), workers.is_ok() ? "" : workers.status().message().c_str());
    QCOMPARE(workers->size(), size_t{1});
    QCOMPARE((*workers)[0].worker_id, std::string("w1"));
    QCOMPARE((*workers)[0].state, std::string("draining"));
    QVERIFY((*workers)[0].live_lease_id > 0);
    auto undrained = attachment.control()->undrain("w1");
    QVERIFY(undrained.is_ok());
    QVERIFY(undrained->changed);
    QCOMPARE((*attachment.control()->workers())[0].state, std::string("active"));
    // An unknown lease is refused by the server, with its words.
    auto preempt = attachment.control()->preempt(987654);
    QVERIFY(!preempt.is_ok());
    QVERIFY(dipaco::test::contains(preempt.status().message(), "987654"));

    QSignalSpy ended(&attachment, &ServeAttachment::ended);
    attachment.detach();
    QCOMPARE(ended.count(), 1);
    QVERIFY(!attachment.active());
    QCOMPARE(attachment.control()->pause().status().code(),
             dipaco::StatusCode::kFailedPrecondition);
  }

  void mainWindowAttachFeedsTheDashboard() {
    rpc_test::Served s;
    QVERIFY(s.start());
    QVERIFY(lease_one(s, "w7"));
    dipaco::studio::MainWindow window;
    QSignalSpy attached(window.launch(), &dipaco::studio::LaunchPanel::serve_attached);
    window.launch()->set_attach_settings(plaintext(s, rpc_test::kOperatorToken));
    QString error;
    QVERIFY2(window.launch()->attach(&error), qPrintable(error));
    // A local run cannot start while attached: both would feed the one dashboard.
    QVERIFY(!window.launch()->start_local(&error));
    QVERIFY(error.contains(QStringLiteral("detach first")));
    QTRY_VERIFY_WITH_TIMEOUT(attached.count() == 1, 20000);
    QVERIFY(window.launch()->attach_status().contains(QStringLiteral("Watching run")));
    dipaco::studio::DashboardPanel* dash = window.dashboard();
    // run_created and the grant: two points on the timeline once a frame has drawn them.
    QTRY_VERIFY_WITH_TIMEOUT(dash->timeline_points() >= 2, 10000);
    QVERIFY(dash->events_applied() >= 2);
    QVERIFY(!studio_test::write_screenshot(window.launch(), QStringLiteral("launch-attached"))
                 .isEmpty());
    // The dashboard's operator actions now reach the server (through its control thread).
    auto reply = window.launch()->remote_control()->pause();
    QVERIFY(reply.is_ok());
    QTRY_VERIFY_WITH_TIMEOUT(dash->timeline_points() >= 3, 10000);
    window.launch()->detach();
    QVERIFY(window.launch()->attach_status().contains(QStringLiteral("detached")));
  }

  void metricEventsBecomeLossPoints() {
    // What WatchRun carries for a metric and a lease, as the dashboard folds it.
    v1::RunEvent metric;
    metric.set_unix_ms(1700000000000);
    metric.mutable_metric()->set_path_id(2);
    metric.mutable_metric()->set_outer_step(3);
    metric.mutable_metric()->set_name("train_loss");
    metric.mutable_metric()->set_value(5.25);
    auto e = dipaco::studio::from_watch_event(metric, 4);
    QVERIFY(e.has_value());
    QCOMPARE(e->kind, EventKind::kMetric);
    QCOMPARE(e->path_id, 2u);
    QCOMPARE(e->metric_name, std::string("train_loss"));
    v1::RunEvent grant;
    grant.set_unix_ms(1700000000100);
    grant.mutable_lease()->set_kind(v1::LeaseEvent::KIND_GRANTED);
    grant.mutable_lease()->set_lease_id("17");
    grant.mutable_lease()->set_worker_id("gpu-3");
    grant.mutable_lease()->set_path_id(2);
    grant.mutable_lease()->set_outer_step(3);
    auto g = dipaco::studio::from_watch_event(grant, 4);
    QVERIFY(g.has_value());
    QCOMPARE(g->lease_id, int64_t{17});
    v1::RunEvent unknown;
    unknown.mutable_other()->set_kind("something_newer");
    QVERIFY(!dipaco::studio::from_watch_event(unknown, 4).has_value());

    dipaco::studio::DashboardPanel panel;
    panel.show();  // hidden panels only fold events; shown ones draw them
    panel.buffer()->push(*e);
    panel.buffer()->push(*g);
    panel.process_pending();
    QCOMPARE(panel.train_points(2), 1);
    QCOMPARE(panel.heat(2, 3), 0.5);
  }

  void wrongTokenSaysToken() {
    rpc_test::Served s;
    QVERIFY(s.start());
    const QString message = attach_failure(plaintext(s, "not-the-token"));
    QVERIFY2(message.contains(QStringLiteral("refused the token")), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("--operator-token-file")), qPrintable(message));
    QVERIFY(!message.contains(QStringLiteral("not-the-token")));
    const QString worker = attach_failure(plaintext(s, rpc_test::kWorkerToken));
    QVERIFY2(worker.contains(QStringLiteral("worker")), qPrintable(worker));
  }

  void unknownRunSaysRunId() {
    rpc_test::Served s;
    QVERIFY(s.start());
    AttachSettings a = plaintext(s, rpc_test::kOperatorToken);
    a.run_id = 99;
    const QString message = attach_failure(a);
    QVERIFY2(message.contains(QStringLiteral("has no run 99")), qPrintable(message));
  }

  void noServerSaysWhatToCheck() {
    AttachSettings a;
    a.address = "127.0.0.1:1";  // nothing listens on port 1
    a.tls = false;
    a.token = "t";
    const QString message = attach_failure(a);
    QVERIFY2(message.startsWith(QStringLiteral("no coordinator at 127.0.0.1:1")),
             qPrintable(message));
    QVERIFY(message.contains(QStringLiteral("is dipaco serve running")));
    QVERIFY(message.contains(QStringLiteral("port open")));
  }

  void tlsFailuresNameTheCa() {
    rpc_test::Served s;
    QVERIFY(s.start());
    AttachSettings a = plaintext(s, rpc_test::kOperatorToken);
    a.tls = true;  // the server speaks plaintext: the handshake fails
    const QString message = attach_failure(a);
    QVERIFY2(message.contains(QStringLiteral("TLS")), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("CA file")), qPrintable(message));

    a.ca_file = "/nonexistent/ca.pem";
    const QString unreadable = attach_failure(a);
    QVERIFY2(unreadable.contains(QStringLiteral("/nonexistent/ca.pem")), qPrintable(unreadable));
  }

  void explainsEveryCode() {
    AttachSettings a;
    a.address = "h:1";
    a.run_id = 3;
    using dipaco::studio::explain_attach_failure;
    QVERIFY(dipaco::test::contains(
        explain_attach_failure({grpc::StatusCode::UNAVAILABLE, "connection refused"}, a),
        "no coordinator at h:1"));
    QVERIFY(dipaco::test::contains(
        explain_attach_failure({grpc::StatusCode::UNAVAILABLE, "Ssl handshake failed"}, a),
        "check the CA file"));
    QVERIFY(dipaco::test::contains(
        explain_attach_failure({grpc::StatusCode::UNAUTHENTICATED, "bad"}, a), "token"));
    QVERIFY(dipaco::test::contains(
        explain_attach_failure({grpc::StatusCode::NOT_FOUND, "no run"}, a), "has no run 3"));
  }
};

QTEST_MAIN(StudioAttachTest)
#include "test_studio_attach.moc"
