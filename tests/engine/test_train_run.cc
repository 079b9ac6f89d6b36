// `dipaco train` without the CLI: the TOML run config (defaults, errors naming the key) and
// run_training end to end on small token files: checkpoints, resume, NaN, a wrong checkpoint.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <filesystem>

#include "data/token_file.h"
#include "train/run_config.h"
#include "train/train_loop.h"
#include "util/atomic_file.h"

namespace {
// 40 documents of a learnable pattern over a 50-token vocabulary.
void write_tokens(const std::string& path, uint64_t salt) {
  std::vector<std::vector<uint32_t>> docs;
  for (uint64_t d = 0; d < 40; ++d) {
    std::vector<uint32_t> doc;
    uint32_t stride = 1 + static_cast<uint32_t>((d + salt) % 5);
    for (uint32_t i = 0; i < 30; ++i) doc.push_back((static_cast<uint32_t>(d) + stride * i) % 50);
    docs.push_back(doc);
  }
  QVERIFY(dipaco::write_token_file(path, 50, docs));
}

std::string tiny_run_toml(const QTemporaryDir& dir, const std::string& extra_train = "") {
  return "[model]\nd_model = 16\nn_layers = 2\nn_heads = 2\nd_ff = 32\nmax_seq_len = 16\n"
         "[train]\nbatch_size = 2\nseq_len = 16\nsteps = 6\nwarmup_steps = 2\nlr = 1e-2\n" +
         extra_train + "[data]\ntrain = \"" + dir.filePath("train.tok").toStdString() +
         "\"\nval = \"" + dir.filePath("val.tok").toStdString() +
         "\"\n[eval]\nevery = 3\nbatches = 2\n[checkpoint]\ndir = \"" +
         dir.filePath("run").toStdString() + "\"\nevery = 2\n[log]\nevery = 2\n";
}
}  // namespace

class TrainRunTest : public QObject {
  Q_OBJECT

 private slots:
  void defaultsAreTheReferenceConfig() {
    auto c = dipaco::parse_run_config("", "empty.toml");
    QVERIFY2(c.is_ok(), c.status().message().c_str());
    QCOMPARE(c->model.d_model, 256);
    QCOMPARE(c->model.d_ff, 704);
    QVERIFY(c->vocab_from_data);
    QCOMPARE(c->train_tokens, std::string("data/brown/tokens/train.tok"));
    // The effective config written next to checkpoints reads back as the same config.
    c->model.vocab_size = 8192;
    auto again = dipaco::parse_run_config(c->to_toml(), "effective.toml");
    QVERIFY2(again.is_ok(), again.status().message().c_str());
    QVERIFY(again->model == c->model);
    QCOMPARE(again->train.lr, c->train.lr);
    QCOMPARE(again->train.adamw.eps, c->train.adamw.eps);
  }

  void errorsNameTheKey_data() {
    QTest::addColumn<QString>("toml");
    QTest::addColumn<QString>("message");
    QTest::newRow("divisible") << "[model]\nd_model = 250\n"
                               << "x.toml: model.d_model 250 is not divisible by n_heads 4";
    QTest::newRow("typo") << "[train]\nbatchsize = 3\n"
                          << "unknown key 'train.batchsize' (did you mean 'train.batch_size'?)";
    QTest::newRow("type") << "[train]\nlr = \"fast\"\n"
                          << "train.lr must be a number";
    QTest::newRow("range") << "[train]\nbatch_size = 0\n"
                           << "train.batch_size must be in [1,";
    QTest::newRow("seq") << "[train]\nseq_len = 512\n"
                         << "train.seq_len 512 exceeds model.max_seq_len 256";
    QTest::newRow("table") << "[optimizer]\nlr = 1\n"
                           << "unknown table 'optimizer'";
    QTest::newRow("syntax") << "[train\n"
                            << "x.toml:1:";
  }

  void errorsNameTheKey() {
    QFETCH(QString, toml);
    QFETCH(QString, message);
    auto c = dipaco::parse_run_config(toml.toStdString(), "x.toml");
    QVERIFY(!c.is_ok());
    QVERIFY2(c.status().message().find(message.toStdString()) != std::string::npos,
             c.status().message().c_str());
  }

  void trainsCheckpointsAndResumes() {
    QTemporaryDir dir;
    write_tokens(dir.filePath("train.tok").toStdString(), 0);
    write_tokens(dir.filePath("val.tok").toStdString(), 1);
    auto config = dipaco::parse_run_config(tiny_run_toml(dir), "run.toml");
    QVERIFY2(config.is_ok(), config.status().message().c_str());
    dipaco::TrainLoopOptions quiet;
    quiet.out = std::fopen("/dev/null", "w");
    auto r = dipaco::run_training(*config, quiet);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QCOMPARE(r->step, int64_t{6});
    QVERIFY(std::isfinite(r->val_loss) && r->val_loss < std::log(50.0) + 0.5);
    QVERIFY(std::filesystem::exists(r->checkpoint_path));
    QVERIFY(std::filesystem::exists(dir.filePath("run/config.toml").toStdString()));
    QVERIFY(std::filesystem::exists(dir.filePath("run/metrics.jsonl").toStdString()));

    // Resume and go on to step 8.
    config->train.steps = 8;
    r = dipaco::run_training(*config, quiet);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QCOMPARE(r->step, int64_t{8});

    // Another model shape in the same directory: a clear error, the checkpoint untouched.
    auto before = *dipaco::read_file(r->checkpoint_path);
    config->model.d_ff = 48;
    config->train.steps = 10;
    auto wrong = dipaco::run_training(*config, quiet);
    QVERIFY(!wrong.is_ok());
    QVERIFY2(wrong.status().message().find("d_ff 32 vs 48") != std::string::npos,
             wrong.status().message().c_str());
    QVERIFY(*dipaco::read_file(r->checkpoint_path) == before);
    std::fclose(quiet.out);
  }

  void nanLossStopsAndKeepsTheLastGoodCheckpoint() {
    QTemporaryDir dir;
    write_tokens(dir.filePath("train.tok").toStdString(), 0);
    write_tokens(dir.filePath("val.tok").toStdString(), 1);
    // An absurd learning rate blows the weights up after the first update.
    auto config = dipaco::parse_run_config(tiny_run_toml(dir, "grad_clip = 0.0\n"), "run.toml");
    QVERIFY(config.is_ok());
    config->train.lr = 1e30;
    config->train.min_lr = 1e30;
    config->train.warmup_steps = 0;
    config->train.steps = 20;
    config->checkpoint_every = 1;
    config->eval_every = 0;
    dipaco::TrainLoopOptions quiet;
    quiet.out = std::fopen("/dev/null", "w");
    auto r = dipaco::run_training(*config, quiet);
    std::fclose(quiet.out);
    QVERIFY(!r.is_ok());
    const std::string& msg = r.status().message();
    QVERIFY2(msg.find("stopped before updating the parameters") != std::string::npos &&
                 msg.find("the last good checkpoint is") != std::string::npos,
             msg.c_str());
    QVERIFY(std::filesystem::exists(dir.filePath("run/checkpoint.safetensors").toStdString()));
  }
};

QTEST_GUILESS_MAIN(TrainRunTest)
#include "test_train_run.moc"
