// End to end: the studio's main window launches a tiny local DiPaCo run from the launch panel
// and the dashboard sees its loss points arrive; the SSH command, the attach form's message and
// persisted settings. Screenshots of the launch panel and the live dashboard.
#include <QComboBox>
#include <QFile>
#include <QListWidget>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>
#include <string>
#include <vector>

#include "algo/grid_spec.h"
#include "dashboard_panel.h"
#include "data/token_file.h"
#include "data_panel.h"
#include "grid_designer_panel.h"
#include "launch_panel.h"
#include "main_window.h"
#include "runs_panel.h"
#include "studio_test_support.h"

using dipaco::studio::MainWindow;

namespace {

// `count` documents over a 64-token vocabulary, each with a simple pattern (two families, so
// routing has something to split).
std::vector<std::vector<uint32_t>> documents(int count, uint32_t salt) {
  std::vector<std::vector<uint32_t>> docs;
  for (int d = 0; d < count; ++d) {
    std::vector<uint32_t> doc;
    const uint32_t base = d % 2 == 0 ? 2 : 33;
    const uint32_t stride = 1 + static_cast<uint32_t>((d + static_cast<int>(salt)) % 3);
    for (uint32_t i = 0; i < 48; ++i)
      doc.push_back(base + (static_cast<uint32_t>(d) + stride * i) % 30);
    docs.push_back(doc);
  }
  return docs;
}

// train.tok (40 documents) and val.tok (10) in dir, as tiny_grid_toml's [data] expects.
bool write_corpus(const QTemporaryDir& dir) {
  return dipaco::write_token_file(dir.filePath(QStringLiteral("train.tok")).toStdString(), 64,
                                  documents(40, 0))
             .is_ok() &&
         dipaco::write_token_file(dir.filePath(QStringLiteral("val.tok")).toStdString(), 64,
                                  documents(10, 1))
             .is_ok();
}

std::string tiny_grid_toml(const QTemporaryDir& dir, int outer_steps = 2,
                           const char* run = "runs/run") {
  const auto path = [&](const char* name) {
    return dir.filePath(QString::fromLatin1(name)).toStdString();
  };
  return "[run]\nname = \"studio-e2e\"\ndir = \"" + path(run) +
         "\"\nouter_steps = " + std::to_string(outer_steps) +
         "\ninner_steps = 2\nworkers = 1\nthreads = 1\n"
         "[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\nd_ff = 64\nmax_seq_len = 32\n"
         "[inner]\nbatch_size = 2\nseq_len = 32\nwarmup_steps = 1\nlr = 1e-2\n"
         "[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n"
         "[[grid.level]]\nblocks = [1, 1]\nmodules = 1\n"
         "[routing]\nbase_steps = 2\nprefix_tokens = 8\n"
         "[data]\ntrain = \"" +
         path("train.tok") + "\"\nval = \"" + path("val.tok") + "\"\n";
}

}  // namespace

class StudioLaunchTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    studio_test::isolate_settings();
    QSettings().clear();
  }

  void launchesATinyLocalRunAndSeesLossPoints() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QVERIFY(write_corpus(dir));
    auto grid = dipaco::parse_grid_spec(tiny_grid_toml(dir), "e2e.toml");
    QVERIFY2(grid.is_ok(), grid.status().message().c_str());

    MainWindow window;
    window.resize(1280, 860);
    window.show();
    window.designer()->set_spec(*grid);
    QVERIFY2(window.designer()->valid(), qPrintable(window.designer()->error()));
    QSignalSpy finished(window.launch(), &dipaco::studio::LaunchPanel::run_finished);
    // The local workers' backend: auto by default; this test trains on the CPU whatever the host.
    auto* backend = window.launch()->findChild<QComboBox*>(QStringLiteral("launch.backend"));
    QVERIFY(backend != nullptr);
    QCOMPARE(backend->count(), 3);
    QCOMPARE(backend->currentData().toString(), QStringLiteral("auto"));
    backend->setCurrentIndex(backend->findData(QStringLiteral("cpu")));
    QString error;
    QVERIFY2(window.launch()->start_local(&error), qPrintable(error));
    QVERIFY(window.launch()->running());
    QCOMPARE(window.tabs()->currentWidget(), static_cast<QWidget*>(window.dashboard()));

    // Loss points arrive while the run is going (the dashboard is fed through its buffer).
    dipaco::studio::DashboardPanel* dash = window.dashboard();
    QTRY_VERIFY_WITH_TIMEOUT(dash->train_points(0) + dash->train_points(1) > 0, 60000);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QVERIFY2(finished.at(0).at(0).toBool(), qPrintable(finished.at(0).at(1).toString()));
    // Every event the run pushed has been drawn (frames apply them at the frame rate).
    QTRY_COMPARE(dash->events_applied(), dash->buffer()->pushed());
    // 2 paths × 2 outer steps, one shard each: 2 train points and 2 validation points per path.
    QCOMPARE(dash->train_points(0) + dash->train_points(1), 4);
    QCOMPARE(dash->val_points(0) + dash->val_points(1), 4);
    QCOMPARE(dash->routed_points(), 2);
    QCOMPARE(dash->comm_rounds(), 2);
    QVERIFY(dash->timeline_points() >= 8);  // 4 grants + 4 completions at least
    QCOMPARE(dash->worker_table()->rowCount(), 1);
    QCOMPARE(dash->worker_table()->item(0, 0)->text(), QStringLiteral("local-0"));
    QCOMPARE(dash->heat(0, 1), 1.0);
    QVERIFY(!window.launch()->control()->attached());
    QVERIFY(window.launch()->status_text().contains(QStringLiteral("finished")));
    QVERIFY(window.launch()->output_text().contains(QStringLiteral("eval after outer step 2")));
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("runs/run/run.json"))));
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("runs/run/metrics.jsonl"))));

    const QString dash_png =
        studio_test::write_screenshot(&window, QStringLiteral("dashboard-live"));
    QVERIFY(!dash_png.isEmpty());
    window.tabs()->setCurrentWidget(window.launch());
    const QString launch_png = studio_test::write_screenshot(&window, QStringLiteral("launch"));
    QVERIFY(!launch_png.isEmpty());
    // The finished run shows in the runs panel.
    window.runs()->set_root(dir.filePath(QStringLiteral("runs")));
    QCOMPARE(window.runs()->refresh(), QStringList{QStringLiteral("run")});
    QVERIFY(window.runs()->open_run(dir.filePath(QStringLiteral("runs/run"))));
    QVERIFY(window.runs()->summary_text().contains(QStringLiteral("routed validation loss")));
    qInfo("screenshots: %s %s", qPrintable(dash_png), qPrintable(launch_png));
  }

  void operatorActionsOnALiveRun() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QVERIFY(write_corpus(dir));
    auto grid = dipaco::parse_grid_spec(tiny_grid_toml(dir, 6, "runs/live"), "live.toml");
    QVERIFY2(grid.is_ok(), grid.status().message().c_str());
    MainWindow window;
    window.show();
    window.designer()->set_spec(*grid);
    QSignalSpy finished(window.launch(), &dipaco::studio::LaunchPanel::run_finished);
    QString error;
    QVERIFY2(window.launch()->start_local(&error), qPrintable(error));
    dipaco::studio::RunControl* control = window.launch()->control();
    QTRY_VERIFY_WITH_TIMEOUT(control->attached(), 30000);
    // Paused, the run leases nothing more: it cannot finish 6 outer steps with one worker.
    auto paused = control->pause();
    QVERIFY2(paused.is_ok(), paused.status().message().c_str());
    QVERIFY(paused->changed);
    auto h = control->set_inner_steps(3);
    QVERIFY2(h.is_ok() && h->changed,
             h.is_ok() ? h->message.c_str() : h.status().message().c_str());
    // The worker registers once its backend is up (with "auto", after probing for a GPU).
    QTRY_VERIFY_WITH_TIMEOUT(control->workers().is_ok() && control->workers()->size() == 1, 20000);
    // The dashboard's worker poll (off the GUI thread, about once a second) fills host and
    // device.
    QTableWidget* table = window.dashboard()->worker_table();
    QTRY_VERIFY_WITH_TIMEOUT(table->rowCount() == 1 && table->item(0, 2) != nullptr &&
                                 table->item(0, 2)->text().startsWith(QStringLiteral("cpu")),
                             10000);
    QCOMPARE(finished.count(), 0);
    // Stop: the run ends as interrupted; the same grid would resume it.
    window.launch()->stop();
    QVERIFY(!control->attached());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    QVERIFY(finished.at(0).at(0).toBool());
    QVERIFY2(finished.at(0).at(1).toString().contains(QStringLiteral("stopped")),
             qPrintable(finished.at(0).at(1).toString()));
    QVERIFY(!window.launch()->running());
    // The operator events reached the dashboard's timeline (created, paused, H changed).
    QTRY_VERIFY(window.dashboard()->timeline_points() >= 3);
  }

  void invalidGridDoesNotStart() {
    MainWindow window;
    dipaco::GridSpec bad;
    bad.levels = {{0, 0, 1, false}};  // the model has 4 blocks
    window.designer()->set_spec(bad);
    QVERIFY(!window.designer()->valid());
    QString error;
    QVERIFY(!window.launch()->start_local(&error));
    QVERIFY2(error.contains(QStringLiteral("model.n_layers")), qPrintable(error));
    QVERIFY(!window.launch()->running());
  }

  // GPUs per worker on the CPU backend: the run refuses before writing anything and the panel
  // shows why.
  void gpusPerWorkerOnTheCpuIsRefusedWithTheReason() {
    QTemporaryDir dir;
    QVERIFY(write_corpus(dir));
    auto grid = dipaco::parse_grid_spec(tiny_grid_toml(dir), "e2e.toml");
    QVERIFY2(grid.is_ok(), grid.status().message().c_str());
    MainWindow window;
    window.designer()->set_spec(*grid);
    QSignalSpy finished(window.launch(), &dipaco::studio::LaunchPanel::run_finished);
    auto* backend = window.launch()->findChild<QComboBox*>(QStringLiteral("launch.backend"));
    auto* gpus = window.launch()->findChild<QSpinBox*>(QStringLiteral("launch.gpus_per_worker"));
    QVERIFY(backend != nullptr && gpus != nullptr);
    QCOMPARE(gpus->value(), 1);
    backend->setCurrentIndex(backend->findData(QStringLiteral("cpu")));
    gpus->setValue(2);
    QString error;
    QVERIFY2(window.launch()->start_local(&error), qPrintable(error));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    QVERIFY(!finished.at(0).at(0).toBool());
    const QString why = finished.at(0).at(1).toString();
    QVERIFY2(why.contains(QStringLiteral("needs the backend cuda or auto")), qPrintable(why));
    QVERIFY(!QFile::exists(dir.filePath(QStringLiteral("runs/run"))));
  }

  void sshCommandAndAttachForm() {
    using dipaco::studio::ssh_worker_command;
    QCOMPARE(ssh_worker_command(QStringLiteral("ssh {host} dipaco-worker --config {config}"),
                                QStringLiteral("gpu1"), QStringLiteral("/etc/dipaco/worker.toml")),
             QStringLiteral("ssh gpu1 dipaco-worker --config /etc/dipaco/worker.toml"));
    QCOMPARE(
        ssh_worker_command(QStringLiteral("ssh -p 2222 {host} dipaco-worker --config {config}"),
                           QStringLiteral("me@h"), QStringLiteral("/home/me/my worker.toml")),
        QStringLiteral("ssh -p 2222 me@h dipaco-worker --config '/home/me/my worker.toml'"));
    dipaco::studio::LaunchPanel panel;
    // The attach address starts at dipaco serve's default --address.
    QCOMPARE(panel.attach_address(), QStringLiteral("127.0.0.1:7443"));
    panel.set_ssh(QStringLiteral("ssh {host} dipaco-worker --config {config}"),
                  QStringLiteral("node7"), QStringLiteral("/etc/dipaco/worker.toml"));
    QCOMPARE(panel.ssh_command(),
             QStringLiteral("ssh node7 dipaco-worker --config /etc/dipaco/worker.toml"));
    // Attach checks its form before anything goes on the wire (a real server: test_studio_attach).
    dipaco::studio::AttachSettings no_token;
    no_token.address = "127.0.0.1:50051";
    panel.set_attach_settings(no_token);
    QString error;
    QVERIFY(!panel.attach(&error));
    QVERIFY(error.contains(QStringLiteral("operator token")));
    QVERIFY(!panel.control()->attached());
    QCOMPARE(panel.control()->pause().status().code(), dipaco::StatusCode::kFailedPrecondition);
  }

  void settingsPersist() {
    {
      MainWindow window;
      window.tabs()->setCurrentIndex(3);
      window.runs()->set_root(QStringLiteral("/tmp/dipaco-studio-test-runs"));
      window.launch()->set_ssh(
          QStringLiteral("ssh -J bastion {host} dipaco-worker --config {config}"),
          QStringLiteral("gpu9"), QStringLiteral("/srv/worker.toml"));
      dipaco::studio::DataPrepSettings data;
      data.brown = false;
      data.files = QStringLiteral("/srv/corpus.jsonl.gz");
      data.out_dir = QStringLiteral("data/mine");
      data.vocab_size = 4096;
      window.data()->set_settings(data);
      window.dashboard()->set_smoothing(5);
      window.dashboard()->set_log_scale(true);
      window.resize(1000, 700);
      window.close();
    }
    MainWindow again;
    QCOMPARE(again.tabs()->currentIndex(), 3);
    QCOMPARE(again.runs()->root(), QStringLiteral("/tmp/dipaco-studio-test-runs"));
    QCOMPARE(again.launch()->ssh_command(),
             QStringLiteral("ssh -J bastion gpu9 dipaco-worker --config /srv/worker.toml"));
    QCOMPARE(again.dashboard()->smoothing(), 5);
    QVERIFY(!again.data()->settings().brown);
    QCOMPARE(again.data()->settings().files, QStringLiteral("/srv/corpus.jsonl.gz"));
    QCOMPARE(again.data()->settings().vocab_size, 4096);
    QVERIFY(again.dashboard()->log_scale());
    QSettings().clear();
  }
};

QTEST_MAIN(StudioLaunchTest)
#include "test_studio_launch.moc"
