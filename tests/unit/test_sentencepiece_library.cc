// SentencePiece through the isolating shim: train, load, encode/decode round trip, and that it
// coexists with gRPC's protobuf in one process (the reason the shim exists).
#include <QtTest>
#include <random>

#include "dipaco/v1/coordinator.pb.h"
#include "spm/sentencepiece_library.h"

namespace {

std::vector<std::string> make_sentences() {
  const char* words[] = {"the", "jury",   "said", "election", "county", "court", "was",    "of",
                         "a",   "report", "city", "vote",     "mayor",  "grand", "friday", "new"};
  std::mt19937 rng(7);
  std::vector<std::string> sentences;
  for (int i = 0; i < 400; ++i) {
    std::string s;
    for (int w = 0; w < 10; ++w) s += std::string(w ? " " : "") + words[rng() % 16];
    sentences.push_back(s + ".");
  }
  return sentences;
}

}  // namespace

class SentencePieceLibraryTest : public QObject {
  Q_OBJECT

 private slots:
  void coexistsWithGrpcProtobuf() {
    dipaco::v1::RegisterRequest request;  // forces libprotobuf.so.32 into this process
    request.set_worker_id("w1");
    QVERIFY(!request.SerializeAsString().empty());
    dipaco::Status available = dipaco::sentencepiece_available();
#if defined(__SANITIZE_ADDRESS__)
    if (!available) QSKIP("SentencePiece next to gRPC's protobuf needs RTLD_DEEPBIND (not ASan)");
#endif
    QVERIFY2(available.is_ok(), available.message().c_str());
  }

  void trainEncodeDecodeRoundTrip() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    auto sentences = make_sentences();
    size_t next = 0;
    auto model_bytes = dipaco::train_sentencepiece(
        {{"vocab_size", "400"},
         {"model_type", "bpe"},
         {"byte_fallback", "true"},
         {"minloglevel", "2"},
         {"num_threads", "1"},
         {"unk_id", "0"},
         {"bos_id", "1"},
         {"eos_id", "2"},
         {"pad_id", "-1"}},
        [&](std::string_view* s) {
          if (next == sentences.size()) return false;
          *s = sentences[next++];
          return true;
        },
        /*seed=*/1);
    QVERIFY2(model_bytes.is_ok(), model_bytes.status().message().c_str());
    auto model = dipaco::SentencePieceModel::from_bytes(*model_bytes);
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    QCOMPARE(model->vocab_size(), 400);
    QCOMPARE(model->bos_id(), 1);
    QCOMPARE(model->eos_id(), 2);
    QCOMPARE(model->pad_id(), -1);
    std::string text = "the grand jury said friday, Zürich 42!";
    auto ids = model->encode(text);
    QVERIFY(ids.is_ok());
    QVERIFY(!ids->empty());
    auto decoded = model->decode(*ids);
    QVERIFY(decoded.is_ok());
    QCOMPARE(*decoded, text);  // byte fallback: unseen characters survive
  }

  void tooLargeVocabularyIsAClearError() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    std::vector<std::string> sentences = {"a b c", "a b"};
    size_t next = 0;
    auto model = dipaco::train_sentencepiece(
        {{"vocab_size", "5000"}, {"model_type", "bpe"}, {"minloglevel", "2"}},
        [&](std::string_view* s) {
          if (next == sentences.size()) return false;
          *s = sentences[next++];
          return true;
        },
        /*seed=*/1);
    QVERIFY(!model.is_ok());
    QVERIFY2(model.status().message().find("ocab") != std::string::npos,
             model.status().message().c_str());
  }

  void corruptModelBytesAreRejected() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    auto model = dipaco::SentencePieceModel::from_bytes("definitely not a model");
    QVERIFY(!model.is_ok());
    QCOMPARE(model.status().code(), dipaco::StatusCode::kDataLoss);
    auto decoded_bad = dipaco::SentencePieceModel::load_file("/nonexistent/tokenizer.model");
    QVERIFY(!decoded_bad.is_ok());
    QVERIFY(decoded_bad.status().message().find("/nonexistent/tokenizer.model") !=
            std::string::npos);
  }
};

QTEST_GUILESS_MAIN(SentencePieceLibraryTest)
#include "test_sentencepiece_library.moc"
