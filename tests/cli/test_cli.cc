#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <utility>
#include <vector>

#include "cli_runner.h"

class CliTest : public QObject {
  Q_OBJECT

 private slots:
  void helpListsEverySubcommandOfTheDesign() {
    CliResult r = run_cli({"--help"});
    QCOMPARE(r.exit_code, 0);
    for (const char* name :
         {"run", "serve", "work", "ctl", "train", "export", "generate", "eval", "doctor", "data"}) {
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
    QVERIFY2(r.err.startsWith("dipaco doctor: unknown option '--verbos'"), qPrintable(r.err));
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

  // `dipaco run --check` refuses what the run itself would refuse at once: an unknown backend,
  // more GPUs than the host has, token files that are not there.
  void runCheckRefusesWhatTheRunRefuses() {
    QTemporaryDir dir;
    write(dir.filePath("grid.toml"),
          "[run]\nname = \"c\"\nworkers = 2\n\n[model]\nd_model = 32\nn_layers = 2\n"
          "n_heads = 4\nn_kv_heads = 2\nd_ff = 64\nmax_seq_len = 32\n\n[inner]\nseq_len = "
          "32\n\n[data]\n"
          "train = \"missing/train.tok\"\nval = \"missing/val.tok\"\n\n"
          "[[grid.level]]\nblocks = [0, 1]\nmodules = 2\n");
    const QString grid = dir.filePath("grid.toml");
    CliResult r = run_cli({"run", grid, "--check", "--backend", "tpu"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unknown backend 'tpu'"), qPrintable(r.err));
    r = run_cli({"run", grid, "--check", "--backend", "cuda", "--gpus-per-worker", "64"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("need 128 GPUs"), qPrintable(r.err));
    r = run_cli({"run", grid, "--check", "--backend", "cpu"}, dir.path());
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.out.contains("2 modules"), qPrintable(r.out));  // the table is still printed
    QVERIFY2(r.err.contains("data.train: missing/train.tok"), qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("runs")));
  }

  // `data tokenizer --out` is checked before the corpus is read: a directory, the corpus itself
  // or any other file that is not a model is refused and left as it was.
  void tokenizerOutThatWouldDestroyAFileIsRefused() {
    QTemporaryDir dir;
    const QString corpus = dir.filePath("docs.jsonl"), other = dir.filePath("notes.jsonl");
    const QByteArray text = "{\"text\": \"the jury said\"}\n";
    write(corpus, text);
    write(other, text);
    QDir().mkpath(dir.filePath("models"));
    for (const auto& [out, message] :
         {std::pair{corpus, QString("is the --corpus")},
          std::pair{other, QString("exists and is not a SentencePiece model")},
          std::pair{dir.filePath("models"), QString("is a directory")}}) {
      CliResult r =
          run_cli({"data", "tokenizer", "--corpus", corpus, "--out", out, "--vocab-size", "300"});
      QCOMPARE(r.exit_code, 2);
      QVERIFY2(r.err.contains("--out " + out + ": " + message), qPrintable(r.err));
      QVERIFY2(!r.err.contains("reading corpus"), qPrintable(r.err));  // refused before reading
    }
    for (const QString& file : {corpus, other}) {
      QFile f(file);
      QVERIFY(f.open(QIODevice::ReadOnly));
      QCOMPARE(f.readAll(), text);
    }
  }

  // --insecure is plaintext: refused (exit 2, naming --address) where other hosts can connect.
  // Bad tokens, TLS files, addresses and a port in use fail before or undo what a start
  // creates: no database, no payload or checkpoint directory is left behind.
  void serveRefusesBadStartsAndLeavesNothingBehind() {
    QTemporaryDir dir;
    const QString db = dir.filePath("c.db"), wt = dir.filePath("w.token"),
                  ot = dir.filePath("o.token");
    write(wt, "worker-secret\n");
    write(ot, "operator-secret\n");
    write(dir.filePath("not.pem"), "hello\n");
    write(dir.filePath("bad-grid.toml"), "[run]\nouter_steps = -1\n");
    const QStringList base = {
        "serve", "--db", db, "--worker-token-file", wt, "--operator-token-file", ot};
    struct Case {
      QStringList args;
      int exit_code;
      QString message;
    };
    const int busy_port = listen_on_a_free_port();
    QVERIFY(busy_port > 0);
    const std::vector<Case> cases = {
        {{"--insecure", "--address", "0.0.0.0:0"}, 2, "--address 0.0.0.0:0 is every interface"},
        {{"--insecure", "--address", "192.0.2.7:7443"}, 2, "--address 192.0.2.7:7443 is reachable"},
        {{"--insecure", "--address", "garbage"}, 2, "--address garbage: expected HOST:PORT"},
        {{"--insecure", "--worker-token-file", dir.filePath("missing")}, 1, "missing"},
        {{"--tls-cert", dir.path(), "--tls-key", dir.filePath("not.pem")},
         1,
         "--tls-cert: " + dir.path() + ": is a directory, expected a file"},
        {{"--tls-cert", dir.filePath("not.pem"), "--tls-key", dir.filePath("not.pem")},
         1,
         "not a PEM file"},
        {{"--insecure", "--grid", dir.filePath("bad-grid.toml")}, 2, "run.outer_steps must be"},
        {{"--insecure", "--address", QString("127.0.0.1:%1").arg(busy_port)},
         1,
         "the port is in use"},
    };
    for (const Case& c : cases) {
      CliResult r = run_cli(base + c.args);
      QVERIFY2(r.exit_code == c.exit_code, qPrintable(c.args.join(' ') + "\n" + r.err));
      QVERIFY2(r.err.contains(c.message), qPrintable(r.err));
      const QStringList left = QDir(dir.path()).entryList(QDir::NoDotAndDotDot | QDir::AllEntries);
      QVERIFY2(left.size() == 4, qPrintable(c.args.join(' ') + " left " + left.join(", ")));
    }
  }

  // The log names the address listened on, not a loopback rewrite of it.
  void serveSaysWhereItListens() {
    QTemporaryDir dir;
    write(dir.filePath("w.token"), "worker-secret\n");
    write(dir.filePath("o.token"), "operator-secret\n");
    QProcess serve;
    serve.start(DIPACO_CLI_PATH,
                {"serve", "--db", dir.filePath("c.db"), "--insecure", "--address", "127.0.0.1:0",
                 "--worker-token-file", dir.filePath("w.token"), "--operator-token-file",
                 dir.filePath("o.token"), "--port-file", dir.filePath("port")});
    QVERIFY(serve.waitForStarted());
    QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(dir.filePath("port")), 30000);
    QFile port_file(dir.filePath("port"));
    QVERIFY(port_file.open(QIODevice::ReadOnly));
    const int port = QString::fromUtf8(port_file.readAll()).trimmed().toInt();
    QVERIFY(port > 0);
    serve.terminate();
    QVERIFY(serve.waitForFinished(30000));
    QCOMPARE(serve.exitCode(), 0);
    const QString err = QString::fromUtf8(serve.readAllStandardError());
    QVERIFY2(err.contains(QString("listening on 127.0.0.1:%1 (plaintext)").arg(port)),
             qPrintable(err));
    QVERIFY(QFile::exists(dir.filePath("c.db")));  // a start that worked keeps its state
  }

  void workerCheckAndVersion() {
    // Without a config there is no coordinator address: a config error (2).
    CliResult r = run_program(DIPACO_WORKER_PATH, {"--check"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.out.contains("error: no [coordinator] address"), qPrintable(r.out));
    QVERIFY2(r.out.contains("check: FAILED"), qPrintable(r.out));
    QTemporaryDir dir;
    write(dir.filePath("worker.token"), "worker-token\n");
    write(dir.filePath("worker.toml"),
          ("[coordinator]\naddress = \"127.0.0.1:7443\"\ntoken_file = \"" +
           dir.filePath("worker.token") + "\"\n")
              .toUtf8());
    r = run_program(DIPACO_WORKER_PATH, {"--check", "--config", dir.filePath("worker.toml")});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("check: ok"), qPrintable(r.out));
    QVERIFY(r.out.contains("backend: cpu"));
    r = run_program(DIPACO_WORKER_PATH, {"--bogus"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY(r.err.contains("unknown option '--bogus'"));
  }

 private:
  static void write(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(bytes);
  }

  // A socket listening on a free loopback port, kept open for the test's lifetime, so that
  // dipaco serve cannot bind that port. Returns the port, or -1.
  int listen_on_a_free_port() {
    busy_socket_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (busy_socket_ < 0 ||
        ::bind(busy_socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(busy_socket_, 1) != 0 ||
        ::getsockname(busy_socket_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      return -1;
    return ntohs(address.sin_port);
  }

  int busy_socket_ = -1;

 private slots:
  void cleanupTestCase() {
    if (busy_socket_ >= 0) ::close(busy_socket_);
  }
};

QTEST_GUILESS_MAIN(CliTest)
#include "test_cli.moc"
