// Runs panel: lists run directories, opens one (validation curves per path and routed,
// summary.md), compares two; metrics.jsonl parsing; CSV and PNG export of a plot.
#include <qcustomplot.h>

#include <QDir>
#include <QFile>
#include <QImage>
#include <QListWidget>
#include <QTemporaryDir>
#include <QtTest>

#include "plot_export.h"
#include "run_metrics.h"
#include "runs_panel.h"
#include "studio_test_support.h"

using dipaco::studio::RunsPanel;

namespace {

// Two paths, `steps` evaluations; with or without routed lines.
QByteArray metrics(int steps, double start, bool routed) {
  QByteArray out;
  for (int s = 1; s <= steps; ++s) {
    for (int p = 0; p < 2; ++p) {
      out += QStringLiteral("{\"outer_step\": %1, \"path\": %2, \"val_loss\": %3}\n")
                 .arg(s)
                 .arg(p)
                 .arg(start - 0.3 * s + 0.1 * p)
                 .toUtf8();
    }
    if (routed) {
      out += QStringLiteral("{\"outer_step\": %1, \"routed_val_loss\": %2}\n")
                 .arg(s)
                 .arg(start - 0.3 * s - 0.05)
                 .toUtf8();
    }
  }
  return out;
}

}  // namespace

class StudioRunsTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void parsesMetricsJsonl() {
    const auto m = dipaco::studio::parse_run_metrics(
        metrics(3, 8.0, true) + "not json\n{\"outer_step\": 4, \"path\": 0, \"val_l");
    QCOMPARE(m.path_val.size(), size_t{2});
    QCOMPARE(m.path_val.at(1).size(), size_t{3});
    QCOMPARE(m.path_val.at(1)[0].loss, 8.0 - 0.3 + 0.1);
    QCOMPARE(m.routed_val.size(), size_t{3});
    QCOMPARE(m.skipped_lines, 2);
    QCOMPARE(m.headline().size(), size_t{3});
    // Without routed lines the headline is the mean over paths.
    const auto plain = dipaco::studio::parse_run_metrics(metrics(2, 8.0, false));
    QCOMPARE(plain.headline().size(), size_t{2});
    QCOMPARE(plain.headline()[0].loss, 8.0 - 0.3 + 0.05);
  }

  void parsesRoundTraffic() {
    const auto m = dipaco::studio::parse_run_metrics(
        "{\"outer_step\": 1, \"bytes_up\": 100, \"bytes_down\": 400, \"bytes_path_local\": 0, "
        "\"data_parallel_bytes\": 5000}\n");
    QCOMPARE(m.traffic.size(), size_t{1});
    QCOMPARE(m.traffic[0].bytes_down, 400.0);
    QCOMPARE(m.traffic[0].data_parallel_bytes, 5000.0);
    QCOMPARE(m.skipped_lines, 0);
  }

  void listsOpensComparesAndExports() {
    QTemporaryDir root;
    QVERIFY(root.isValid());
    studio_test::write_file(root.filePath(QStringLiteral("alpha/run.json")), "{}\n");
    studio_test::write_file(root.filePath(QStringLiteral("alpha/metrics.jsonl")),
                            metrics(4, 8.0, true) +
                                "{\"outer_step\": 1, \"bytes_up\": 1024, \"bytes_down\": 1024, "
                                "\"bytes_path_local\": 0, \"data_parallel_bytes\": 20480}\n");
    studio_test::write_file(root.filePath(QStringLiteral("alpha/summary.md")),
                            "# alpha\n\nrouted validation loss 6.75\n");
    studio_test::write_file(root.filePath(QStringLiteral("beta/metrics.jsonl")),
                            metrics(3, 8.2, false));
    studio_test::write_file(root.filePath(QStringLiteral("not-a-run/notes.txt")), "hello\n");

    RunsPanel panel;
    panel.set_root(root.path());
    QCOMPARE(panel.refresh(), (QStringList{QStringLiteral("alpha"), QStringLiteral("beta")}));
    QCOMPARE(panel.list()->count(), 2);

    // Selecting one run opens it: two paths and the routed curve.
    panel.list()->item(0)->setSelected(true);
    QCOMPARE(panel.plot()->graphCount(), 3);
    QCOMPARE(panel.plot()->graph(0)->dataCount(), 4);
    QCOMPARE(panel.plot()->graph(2)->name(), QStringLiteral("routed"));
    QVERIFY(panel.summary_text().contains(QStringLiteral("# alpha")));
    QVERIFY2(panel.summary_text().contains(QStringLiteral("1 rounds moved 2.0 KiB")),
             qPrintable(panel.summary_text()));
    QVERIFY(panel.summary_text().contains(QStringLiteral("(10.0× more)")));

    // Selecting both compares their headline curves.
    panel.list()->item(1)->setSelected(true);
    QCOMPARE(panel.plot()->graphCount(), 2);
    QCOMPARE(panel.plot()->graph(0)->name(), QStringLiteral("alpha"));
    QCOMPARE(panel.plot()->graph(0)->dataCount(), 4);
    QCOMPARE(panel.plot()->graph(1)->dataCount(), 3);

    const QString png = studio_test::write_screenshot(&panel, QStringLiteral("runs"));
    QVERIFY(!png.isEmpty());
    qInfo("screenshot: %s", qPrintable(png));

    // CSV: a header and one row per point of every curve.
    const QString csv = root.filePath(QStringLiteral("compare.csv"));
    QVERIFY(dipaco::studio::export_plot(panel.plot(), csv));
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QStringList lines =
        QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 1 + 4 + 3);
    QCOMPARE(lines[0], QStringLiteral("series,x,y"));
    QVERIFY(lines[1].startsWith(QStringLiteral("alpha,1,")));
    // PNG at a chosen size.
    const QString image = root.filePath(QStringLiteral("compare.png"));
    QVERIFY(dipaco::studio::export_plot(panel.plot(), image, 640, 400));
    QCOMPARE(QImage(image).size(), QSize(640, 400));
  }
};

QTEST_MAIN(StudioRunsTest)
#include "test_studio_runs.moc"
