#include <QTemporaryDir>
#include <QtTest>
#include <random>

#include "data/tokenizer.h"
#include "data_fixtures.h"

using dipaco::Document;
using dipaco::Tokenizer;

namespace {

// A small generated corpus: words from a fixed syllable set, so that training is fast and the
// same everywhere.
std::vector<Document> generated_corpus(size_t documents) {
  static const char* kSyllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po",
                                     "an", "el", "is", "or", "um", "th", "st", "qu", "br", "gl"};
  std::mt19937 rng(5);
  std::vector<Document> docs;
  for (size_t d = 0; d < documents; ++d) {
    std::string text;
    for (int paragraph = 0; paragraph < 3; ++paragraph) {
      if (paragraph) text += "\n\n";
      for (int w = 0; w < 40; ++w) {
        if (w) text += (w % 9 == 0) ? ", " : " ";
        int syllables = 1 + static_cast<int>(rng() % 3);
        for (int s = 0; s < syllables; ++s) text += kSyllables[rng() % 20];
      }
      text += ".";
    }
    docs.push_back({"doc" + std::to_string(d), "generated", text});
  }
  return docs;
}

dipaco::TokenizerOptions options(int vocab, const std::string& type) {
  dipaco::TokenizerOptions o;
  o.vocab_size = vocab;
  o.model_type = type;
  o.show_progress = false;
  return o;
}

}  // namespace

class TokenizerTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { corpus_ = generated_corpus(200); }

  // SentencePiece loads through a shim that AddressSanitizer builds cannot always use.
  void init() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
  }

  void trainEncodeDecodeRoundTrip_data() {
    QTest::addColumn<QString>("type");
    QTest::newRow("unigram") << "unigram";
    QTest::newRow("bpe") << "bpe";
  }
  void trainEncodeDecodeRoundTrip() {
    QFETCH(QString, type);
    auto tokenizer = Tokenizer::train(corpus_, options(400, type.toStdString()), "generated");
    QVERIFY2(tokenizer.is_ok(), tokenizer.status().message().c_str());
    QCOMPARE(tokenizer->vocab_size(), 400u);
    QCOMPARE(tokenizer->piece(dipaco::kBosId), std::string("<s>"));
    QCOMPARE(tokenizer->piece(dipaco::kEosId), std::string("</s>"));
    QCOMPARE(tokenizer->piece(dipaco::kUnkId), std::string("<unk>"));
    // Seen text, unseen characters (byte fallback: no unk), paragraph breaks, double spaces.
    for (const std::string& text :
         {corpus_[0].text, std::string("kalo mine, ruze.\n\nNew \xc3\xbc\xe2\x82\xac "
                                       "\xf0\x9f\x98\x80 line  with  two spaces")}) {
      auto ids = tokenizer->encode(text);
      QVERIFY(ids.is_ok());
      QVERIFY(!ids->empty());
      for (uint32_t id : *ids) {
        QVERIFY(id < tokenizer->vocab_size());
        QVERIFY(id != dipaco::kUnkId);
      }
      auto back = tokenizer->decode(*ids);
      QVERIFY(back.is_ok());
      QCOMPARE(*back, text);
    }
    // Seen text compresses: fewer tokens than bytes.
    QVERIFY(tokenizer->encode(corpus_[1].text)->size() < corpus_[1].text.size() / 2);
  }

  void trainingIsDeterministicAndSaveLoadKeepsIds() {
    auto a = Tokenizer::train(corpus_, options(300, "unigram"), "generated");
    auto b = Tokenizer::train(corpus_, options(300, "unigram"), "generated");
    QVERIFY(a.is_ok() && b.is_ok());
    QVERIFY(a->serialized() == b->serialized());
    QTemporaryDir dir;
    std::string path = dir.filePath("t.model").toStdString();
    QVERIFY(a->save(path));
    auto loaded = Tokenizer::load(path);
    QVERIFY2(loaded.is_ok(), loaded.status().message().c_str());
    QCOMPARE(*loaded->encode(corpus_[7].text), *a->encode(corpus_[7].text));
  }

  void tooLargeVocabIsAClearError() {
    auto t = Tokenizer::train(corpus_, options(50000, "unigram"), "tiny.jsonl");
    QVERIFY(!t.is_ok());
    const std::string& m = t.status().message();
    QVERIFY2(m.find("tiny.jsonl: tokenizer training failed") != std::string::npos, m.c_str());
    QVERIFY2(m.find("try --vocab-size") != std::string::npos, m.c_str());
    // Below the 256 byte pieces + characters + specials that byte fallback needs.
    auto small = Tokenizer::train(corpus_, options(100, "bpe"), "tiny.jsonl");
    QVERIFY(!small.is_ok());
    QVERIFY2(small.status().message().find("or more") != std::string::npos,
             small.status().message().c_str());
  }

  void loadRejectsNonModels() {
    QTemporaryDir dir;
    fixtures::write(dir.filePath("junk.model"), "this is not a model");
    auto t = Tokenizer::load(dir.filePath("junk.model").toStdString());
    QVERIFY(!t.is_ok());
    QVERIFY2(t.status().message().find("junk.model") != std::string::npos,
             t.status().message().c_str());
    QCOMPARE(Tokenizer::load("/nonexistent.model").status().code(), dipaco::StatusCode::kNotFound);
  }

 private:
  std::vector<Document> corpus_;
};

QTEST_GUILESS_MAIN(TokenizerTest)
#include "test_data_tokenizer.moc"
