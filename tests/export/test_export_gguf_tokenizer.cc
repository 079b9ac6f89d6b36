// The GGUF tokenizer follows the SentencePiece model: a BPE model keeps llama.cpp's "llama"
// tokenizer and the keys it always had; a unigram model (--model-type unigram) is written as "t5"
// with the ModelProto's precompiled_charsmap and normalizer flags, read back by the spec readers
// (spec_readers.h); word and char models, which llama.cpp cannot tokenize, are refused.
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <random>
#include <set>

#include "data/tokenizer.h"
#include "export/export_run.h"
#include "export/gguf_writer.h"
#include "export_fixture.h"
#include "spec_readers.h"
#include "test_support.h"

#ifndef DIPACO_EXPORT_TEST_DIR
#error "DIPACO_EXPORT_TEST_DIR must name tests/export"
#endif

namespace {

constexpr const char* kPython = "/usr/bin/python3";

// Short sentences of 16 words; documents of three paragraphs, as dipaco's corpora have.
std::vector<std::string> sentences(int n) {
  const char* words[] = {"the", "jury",   "said", "election", "county", "court", "was",    "of",
                         "a",   "report", "city", "vote",     "mayor",  "grand", "friday", "new"};
  std::mt19937 rng(11);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (int w = 0; w < 8; ++w) s += std::string(w ? " " : "") + words[rng() % 16];
    out.push_back(s + ".");
  }
  return out;
}

// Sentences of made-up words (syllables), so that a word model has hundreds of distinct words.
std::vector<std::string> made_up_sentences(int n) {
  const char* syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po"};
  std::mt19937 rng(13);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (int w = 0; w < 8; ++w) {
      if (w) s += " ";
      for (int k = 0; k < 3; ++k) s += syllables[rng() % 10];
    }
    out.push_back(s);
  }
  return out;
}

std::vector<dipaco::Document> documents() {
  std::vector<std::string> s = sentences(300);
  std::vector<dipaco::Document> docs;
  for (size_t i = 0; i + 3 <= s.size(); i += 3)
    docs.push_back({"d" + std::to_string(i), "test", s[i] + "\n\n" + s[i + 1] + " " + s[i + 2]});
  return docs;
}

// `dipaco data tokenizer`'s own training (Tokenizer::train: nfkc, whitespace kept as given).
dipaco::Result<std::string> train_like_dipaco(const std::string& model_type, int vocab) {
  dipaco::TokenizerOptions o;
  o.model_type = model_type;
  o.vocab_size = vocab;
  o.show_progress = false;
  DIPACO_ASSIGN_OR_RETURN(dipaco::Tokenizer t, dipaco::Tokenizer::train(documents(), o, "test"));
  return t.serialized();
}

// SentencePiece's trainer with extra options over dipaco's special ids.
dipaco::Result<std::string> train_with(std::vector<std::pair<std::string, std::string>> options,
                                       std::vector<std::string> s = sentences(400)) {
  options.insert(options.end(), {{"minloglevel", "2"},
                                 {"num_threads", "1"},
                                 {"unk_id", "0"},
                                 {"bos_id", "1"},
                                 {"eos_id", "2"},
                                 {"pad_id", "-1"}});
  size_t next = 0;
  return dipaco::train_sentencepiece(
      options,
      [&](std::string_view* out) {
        if (next == s.size()) return false;
        *out = s[next++];
        return true;
      },
      /*seed=*/1);
}

// Writes a tiny model's GGUF with `model_file`'s tokenizer to `path`.
dipaco::Status write_gguf(const QString& path, const std::string& model_file) {
  auto tok = dipaco::SentencePieceModel::from_bytes(model_file);
  if (!tok.is_ok()) return tok.status();
  auto c = export_fixture::tiny_config();
  c.vocab_size = tok->vocab_size();
  return dipaco::write_gguf_llama(path.toStdString(), c, export_fixture::random_params(c, 3), *tok,
                                  dipaco::GgufType::kF16, "tok-test");
}

// write_gguf, then the file as the GGUF spec reader sees it.
dipaco::Result<spec::GgufFile> export_and_read(const QString& path, const std::string& model_file) {
  DIPACO_RETURN_IF_ERROR(write_gguf(path, model_file));
  spec::GgufFile g = spec::read_gguf(path);
  if (!g.error.empty()) return dipaco::data_loss(path.toStdString() + ": " + g.error);
  return g;
}

