#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>
#include <random>

#include "data/corpus_split.h"
#include "data/token_file.h"
#include "data_fixtures.h"
#include "test_support.h"
#include "util/atomic_file.h"

namespace {

std::vector<std::vector<uint32_t>> random_documents(uint32_t vocab, size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<uint32_t>> docs(count);
  for (auto& d : docs) {
    d.resize(rng() % 50);  // empty documents included
    for (auto& id : d) id = rng() % vocab;
  }
  return docs;
}

using dipaco::test::contains;

}  // namespace

class TokenFileTest : public QObject {
  Q_OBJECT

 private slots:
  void roundTrip_data() {
    QTest::addColumn<uint>("vocab");
    QTest::newRow("u16") << 8192u;
    QTest::newRow("u16 max") << 65536u;
    QTest::newRow("u32") << 100000u;
  }
  void roundTrip() {
    QFETCH(uint, vocab);
    QTemporaryDir dir;
    std::string path = dir.filePath("train.tok").toStdString();
    auto docs = random_documents(vocab, 200, vocab);
    docs[3].push_back(vocab - 1);  // the largest id fits
    QVERIFY(dipaco::write_token_file(path, vocab, docs));
    auto file = dipaco::TokenFile::open(path);
    QVERIFY2(file.is_ok(), file.status().message().c_str());
    QCOMPARE(file->vocab_size(), vocab);
    QCOMPARE(file->bytes_per_token(), vocab <= 65536 ? 2u : 4u);
    QCOMPARE(file->num_documents(), uint64_t{200});
    uint64_t total = 0;
    for (size_t d = 0; d < docs.size(); ++d) {
      QCOMPARE(file->document_begin(d), total);
      total += docs[d].size();
      QCOMPARE(file->document_end(d), total);
      std::vector<int32_t> read(docs[d].size());
      file->read(file->document_begin(d), read.size(), read.data());
      for (size_t i = 0; i < read.size(); ++i) {
        QCOMPARE(static_cast<uint32_t>(read[i]), docs[d][i]);
        QCOMPARE(file->token(file->document_begin(d) + i), docs[d][i]);
      }
    }
    QCOMPARE(file->num_tokens(), total);
    // Move-only: a moved-to file still reads.
    dipaco::TokenFile moved = std::move(file).value();
    QCOMPARE(moved.num_tokens(), total);
  }

  void writeRejectsIdsOutsideTheVocab() {
    QTemporaryDir dir;
    std::string path = dir.filePath("x.tok").toStdString();
    auto status = dipaco::write_token_file(path, 10, {{1, 2}, {10}});
    QVERIFY(!status);
    QVERIFY2(contains(status.message(), "document 1 has token id 10"), status.message().c_str());
    QVERIFY(!std::filesystem::exists(path));
  }

  // Every single flipped byte anywhere in the file is detected.
  void flippedBytesAreDetected() {
    QTemporaryDir dir;
    std::string path = dir.filePath("t.tok").toStdString();
    QVERIFY(dipaco::write_token_file(path, 300, random_documents(300, 10, 5)));
    std::string good = *dipaco::read_file(path);
    std::string bad_path = dir.filePath("bad.tok").toStdString();
    for (size_t at = 0; at < good.size(); ++at) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ 0x40);
      fixtures::write(QString::fromStdString(bad_path), bad);
      auto file = dipaco::TokenFile::open(bad_path);
      QVERIFY2(!file.is_ok(), ("byte " + std::to_string(at) + " flipped, not detected").c_str());
      QCOMPARE(file.status().code(), dipaco::StatusCode::kDataLoss);
      QVERIFY2(contains(file.status().message(), bad_path + ": byte "),
               file.status().message().c_str());
    }
  }

  void truncationAndGarbageAreDetected() {
    QTemporaryDir dir;
    std::string path = dir.filePath("t.tok").toStdString();
    QVERIFY(dipaco::write_token_file(path, 300, random_documents(300, 10, 9)));
    std::string good = *dipaco::read_file(path);
    std::string bad_path = dir.filePath("bad.tok").toStdString();
    for (size_t size : {size_t{0}, size_t{10}, size_t{63}, size_t{64}, size_t{100}, good.size() - 2,
                        good.size() - 1}) {
      fixtures::write(QString::fromStdString(bad_path), good.substr(0, size));
      auto file = dipaco::TokenFile::open(bad_path);
      QVERIFY2(!file.is_ok(), ("truncated to " + std::to_string(size)).c_str());
      QVERIFY2(contains(file.status().message(), "truncated"), file.status().message().c_str());
    }
    fixtures::write(QString::fromStdString(bad_path), good + "xx");
    auto longer = dipaco::TokenFile::open(bad_path);
    QVERIFY(!longer.is_ok());
    QVERIFY2(contains(longer.status().message(), "trailing bytes"),
             longer.status().message().c_str());
    fixtures::write(QString::fromStdString(bad_path), "PK\x03\x04" + good.substr(4));
    auto magic = dipaco::TokenFile::open(bad_path);
    QVERIFY2(contains(magic.status().message(), "byte 0: not a dipaco token file"),
             magic.status().message().c_str());
    auto missing = dipaco::TokenFile::open(dir.filePath("none.tok").toStdString());
    QCOMPARE(missing.status().code(), dipaco::StatusCode::kNotFound);
  }

  void splitIsDeterministicAndByDocument() {
    auto a = dipaco::split_corpus(1000, 0.05, 42);
    auto b = dipaco::split_corpus(1000, 0.05, 42);
    auto c = dipaco::split_corpus(1000, 0.05, 43);
    QVERIFY(a.is_ok() && b.is_ok() && c.is_ok());
    QCOMPARE(a->validation.size(), size_t{50});
    QCOMPARE(a->train.size(), size_t{950});
    QCOMPARE(a->validation, b->validation);
    QVERIFY(a->validation != c->validation);
    std::vector<bool> seen(1000, false);
    for (size_t i : a->train) seen[i] = true;
    for (size_t i : a->validation) {
      QVERIFY(!seen[i]);
      seen[i] = true;
    }
    QVERIFY(std::all_of(seen.begin(), seen.end(), [](bool s) { return s; }));
    QCOMPARE(dipaco::split_corpus(3, 0.01, 0)->validation.size(), size_t{1});
    QCOMPARE(dipaco::split_corpus(3, 0.0, 0)->validation.size(), size_t{0});
    QVERIFY(!dipaco::split_corpus(1, 0.5, 0).is_ok());
    QVERIFY(!dipaco::split_corpus(10, 1.0, 0).is_ok());
  }
};

QTEST_GUILESS_MAIN(TokenFileTest)
#include "test_data_token_file.moc"
