// `dipaco train` through the built binary: a tiny run on small token files, resume, and the
// exit codes and messages of a bad config and of a checkpoint that does not fit.
#include <QTemporaryDir>
#include <QtTest>

#include "backend/cuda_runtime.h"
#include "cli_runner.h"
#include "data/token_file.h"

namespace {
void write_tokens(const QString& path) {
  std::vector<std::vector<uint32_t>> docs;
  for (uint32_t d = 0; d < 30; ++d) {
    std::vector<uint32_t> doc;
    for (uint32_t i = 0; i < 40; ++i) doc.push_back((d + (1 + d % 3) * i) % 40);
    docs.push_back(doc);
  }
  QVERIFY(dipaco::write_token_file(path.toStdString(), 40, docs));
}

QString write_config(const QTemporaryDir& dir, const QString& name, const QString& model) {
  QString path = dir.filePath(name);
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) return {};
  f.write(("[model]\n" + model +
           "n_layers = 1\nn_heads = 2\nd_ff = 32\nmax_seq_len = 16\n"
           "[train]\nbatch_size = 2\nseq_len = 16\nsteps = 4\nwarmup_steps = 1\nlr = 1e-2\n"
           "[data]\ntrain = \"train.tok\"\nval = \"val.tok\"\n"
           "[eval]\nbatches = 2\n[checkpoint]\ndir = \"run\"\n[log]\nevery = 2\n")
              .toUtf8());
  return path;
}
}  // namespace

class TrainCliTest : public QObject {
  Q_OBJECT

 private slots:
  void trainsResumesAndRefusesAnotherModel() {
    QTemporaryDir dir;
    write_tokens(dir.filePath("train.tok"));
    write_tokens(dir.filePath("val.tok"));
    QString config = write_config(dir, "run.toml", "d_model = 16\n");
    CliResult r = run_cli({"train", config}, dir.path());
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("step 4/4 | loss") && r.out.contains("val ppl") &&
                 r.out.contains("checkpoint run/checkpoint.safetensors"),
             qPrintable(r.out));
    QVERIFY(QFile::exists(dir.filePath("run/config.toml")));

    r = run_cli({"train", config, "--steps", "6"}, dir.path());
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("resuming from run/checkpoint.safetensors at step 4") &&
                 r.out.contains("step 6/6"),
             qPrintable(r.out));

    QString wider = write_config(dir, "wider.toml", "d_model = 32\n");
    QFile ckpt(dir.filePath("run/checkpoint.safetensors"));
    QVERIFY(ckpt.open(QIODevice::ReadOnly));
    QByteArray before = ckpt.readAll();
    ckpt.close();
    r = run_cli({"train", wider}, dir.path());
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("different model") && r.err.contains("d_model 16 vs 32"),
             qPrintable(r.err));
    QVERIFY(ckpt.open(QIODevice::ReadOnly));
    QCOMPARE(ckpt.readAll(), before);
  }

  void badConfigIsAUsageError() {
    QTemporaryDir dir;
    QString config = write_config(dir, "bad.toml", "d_model = 15\n");
    CliResult r = run_cli({"train", config}, dir.path());
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("model.d_model 15 is not divisible by n_heads 2"), qPrintable(r.err));
    r = run_cli({"train", dir.filePath("missing.toml")}, dir.path());
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("missing.toml"), qPrintable(r.err));
  }

  // train.backend / --backend: a bad name is a usage error naming the choices; a GPU that this
  // host does not have is a clear failure (not a silent CPU run); "auto" says it uses the CPU.
  void backendChoiceIsChecked() {
    QTemporaryDir dir;
    write_tokens(dir.filePath("train.tok"));
    write_tokens(dir.filePath("val.tok"));
    QString config = write_config(dir, "run.toml", "d_model = 16\n");
    CliResult r = run_cli({"train", config, "--backend", "gpu"}, dir.path());
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unknown backend 'gpu'") && r.err.contains("cuda:N"),
             qPrintable(r.err));
    QString bad = dir.filePath("bad.toml");
    QFile b(bad);
    QVERIFY(b.open(QIODevice::WriteOnly));
    b.write(
        "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\nd_ff = 32\nmax_seq_len = 16\n"
        "[train]\nbatch_size = 2\nseq_len = 16\nsteps = 2\nbackend = \"cuda:x\"\n"
        "precision = \"fp16\"\n");
    b.close();
    r = run_cli({"train", bad}, dir.path());
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("train.backend") && r.err.contains("cuda:x"), qPrintable(r.err));

    QString good = write_config(dir, "good.toml", "d_model = 16\n");
    if (dipaco::probe_cuda().devices.empty()) {
      r = run_cli({"train", good, "--backend", "cuda"}, dir.path());
      QCOMPARE(r.exit_code, 1);
      QVERIFY2(r.err.contains("CUDA") && r.err.contains("set the backend to cpu"),
               qPrintable(r.err));
      QVERIFY(!QFile::exists(dir.filePath("run/checkpoint.safetensors")));
      r = run_cli({"train", good, "--backend", "auto"}, dir.path());
      QVERIFY2(r.exit_code == 0, qPrintable(r.err));
      QVERIFY2(
          r.out.contains("no usable GPU, training on the CPU") && r.out.contains("backend: cpu"),
          qPrintable(r.out));
    } else {
      r = run_cli({"train", good, "--backend", "cuda"}, dir.path());
      QVERIFY2(r.exit_code == 0, qPrintable(r.err));
      QVERIFY2(r.out.contains("backend: cuda:0"), qPrintable(r.out));
    }
  }

  void missingTokenFileNamesTheKey() {
    QTemporaryDir dir;
    QString config = write_config(dir, "run.toml", "d_model = 16\n");
    CliResult r = run_cli({"train", config}, dir.path());
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("data.train") && r.err.contains("train.tok"), qPrintable(r.err));
  }
};

QTEST_GUILESS_MAIN(TrainCliTest)
#include "test_train_cli.moc"
