// Runs history from SQLite: run directories' coordinator.db (runs, metrics, events) and
// run.json listed; a past run replayed into the dashboard; two runs' validation and training
// curves compared on one plot; a run's paths exported from the studio (export_run on a worker
// thread) with its files reported and its errors shown. Screenshot: runs-history.png.
#include <qcustomplot.h>

#include <QDir>
#include <QFile>
#include <QListWidget>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <string>

#include "dashboard_panel.h"
#include "export/export_fixture.h"
#include "main_window.h"
#include "run_history.h"
#include "runs_panel.h"
#include "store/schema.h"
#include "store/sqlite_db.h"
#include "studio_test_support.h"

using dipaco::studio::RunRecord;
using dipaco::studio::RunsPanel;

namespace {

// A coordinator.db in `dir` holding `runs` runs; run r has 2 paths × 3 outer steps of
// train_loss (start - 0.5 step - 0.1 path), one val_loss per path at step 3, and per task a
// lease_granted and a lease_completed event.
void write_database(const QString& dir, int runs, double start) {
  QDir().mkpath(dir);
  dipaco::SqliteOptions options;
  options.synchronous = dipaco::Synchronous::kOff;
  auto db = dipaco::SqliteDb::open(QDir(dir).filePath("coordinator.db").toStdString(), options);
  QVERIFY2(db.is_ok(), db.status().message().c_str());
  QVERIFY(dipaco::migrate(*db));
  for (int r = 1; r <= runs; ++r) {
    auto run = db->prepare(
        "INSERT INTO runs(name, state, outer_steps, inner_steps, lease_timeout_ms, max_lease_ms, "
        "partial_min_fraction, partial_after_ms, created_ms) VALUES (?1, ?2, 3, 20, 60000, 0, 1, "
        "0, ?3)");
    QVERIFY(run.is_ok());
    run->bind(1, "run-" + std::to_string(r)).bind(2, r == runs ? "running" : "finished");
    run->bind(3, int64_t{1700000000000} + r);
    QVERIFY(run->run());
    int64_t t = 1700000000000;
    for (int step = 0; step < 3; ++step) {
      for (int path = 0; path < 2; ++path) {
        auto granted =
            db->prepare("INSERT INTO events(run, time_ms, kind, payload) VALUES (?1, ?2, ?3, ?4)");
        QVERIFY(granted.is_ok());
        granted->bind(1, int64_t{r}).bind(2, t += 10).bind(3, "lease_granted");
        granted->bind(4, "lease granted");
        QVERIFY(granted->run());
        auto metric = db->prepare(
            "INSERT INTO metrics(run, path, outer_step, inner_step, name, value, time_ms) "
            "VALUES (?1, ?2, ?3, 20, 'train_loss', ?4, ?5)");
        QVERIFY(metric.is_ok());
        metric->bind(1, int64_t{r}).bind(2, path).bind(3, step);
        metric->bind(4, start - 0.5 * step - 0.1 * path).bind(5, t += 10);
        QVERIFY(metric->run());
        auto completed = db->prepare(
            "INSERT INTO events(run, time_ms, kind, payload) VALUES (?1, ?2, 'lease_completed', "
            "'done')");
        QVERIFY(completed.is_ok());
        completed->bind(1, int64_t{r}).bind(2, t += 10);
        QVERIFY(completed->run());
      }
    }
    for (int path = 0; path < 2; ++path) {
      auto val = db->prepare(
          "INSERT INTO metrics(run, path, outer_step, inner_step, name, value, time_ms) "
          "VALUES (?1, ?2, 3, 0, 'val_loss', ?3, ?4)");
      QVERIFY(val.is_ok());
      val->bind(1, int64_t{r}).bind(2, path).bind(3, start - 1.2).bind(4, t += 10);
      QVERIFY(val->run());
    }
  }
}

const RunRecord* find(const std::vector<RunRecord>& runs, const QString& label) {
  for (const RunRecord& r : runs) {
    if (r.label == label) return &r;
  }
  return nullptr;
}

}  // namespace

class StudioHistoryTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void listsRunsFromTheirDatabases() {
    QTemporaryDir root;
    write_database(root.filePath("gamma"), 1, 8.0);
    studio_test::write_file(
        root.filePath("gamma/run.json"),
        "{\"format\": \"dipaco-run/1\", \"name\": \"gamma\", \"routed_val_loss\": 6.5}\n");
    write_database(root.filePath("served"), 2, 7.0);  // a dipaco serve database: two runs
    studio_test::write_file(root.filePath("old/metrics.jsonl"),
                            "{\"outer_step\": 1, \"path\": 0, \"val_loss\": 7}\n");
    studio_test::write_file(root.filePath("nothing/notes.txt"), "hi\n");
    const auto runs = dipaco::studio::list_runs(root.path());
    QCOMPARE(runs.size(), size_t{4});
    const RunRecord* gamma = find(runs, "gamma");
    QVERIFY(gamma != nullptr);
    QCOMPARE(gamma->db_run_id, int64_t{1});
    QCOMPARE(gamma->name, QStringLiteral("run-1"));
    QCOMPARE(gamma->state, QStringLiteral("running"));
    QCOMPARE(gamma->outer_steps, uint64_t{3});
    QVERIFY(gamma->has_results);
    QCOMPARE(gamma->routed_val_loss, 6.5);
    QVERIFY(find(runs, QStringLiteral("served · run 1")) != nullptr);
    QCOMPARE(find(runs, QStringLiteral("served · run 2"))->db_run_id, int64_t{2});
    const RunRecord* old = find(runs, "old");
    QVERIFY(old != nullptr);
    QCOMPARE(old->db_run_id, int64_t{0});
    QVERIFY(std::isnan(old->routed_val_loss));

