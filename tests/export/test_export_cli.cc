// dipaco export / generate / eval through the built binary: exit codes, messages, the same
// text for the same seed, perplexity output.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <random>

#include "cli_runner.h"
#include "data/data_fixtures.h"
#include "data/token_file.h"
#include "export_fixture.h"
#include "test_support.h"

namespace {
QByteArray export_slurp(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
}  // namespace

class ExportCliTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir tmp_;
  QString run_, out_;

 private slots:
  void initTestCase() {
    DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE();
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    auto tok = export_fixture::train_tokenizer();
    QVERIFY(tok.is_ok());
    auto run = export_fixture::make_run(tmp_.filePath("run"), *tok, 2);
    QVERIFY2(run.is_ok(), run.status().message().c_str());
    run_ = tmp_.filePath("run");
    out_ = tmp_.filePath("export");
    CliResult r = run_cli({"export", run_, "--out", out_, "--gguf-type", "q8_0"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("exported 2 paths"), qPrintable(r.out));
    QVERIFY(QFile::exists(out_ + "/path-1.gguf"));
  }

  void exportUsageErrors_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("message");
    QTest::newRow("no --out") << QStringList{"export", "RUN"} << "--out DIR is required";
    QTest::newRow("typo") << QStringList{"export", "RUN", "--out", "x", "--pathz", "1"}
                          << "did you mean --paths";
    QTest::newRow("format") << QStringList{"export", "RUN", "--out", "x", "--format", "onnx"}
                            << "unknown format 'onnx'";
    QTest::newRow("ids") << QStringList{"export", "RUN", "--out", "x", "--paths", "one"}
                         << "'one' is not a path id";
    QTest::newRow("gguf type") << QStringList{"export", "RUN", "--out", "x", "--gguf-type", "q4"}
                               << "must be one of f32|f16|bf16|q8_0";
    QTest::newRow("generate temperature")
        << QStringList{"generate", "E", "--prompt", "a", "--temperature", "-1"} << "--temperature";
    QTest::newRow("eval without data") << QStringList{"eval", "E"} << "--data PATH is required";
    QTest::newRow("eval data type") << QStringList{"eval", "E", "--data", "scores.csv"}
                                    << "scores.csv: unsupported --data file type";
  }

