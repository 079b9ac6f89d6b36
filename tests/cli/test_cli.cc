#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "cli_runner.h"

class CliTest : public QObject {
  Q_OBJECT

 private slots:
  void helpListsEverySubcommandOfTheDesign() {
    CliResult r = run_cli({"--help"});
    QCOMPARE(r.exit_code, 0);
    for (const char* name :
         {"run", "serve", "work", "train", "export", "generate", "eval", "doctor", "data"}) {
      QVERIFY2(r.out.contains(QStringLiteral("  %1 ").arg(QLatin1String(name))), name);
    }
  }

  void noArgumentsIsUsageError() {
    CliResult r = run_cli({});
    QCOMPARE(r.exit_code, 2);
    QVERIFY(r.err.contains("usage: dipaco"));
  }

  void unknownCommandSuggestsTheClosest() {
    CliResult r = run_cli({"trian"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unknown command 'trian'"), qPrintable(r.err));
    QVERIFY2(r.err.contains("did you mean 'train'?"), qPrintable(r.err));
  }

  void unknownFlagOfASubcommandIsUsageError() {
    CliResult r = run_cli({"doctor", "--verbos"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unknown option '--verbos'"), qPrintable(r.err));
  }

  void versionPrintsTheVersion() {
    CliResult r = run_cli({"--version"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY(r.out.startsWith("dipaco " DIPACO_VERSION));
  }

  void doctorReportsCpuAndBlas() {
    CliResult r = run_cli({"doctor"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("cpu:"), qPrintable(r.out));
    QVERIFY2(r.out.contains("blas:"), qPrintable(r.out));
  }

  // A directory where a file is expected (say `dipaco train runs/tiny` meant as "resume") must
  // not be read as an empty config that trains with every default.
  void directoryGivenAsAFileIsRefused() {
    QTemporaryDir dir;
    for (const QStringList& args :
         {QStringList{"train", dir.path(), "--checkpoint-dir", dir.filePath("ck"), "--steps", "1"},
          QStringList{"run", dir.path(), "--check"}}) {
      CliResult r = run_cli(args);
      QVERIFY2(r.exit_code != 0, qPrintable(args.join(' ')));
      QVERIFY2(r.err.contains(dir.path() + ": is a directory, expected a file"), qPrintable(r.err));
      QVERIFY(!QFile::exists(dir.filePath("ck")));
    }
  }

  void workerCheckAndVersion() {
    CliResult r = run_program(DIPACO_WORKER_PATH, {"--check"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("check: ok"), qPrintable(r.out));
    QVERIFY(r.out.contains("backend: cpu"));
    r = run_program(DIPACO_WORKER_PATH, {"--bogus"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY(r.err.contains("unknown option '--bogus'"));
  }
};

QTEST_GUILESS_MAIN(CliTest)
#include "test_cli.moc"