    auto events = dipaco::studio::load_run_events(*gamma);
    QVERIFY2(events.is_ok(), events.status().message().c_str());
    QCOMPARE(events->size(), size_t{6 + 2 + 12});  // train, val, lease events
    for (size_t i = 1; i < events->size(); ++i)
      QVERIFY((*events)[i - 1].time_ms <= (*events)[i].time_ms);
    const auto train = dipaco::studio::mean_train_loss(*events);
    QCOMPARE(train.size(), size_t{3});
    QCOMPARE(train[1].outer_step, 1.5);
    QCOMPARE(train[1].loss, 8.0 - 0.5 - 0.05);
    auto old_events = dipaco::studio::load_run_events(*old);
    QVERIFY(old_events.is_ok());
    QCOMPARE(old_events->size(), size_t{1});
  }

  void opensAPastRunInTheDashboard() {
    QTemporaryDir root;
    write_database(root.filePath("gamma"), 1, 8.0);
    dipaco::studio::MainWindow window;
    window.runs()->set_root(root.path());
    QCOMPARE(window.runs()->records().size(), size_t{1});
    window.show();
    window.runs()->list()->item(0)->setSelected(true);
    QVERIFY(window.runs()->selected_run().has_value());
    QString error;
    QVERIFY2(window.replay_in_dashboard(*window.runs()->selected_run(), &error), qPrintable(error));
    dipaco::studio::DashboardPanel* dash = window.dashboard();
    QTRY_COMPARE(dash->train_points(0), 3);
    QCOMPARE(dash->train_points(1), 3);
    QCOMPARE(dash->val_points(1), 1);
    QCOMPARE(dash->timeline_points(), 12);
    QVERIFY(dash->status_text().startsWith(QStringLiteral("Replay of gamma")));
  }

  void comparesTwoRunsLossCurves() {
    QTemporaryDir root;
    write_database(root.filePath("gamma"), 1, 8.0);
    studio_test::write_file(root.filePath("gamma/metrics.jsonl"),
                            "{\"outer_step\": 3, \"routed_val_loss\": 6.9}\n{\"outer_step\": 1, "
                            "\"routed_val_loss\": 7.6}\n");
    write_database(root.filePath("delta"), 1, 7.5);
    RunsPanel panel;
    panel.set_root(root.path());
    QCOMPARE(panel.refresh(), (QStringList{QStringLiteral("delta"), QStringLiteral("gamma")}));
    // One run: its validation curves and, from the database, its mean training loss.
    panel.list()->item(1)->setSelected(true);
    QCustomPlot* plot = panel.plot();
    QCOMPARE(plot->graph(plot->graphCount() - 1)->name(),
             QStringLiteral("training (mean over paths)"));
    QCOMPARE(plot->graph(plot->graphCount() - 1)->dataCount(), 3);
    // Two (gamma selected first): headline validation (solid) and mean training loss (dashed).
    panel.list()->item(0)->setSelected(true);
    QCOMPARE(plot->graphCount(), 4);
    QCOMPARE(plot->graph(0)->name(), QStringLiteral("gamma"));
    QCOMPARE(plot->graph(0)->dataCount(), 2);  // gamma's routed curve
    QCOMPARE(plot->graph(1)->dataCount(), 0);  // delta has no metrics.jsonl
    QCOMPARE(plot->graph(2)->name(), QStringLiteral("gamma training"));
    QCOMPARE(plot->graph(3)->name(), QStringLiteral("delta training"));
    QCOMPARE(plot->graph(3)->dataCount(), 3);
    QCOMPARE(plot->graph(3)->data()->at(0)->value, 7.5 - 0.05);
    QVERIFY(!studio_test::write_screenshot(&panel, QStringLiteral("runs-history")).isEmpty());
  }

  void exportsARunsPathsWithProgressAndErrors() {
    QTemporaryDir root;
    write_database(root.filePath("gamma"), 1, 8.0);  // no run.json: not exportable
    RunsPanel panel;
    QSignalSpy exported(&panel, &RunsPanel::exported);
    panel.set_root(root.path());
    QString error;
    QVERIFY(!panel.export_selected(root.filePath("out"), true, true, &error));
    QVERIFY(error.contains(QStringLiteral("select one run")));
    panel.list()->item(0)->setSelected(true);
    QVERIFY(!panel.export_selected(root.filePath("out"), false, false, &error));
    QVERIFY(panel.export_selected(root.filePath("out"), true, true, &error));
    QTRY_COMPARE_WITH_TIMEOUT(exported.count(), 1, 30000);
    QVERIFY(!exported.first().at(0).toBool());
    QVERIFY2(panel.export_status().contains(QStringLiteral("run.json")),
             qPrintable(panel.export_status()));
    QVERIFY(!QFileInfo::exists(root.filePath("out")));

    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    auto tokenizer = export_fixture::train_tokenizer();
    QVERIFY2(tokenizer.is_ok(), tokenizer.status().message().c_str());
    auto run = export_fixture::make_run(root.filePath("tiny"), *tokenizer, 2);
    QVERIFY2(run.is_ok(), run.status().message().c_str());
    panel.refresh();
    panel.list()->clearSelection();
    panel.list()->item(1)->setSelected(true);
    QCOMPARE(panel.selected_run()->label, QStringLiteral("tiny"));
    QVERIFY2(panel.export_selected(root.filePath("out"), true, true, &error), qPrintable(error));
    QVERIFY(panel.exporting());
    QTRY_COMPARE_WITH_TIMEOUT(exported.count(), 2, 60000);
    QVERIFY2(exported.last().at(0).toBool(), qPrintable(exported.last().at(1).toString()));
    QVERIFY2(panel.export_status().contains(QStringLiteral("exported 2 paths")),
             qPrintable(panel.export_status()));
    QVERIFY(QFileInfo::exists(root.filePath("out/dipaco.json")));
    QVERIFY(QFileInfo::exists(root.filePath("out/path-1.gguf")));
    QVERIFY(QFileInfo::exists(root.filePath("out/path-0/config.json")));
  }
};

QTEST_MAIN(StudioHistoryTest)
#include "test_studio_history.moc"