std::set<std::string> tokenizer_keys(const spec::GgufFile& g) {
  std::set<std::string> keys;
  for (const auto& [key, value] : g.kv)
    if (key.rfind("tokenizer.", 0) == 0) keys.insert(key);
  return keys;
}

}  // namespace

class ExportGgufTokenizerTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
  }

  void unigramIsWrittenAsT5WithItsNormalizer_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<bool>("add_dummy_prefix");
    QTest::addColumn<bool>("remove_extra_whitespaces");
    // dipaco's default tokenizer: NFKC, whitespace kept, a leading space added.
    QTest::newRow("dipaco default") << "dipaco" << true << false;
    // SentencePiece's defaults (nmt_nfkc, whitespace collapsed) without the leading space.
    QTest::newRow("other normalizer") << "other" << false << true;
  }
  void unigramIsWrittenAsT5WithItsNormalizer() {
    QFETCH(QString, name);
    QFETCH(bool, add_dummy_prefix);
    QFETCH(bool, remove_extra_whitespaces);
    auto model = name == "dipaco" ? train_like_dipaco("unigram", 290)
                                  : train_with({{"model_type", "unigram"},
                                                {"vocab_size", "300"},
                                                {"byte_fallback", "true"},
                                                {"add_dummy_prefix", "false"}});
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    const spec::SentencePieceProto proto = spec::read_sentencepiece_proto(*model);
    QVERIFY2(proto.error.empty(), proto.error.c_str());
    QCOMPARE(proto.model_type, uint64_t{1});  // UNIGRAM
    QVERIFY(!proto.precompiled_charsmap.empty());
    QCOMPARE(proto.add_dummy_prefix, add_dummy_prefix);
    QCOMPARE(proto.remove_extra_whitespaces, remove_extra_whitespaces);

    QTemporaryDir tmp;
    auto exported = export_and_read(tmp.filePath("m.gguf"), *model);
    QVERIFY2(exported.is_ok(), exported.status().message().c_str());
    spec::GgufFile& g = *exported;

    QCOMPARE(g.kv["tokenizer.ggml.model"].s, std::string("t5"));
    // The charsmap: an array of u8 holding exactly the ModelProto's bytes.
    const spec::GgufValue& charsmap = g.kv["tokenizer.ggml.precompiled_charsmap"];
    QCOMPARE(charsmap.type, 9u);
    QCOMPARE(charsmap.array_type, 0u);
    std::string bytes;
    for (const auto& b : charsmap.array) bytes += static_cast<char>(b.u);
    QCOMPARE(bytes.size(), proto.precompiled_charsmap.size());
    QVERIFY(bytes == proto.precompiled_charsmap);
    auto flag = [&](const char* key) {
      const spec::GgufValue& v = g.kv[key];
      return v.type == 7 ? static_cast<int>(v.u) : -1;  // -1: absent or not a bool
    };
    QCOMPARE(flag("tokenizer.ggml.add_space_prefix"), add_dummy_prefix ? 1 : 0);
    QCOMPARE(flag("tokenizer.ggml.remove_extra_whitespaces"), remove_extra_whitespaces ? 1 : 0);
    // llama.cpp's "t5" adds </s> and no <s> unless told otherwise.
    QCOMPARE(flag("tokenizer.ggml.add_bos_token"), 1);
    QCOMPARE(flag("tokenizer.ggml.add_eos_token"), 0);
    QCOMPARE(g.kv["tokenizer.ggml.bos_token_id"].u, uint64_t{1});
    QCOMPARE(g.kv["tokenizer.ggml.eos_token_id"].u, uint64_t{2});
    QCOMPARE(g.kv["tokenizer.ggml.unknown_token_id"].u, uint64_t{0});
    QCOMPARE(g.kv["tokenizer.ggml.bos_token_id"].type, 4u);
    QVERIFY(!g.kv.count("tokenizer.ggml.padding_token_id"));  // pad_id = -1

    auto tok = dipaco::SentencePieceModel::from_bytes(*model);
    QVERIFY(tok.is_ok());
    const auto& tokens = g.kv["tokenizer.ggml.tokens"].array;
    const auto& scores = g.kv["tokenizer.ggml.scores"].array;
    const auto& types = g.kv["tokenizer.ggml.token_type"].array;
    QCOMPARE(tokens.size(), static_cast<size_t>(tok->vocab_size()));
    QCOMPARE(scores.size(), tokens.size());
    QCOMPARE(types.size(), tokens.size());
    int normal = 0, bytes_typed = 0;
    for (int i = 0; i < tok->vocab_size(); ++i) {
      QCOMPARE(tokens[i].s, tok->piece(i));
      QCOMPARE(static_cast<float>(scores[i].f), tok->score(i));
      QCOMPARE(types[i].i, static_cast<int64_t>(tok->piece_type(i)));
      normal += types[i].i == 1;
      bytes_typed += types[i].i == 6;
    }
    QCOMPARE(types[0].i, int64_t{2});  // <unk>: UNKNOWN
    QCOMPARE(types[1].i, int64_t{3});  // <s>: CONTROL
    QCOMPARE(bytes_typed, 256);        // byte_fallback pieces: BYTE
    QVERIFY(normal > 0);
    // Unigram log-probabilities: llama.cpp's Viterbi adds them up.
    for (int i = 0; i < tok->vocab_size(); ++i)
      if (types[i].i == 1) QVERIFY2(scores[i].f < 0, tokens[i].s.c_str());
  }

  // llama.cpp's "t5" tokenizer, re-implemented from llama.cpp's sources in
  // llama_cpp_ugm_reference.py and given only the exported metadata, segments text exactly like
  // SentencePiece, NFKC normalization and whitespace included, except that it has no byte
  // fallback: each run of byte pieces (characters outside the vocabulary) is one <unk> there.
  void llamaCppUgmSegmentsLikeSentencePiece() {
    QProcess probe;
    probe.start(kPython, {"-c", "import json, struct"});
    if (!probe.waitForFinished(60000) || probe.exitCode() != 0)
      QSKIP("/usr/bin/python3 is not available");
    auto model = train_like_dipaco("unigram", 290);
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    QTemporaryDir tmp;
    const QString gguf = tmp.filePath("m.gguf");
    auto exported = export_and_read(gguf, *model);
    QVERIFY2(exported.is_ok(), exported.status().message().c_str());

    const QStringList texts = {
        "the jury said the election was new.",
        "  the  county   court report ",  // leading, repeated and trailing spaces
        // NFKC: the ligature, fullwidth letters and the ellipsis change under the charsmap
        QString::fromUtf8("\xef\xac\x81 the \xef\xbd\x83\xef\xbd\x89\xef\xbd\x94\xef\xbd\x99 "
                          "vote\xe2\x80\xa6"),
        "grand jury.\n\nfriday report",  // a paragraph break: byte pieces
        QString::fromUtf8("Mayor \xc3\x9c"
                          "ber\tvote"),  // unseen letters, a tab
        ""};
    QFile in(tmp.filePath("texts.json"));
    QVERIFY(in.open(QIODevice::WriteOnly));
    in.write(QJsonDocument(QJsonArray::fromStringList(texts)).toJson());
    in.close();
    QProcess python;
    python.start(kPython, {QString(DIPACO_EXPORT_TEST_DIR) + "/llama_cpp_ugm_reference.py", gguf,
                           in.fileName(), tmp.filePath("ids.json")});
    QVERIFY(python.waitForFinished(120000));
    QVERIFY2(python.exitCode() == 0, python.readAllStandardError().constData());
    const QJsonArray got = QJsonDocument::fromJson(spec::slurp(tmp.filePath("ids.json"))).array();
    QCOMPARE(got.size(), texts.size());

    auto tok = dipaco::SentencePieceModel::from_bytes(*model);
    QVERIFY(tok.is_ok());
    const int32_t unk = tok->unk_id();
    int texts_with_bytes = 0;
    for (int t = 0; t < texts.size(); ++t) {
      auto ids = tok->encode(texts[t].toStdString());
      QVERIFY(ids.is_ok());
      std::vector<int32_t> expected;
      for (int32_t id : *ids) {
        const bool byte = tok->piece_type(id) == dipaco::SentencePieceModel::PieceType::kByte;
        if (!byte)
          expected.push_back(id);
        else if (expected.empty() || expected.back() != unk)
          expected.push_back(unk);
      }
      texts_with_bytes += expected != *ids;
      std::vector<int32_t> llama_cpp;
      for (const auto& v : got[t].toArray()) llama_cpp.push_back(v.toInt());
      QVERIFY2(llama_cpp == expected, qPrintable(texts[t]));
    }
    QCOMPARE(texts_with_bytes, 2);  // the paragraph break; M, Ü and the tab
  }

  // The README's main job uses a BPE tokenizer: its GGUF keeps llama.cpp's "llama" tokenizer and
  // exactly the tokenizer keys it had before unigram support.
  void bpeKeepsTheLlamaTokenizer() {
    auto model = train_like_dipaco("bpe", 320);
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    QCOMPARE(spec::read_sentencepiece_proto(*model).model_type, uint64_t{2});  // BPE
    QTemporaryDir tmp;
    auto exported = export_and_read(tmp.filePath("m.gguf"), *model);
    QVERIFY2(exported.is_ok(), exported.status().message().c_str());
    spec::GgufFile& g = *exported;
    QCOMPARE(g.kv["tokenizer.ggml.model"].s, std::string("llama"));
    const std::set<std::string> expected = {"tokenizer.ggml.model",
                                            "tokenizer.ggml.tokens",
                                            "tokenizer.ggml.scores",
                                            "tokenizer.ggml.token_type",
                                            "tokenizer.ggml.bos_token_id",
                                            "tokenizer.ggml.eos_token_id",
                                            "tokenizer.ggml.unknown_token_id",
                                            "tokenizer.ggml.add_space_prefix",
                                            "tokenizer.ggml.add_bos_token",
                                            "tokenizer.ggml.add_eos_token"};
    QCOMPARE(tokenizer_keys(g), expected);
    QCOMPARE(g.kv["tokenizer.ggml.add_space_prefix"].u, uint64_t{1});
    QCOMPARE(g.kv["tokenizer.ggml.add_bos_token"].u, uint64_t{1});
    QCOMPARE(g.kv["tokenizer.ggml.add_eos_token"].u, uint64_t{0});
  }

  void wordAndCharModelsAreRefused_data() {
    QTest::addColumn<QString>("type");
    QTest::newRow("word") << "word";
    QTest::newRow("char") << "char";
  }
  void wordAndCharModelsAreRefused() {
    QFETCH(QString, type);
    auto model = train_with(
        {{"model_type", type.toStdString()}, {"vocab_size", "40"}, {"hard_vocab_limit", "false"}});
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    QCOMPARE(spec::read_sentencepiece_proto(*model).model_type, uint64_t{type == "word" ? 3u : 4u});
    QTemporaryDir tmp;
    const QString file = tmp.filePath("m.gguf");
    dipaco::Status written = write_gguf(file, *model);
    QVERIFY(!written.is_ok());
    const std::string quoted = "'" + type.toStdString() + "'";
    QVERIFY2(dipaco::test::contains(written.message(), quoted), written.message().c_str());
    QVERIFY2(dipaco::test::contains(written.message(), "--format hf"), written.message().c_str());
    QVERIFY(!QFile::exists(file));
    QCOMPARE(QDir(tmp.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot),
             QStringList());
  }

  // `dipaco export` of a run whose tokenizer is a word model: the default (hf,gguf) fails and
  // leaves nothing; the Hugging Face directory alone still exports.
  void exportOfAWordTokenizerRunNeedsFormatHf() {
    auto model =
        train_with({{"model_type", "word"}, {"vocab_size", std::to_string(export_fixture::kVocab)}},
                   made_up_sentences(400));
    QVERIFY2(model.is_ok(), model.status().message().c_str());
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), *model, 1);
    QVERIFY2(run.is_ok(), run.status().message().c_str());
    const std::string out = tmp.filePath("out").toStdString();
    auto refused = dipaco::export_run(run->dir, out, dipaco::ExportOptions());
    QVERIFY(!refused.is_ok());
    QVERIFY2(dipaco::test::contains(refused.status().message(), "'word'"),
             refused.status().message().c_str());
    QCOMPARE(QDir(tmp.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot),
             QStringList({"run"}));
    dipaco::ExportOptions hf_only;
    hf_only.gguf = false;
    auto exported = dipaco::export_run(run->dir, out, hf_only);
    QVERIFY2(exported.is_ok(), exported.status().message().c_str());
    QVERIFY(QFile::exists(tmp.filePath("out/path-0/model.safetensors")));
  }
};

QTEST_GUILESS_MAIN(ExportGgufTokenizerTest)
#include "test_export_gguf_tokenizer.moc"