  void exportUsageErrors() {
    QFETCH(QStringList, args);
    QFETCH(QString, message);
    CliResult r = run_cli(args);
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains(message), qPrintable(r.err));
  }

  void exportOfAnUnknownPathFailsAndWritesNothing() {
    const QString out = tmp_.filePath("bad");
    CliResult r = run_cli({"export", run_, "--out", out, "--paths", "0,5"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("has no path 5 (its paths: 0, 1)"), qPrintable(r.err));
    QVERIFY(!QFile::exists(out));
  }

  void generateIsDeterministicUnderASeed() {
    QStringList args = {"generate",  out_, "--path",       "1",  "--prompt",      "the grand jury",
                        "--seed",    "3",  "--max-tokens", "24", "--temperature", "1.0",
                        "--threads", "1"};
    CliResult a = run_cli(args);
    QVERIFY2(a.exit_code == 0, qPrintable(a.err));
    QVERIFY2(a.out.startsWith("the grand jury"), qPrintable(a.out));
    QVERIFY2(a.err.contains("fixed path 1"), qPrintable(a.err));
    CliResult b = run_cli(args);
    QCOMPARE(b.out, a.out);
    args[7] = "4";
    CliResult c = run_cli(args);
    QVERIFY2(c.out != a.out, qPrintable(c.out));
  }

  void generateRoutesThePromptOrTakesAPath() {
    CliResult r = run_cli({"generate", out_, "--prompt", "the", "--max-tokens", "3"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.err.contains("kmeans router over 2 paths, first 8 tokens"), qPrintable(r.err));
    r = run_cli({"generate", out_, "--prompt", "the", "--max-tokens", "6", "--reroute-every", "2"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.err.contains("re-routing every 2"), qPrintable(r.err));
    r = run_cli({"generate", out_, "--prompt", "the", "--path", "9"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("no path 9"), qPrintable(r.err));
    // A single HF directory of the export is a one-path export.
    r = run_cli({"generate", out_ + "/path-0", "--prompt", "the", "--max-tokens", "3"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
  }

  void evalReportsPerPathAndRoutedPerplexity() {
    QFile text(tmp_.filePath("eval.txt"));
    QVERIFY(text.open(QIODevice::WriteOnly));
    text.write(
        "the jury said the election was new.\n\nthe mayor of the city said friday.\n\n"
        "a grand report of the county court.\n");
    text.close();
    CliResult r = run_cli({"eval", out_, "--data", text.fileName(), "--threads", "1"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("3 documents"), qPrintable(r.out));
    QVERIFY2(r.out.contains("path 0") && r.out.contains("path 1"), qPrintable(r.out));
    QVERIFY2(r.out.contains("routed (kmeans router over 2 paths"), qPrintable(r.out));
    QVERIFY2(r.out.contains("best path per document"), qPrintable(r.out));
    QVERIFY2(!r.out.contains("re-routing"), qPrintable(r.out));
    r = run_cli({"eval", out_, "--data", text.fileName(), "--reroute-every", "4"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("routed, re-routing every 4 tokens"), qPrintable(r.out));
    r = run_cli(
        {"eval", out_, "--data", text.fileName(), "--path", "1", "--dense", out_ + "/path-0"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("routed (fixed path 1)"), qPrintable(r.out));
    QVERIFY2(r.out.contains("dense"), qPrintable(r.out));
    r = run_cli({"eval", out_, "--data", text.fileName(), "--path", "1", "--dense", out_});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("is a dipaco export (paths 0, 1), not one model"), qPrintable(r.err));
    r = run_cli({"eval", out_, "--data", tmp_.filePath("missing.tok")});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("missing.tok"), qPrintable(r.err));
  }

  // --data reads corpora as 'dipaco data tokenize' does: the same three documents as .txt
  // blocks, .jsonl, .jsonl.gz or a directory give the same numbers (they were once scored as
  // one document of raw JSON or gzip bytes). A progress line goes to stderr.
  void evalReadsEveryCorpusFormatAsTheDataCommandsDo() {
    const std::vector<std::string> texts = {"the jury said the election was new.",
                                            "the mayor of the city said friday.",
                                            "a grand report of the county court."};
    std::string txt, jsonl;
    for (const auto& t : texts) {
      txt += t + "\n\n";
      jsonl += "{\"id\": \"d\", \"text\": \"" + t + "\"}\n";
    }
    QDir().mkpath(tmp_.filePath("corpus"));
    const QString txt_file = tmp_.filePath("three.txt"), jsonl_file = tmp_.filePath("three.jsonl"),
                  gz_file = tmp_.filePath("three.jsonl.gz"), dir = tmp_.filePath("corpus");
    fixtures::write(txt_file, txt);
    fixtures::write(jsonl_file, jsonl);
    fixtures::write(gz_file, fixtures::gzip(jsonl));
    fixtures::write(dir + "/part.jsonl", jsonl);
    QString expected;
    for (const QString& data : {txt_file, jsonl_file, gz_file, dir}) {
      CliResult r = run_cli({"eval", out_, "--data", data, "--path", "0", "--threads", "1"});
      QVERIFY2(r.exit_code == 0, qPrintable(data + ": " + r.err));
      QVERIFY2(r.out.contains("3 documents"), qPrintable(data + ": " + r.out));
      QVERIFY2(r.err.contains("evaluating: 3/3 docs (100%)") && r.err.contains("tokens/s"),
               qPrintable(r.err));
      QRegularExpression row("path 0\\s+(\\d+) tokens\\s+loss ([0-9.]+)");
      auto m = row.match(r.out);
      QVERIFY2(m.hasMatch(), qPrintable(r.out));
      if (expected.isEmpty()) expected = m.captured(0);
      QCOMPARE(m.captured(0), expected);
    }
    CliResult r = run_cli({"eval", out_, "--data", tmp_.filePath("no-such-corpus")});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("unsupported --data file type"), qPrintable(r.err));
    QDir().mkpath(tmp_.filePath("no-corpus"));
    r = run_cli({"eval", out_, "--data", tmp_.filePath("no-corpus")});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("directory has no .txt"), qPrintable(r.err));
  }

  // The whole chain on a real `dipaco run`: its run.json, path files, router and base model
  // export, and eval's routed loss equals the runner's per-path validation losses weighted by
  // their routed validation tokens (the runner routed the same documents with the same router).
  // The grid's paths are relative to the directory `dipaco run` starts in, and the export runs
  // from another directory: run.json records them absolute.
  void exportOfARealRunReproducesItsRoutedValidationLoss() {
    const QString d = tmp_.filePath("real");
    QDir().mkpath(d);
    auto tok = export_fixture::train_tokenizer();
    QVERIFY(tok.is_ok());
    QVERIFY(dipaco::write_file_atomically((d + "/tok.model").toStdString(), *tok));
    auto docs = [](int n, uint32_t seed) {
      std::vector<std::vector<uint32_t>> out(n);
      std::mt19937 rng(seed);
      for (auto& doc : out) {
        doc.push_back(1);
        // Two "topics" of token ranges, so that k-means has something to split.
        const uint32_t base = rng() % 2 ? 3 : 160;
        for (int t = 0; t < 40 + static_cast<int>(rng() % 40); ++t)
          doc.push_back(base + rng() % 150);
        doc.push_back(2);
      }
      return out;
    };
    QVERIFY(dipaco::write_token_file((d + "/train.tok").toStdString(), export_fixture::kVocab,
                                     docs(48, 1)));
    QVERIFY(dipaco::write_token_file((d + "/val.tok").toStdString(), export_fixture::kVocab,
                                     docs(12, 2)));
    QFile grid(d + "/grid.toml");
    QVERIFY(grid.open(QIODevice::WriteOnly));
    grid.write(
        "[run]\nname = \"real\"\ndir = \"run\"\nouter_steps = 2\n"
        "inner_steps = 3\nworkers = 1\nthreads = 1\n\n[model]\nd_model = 32\n"
        "n_layers = 2\nn_heads = 4\nn_kv_heads = 2\nd_ff = 64\nmax_seq_len = 32\n\n"
        "[inner]\nbatch_size = 4\nseq_len = 32\nlr = 3e-3\nwarmup_steps = 1\n\n"
        "[data]\ntrain = \"train.tok\"\nval = \"val.tok\"\ntokenizer = \"tok.model\"\n\n"
        "[routing]\nbase_steps = 5\n\n[[grid.level]]\nblocks = [0, 1]\nmodules = 2\n");
    grid.close();
    CliResult r = run_cli({"run", "grid.toml"}, d);
    QVERIFY2(r.exit_code == 0, qPrintable(r.out + r.err));
    const QString elsewhere = tmp_.filePath("elsewhere");
    QDir().mkpath(elsewhere);
    r = run_cli({"export", d + "/run", "--out", d + "/exp", "--format", "hf"}, elsewhere);
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QJsonObject provenance = QJsonDocument::fromJson(export_slurp(d + "/exp/dipaco.json")).object();
    for (const char* split : {"train", "val"}) {
      QJsonObject file = provenance["data"].toObject()[split].toObject();
      QVERIFY2(QDir::isAbsolutePath(file["file"].toString()) && !file.contains("missing") &&
                   file.contains("sha256"),
               qPrintable(QJsonDocument(file).toJson()));
    }
    QVERIFY2(r.out.contains("exported 2 paths"), qPrintable(r.out));
    QVERIFY(QFile::exists(d + "/exp/router-base.safetensors"));
    QCOMPARE(export_slurp(d + "/exp/grid.toml"), export_slurp(d + "/run/grid.toml"));

    QJsonObject run = QJsonDocument::fromJson(export_slurp(d + "/run/run.json")).object();
    double weighted = 0, tokens = 0;
    for (const auto& p : run["paths"].toArray()) {
      weighted += p.toObject()["val_tokens"].toDouble() * p.toObject()["val_loss"].toDouble();
      tokens += p.toObject()["val_tokens"].toDouble();
    }
    QVERIFY(tokens > 0);
    r = run_cli({"eval", d + "/exp", "--data", d + "/val.tok", "--threads", "1"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QRegularExpression routed(
        "routed \\(kmeans router over 2 paths[^)]*\\)\\s+(\\d+) tokens\\s+"
        "loss ([0-9.]+)");
    auto m = routed.match(r.out);
    QVERIFY2(m.hasMatch(), qPrintable(r.out));
    QCOMPARE(m.captured(1).toDouble(),
             tokens - 12);  // each document's first token is not predicted
    QVERIFY2(std::fabs(m.captured(2).toDouble() - weighted / tokens) < 2e-4,
             qPrintable(
                 QString("eval routed %1, run.json %2").arg(m.captured(2)).arg(weighted / tokens)));
    QVERIFY2(QDir::isAbsolutePath(run["tokenizer"].toString()),
             qPrintable(run["tokenizer"].toString()));

    // A run.json written before the paths were absolute still exports from the directory the
    // run was started in, as it did.
    QJsonObject old_run = run;
    old_run["tokenizer"] = "tok.model";
    old_run["data"] = QJsonObject{{"train", "train.tok"}, {"val", "val.tok"}};
    QVERIFY(dipaco::write_file_atomically((d + "/run/run.json").toStdString(),
                                          QJsonDocument(old_run).toJson().toStdString()));
    r = run_cli({"export", "run", "--out", "exp-old", "--format", "hf"}, d);
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    provenance = QJsonDocument::fromJson(export_slurp(d + "/exp-old/dipaco.json")).object();
    QVERIFY(!provenance["data"].toObject()["train"].toObject().contains("missing"));
  }
};

QTEST_GUILESS_MAIN(ExportCliTest)
#include "test_export_cli.moc"
