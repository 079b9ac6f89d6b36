// `dipaco run` from the command line: a tiny grid trains and prints its summary, --check
// describes the grid, bad grids are usage errors that name the key.
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "backend/cuda_runtime.h"
#include "cli_runner.h"
#include "run_test_data.h"

namespace {
void write_text(const QString& path, const std::string& text) {
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) qFatal("cannot write %s", qPrintable(path));
  f.write(text.data(), static_cast<qint64>(text.size()));
}
}  // namespace

class RunCliTest : public QObject {
  Q_OBJECT

 private slots:
  void tinyGridTrainsAndReports() {
    QTemporaryDir dir;
    dipaco::test::write_tiny_corpus(dir.path());
    const QString grid = dir.filePath("grid.toml");
    write_text(grid, dipaco::test::tiny_grid(dir.path(), dipaco::test::kTwoByTwo,
                                             "[routing]\nbase_steps = 10\n"));
    CliResult check = run_cli({"run", grid, "--check"});
    QCOMPARE(check.exit_code, 0);
    QVERIFY2(check.out.contains("4 modules, 4 paths"), qPrintable(check.out));
    QVERIFY(check.out.contains("used by 2 paths"));

    CliResult r = run_cli({"run", grid, "--outer-steps", "2"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err + r.out));
    QVERIFY2(r.out.contains("routed validation loss"), qPrintable(r.out));
    QVERIFY(r.out.contains("eval after outer step 2"));
    QVERIFY(QFile::exists(dir.filePath("run/run.json")));
    QVERIFY(QFile::exists(dir.filePath("run/paths/path-3.safetensors")));
    QVERIFY(QFile::exists(dir.filePath("run/coordinator.db")));
    // --backend auto (the default): without a usable GPU the base model and evaluation run on
    // the CPU as before, saying nothing; with one, on worker 0's GPU, said in one line.
    if (dipaco::usable_gpu_indices(dipaco::probe_cuda()).empty()) {
      QVERIFY2(!r.out.contains("base model and evaluation"), qPrintable(r.out));
    } else {
      QVERIFY2(r.out.contains("base model and evaluation: "), qPrintable(r.out));
    }
  }

  void badGridsAreUsageErrors() {
    QTemporaryDir dir;
    const QString grid = dir.filePath("grid.toml");
    write_text(grid, dipaco::test::tiny_grid(dir.path(), "[[grid.level]]\nblocks = [0, 0]\n"));
    CliResult r = run_cli({"run", grid});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("must end at block 1"), qPrintable(r.err));
    write_text(grid, "[run]\nouter_stepz = 3\n");
    r = run_cli({"run", grid});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("did you mean 'run.outer_steps'"), qPrintable(r.err));
    r = run_cli({"run", dir.filePath("missing.toml")});
    QVERIFY(r.exit_code != 0);
    QVERIFY2(r.err.contains("missing.toml"), qPrintable(r.err));
    r = run_cli({"run", grid, "--workers", "0"});
    QCOMPARE(r.exit_code, 2);
  }

  // GPUs per worker that cannot be had, and a bad CPU island size, are usage errors that
  // write nothing.
  void badIslandsAreUsageErrors() {
    QTemporaryDir dir;
    dipaco::test::write_tiny_corpus(dir.path());
    const QString grid = dir.filePath("grid.toml");
    write_text(grid, dipaco::test::tiny_grid(dir.path(), dipaco::test::kTwoByTwo));
    CliResult r = run_cli({"run", grid, "--backend", "cpu", "--gpus-per-worker", "2"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("2 GPUs per worker needs the backend cuda or auto, not cpu"),
             qPrintable(r.err));
    r = run_cli({"run", grid, "--backend", "cuda:0", "--gpus-per-worker", "2"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("cuda:0 pins every worker to one GPU"), qPrintable(r.err));
    qputenv("DIPACO_CPU_ISLAND_REPLICAS", "two");
    r = run_cli({"run", grid});
    qunsetenv("DIPACO_CPU_ISLAND_REPLICAS");
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("DIPACO_CPU_ISLAND_REPLICAS must be a whole number"),
             qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("run")));

    // --backend cuda on a host without a usable GPU stops at once, not after the base model.
    if (dipaco::probe_cuda().devices.empty()) {
      r = run_cli({"run", grid, "--backend", "cuda"});
      QCOMPARE(r.exit_code, 1);
      QVERIFY2(r.err.contains("use --backend cpu"), qPrintable(r.err));
      QVERIFY2(!r.out.contains("base model"), qPrintable(r.out));
      QVERIFY(!QFile::exists(dir.filePath("run")));
    }
  }
};

QTEST_GUILESS_MAIN(RunCliTest)
#include "test_run_cli.moc"
