// dipaco export: export -> re-import gives the same parameters and bit-identical logits; the
// safetensors, config.json and GGUF files checked by readers written from the specs
// (spec_readers.h); the manifest; bad input fails cleanly and leaves nothing behind.
#include <unistd.h>

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>

#include "data/token_file.h"
#include "export/export_reader.h"
#include "export/export_run.h"
#include "export/gguf_writer.h"
#include "export/hf_llama.h"
#include "export/path_chooser.h"
#include "export/run_source.h"
#include "export_fixture.h"
#include "routing/document_features.h"
#include "spec_readers.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/train_loop.h"

namespace {

std::vector<float> logits_of(const dipaco::ModelConfig& c, const std::vector<float>& params,
                             const std::vector<int32_t>& tokens) {
  dipaco::CpuBackend be(1);
  auto model = dipaco::Model::create(&be, c, 1, c.max_seq_len);
  model.value()->set_params(params);
  model.value()->forward(tokens.data(), nullptr, 1, static_cast<int>(tokens.size()));
  return model.value()->get_logits();
}

std::vector<int32_t> some_tokens(int n, int vocab) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 37 + 5) % vocab;
  return t;
}

QJsonObject read_json(const QString& path) {
  return QJsonDocument::fromJson(spec::slurp(path)).object();
}

// Entries of `dir` (hidden ones included): a failed export must leave none behind.
QStringList entries(const QString& dir) {
  return QDir(dir).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot);
}

}  // namespace

class ExportRoundTripTest : public QObject {
  Q_OBJECT

 private:
  std::string tokenizer_;

 private slots:
  void initTestCase() {
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
    auto t = export_fixture::train_tokenizer();
    QVERIFY2(t.is_ok(), t.status().message().c_str());
    tokenizer_ = *t;
  }

  void reimportGivesIdenticalParamsAndLogits() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 2);
    QVERIFY2(run.is_ok(), run.status().message().c_str());
    dipaco::ExportOptions o;
    o.gguf = false;
    auto r = dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QCOMPARE(r->path_ids, (std::vector<int>{0, 1}));
    const auto tokens = some_tokens(run->config.max_seq_len, run->config.vocab_size);
    for (int id = 0; id < 2; ++id) {
      auto hf = dipaco::load_hf_export(tmp.filePath("out/path-%1").arg(id).toStdString());
      QVERIFY2(hf.is_ok(), hf.status().message().c_str());
      QVERIFY(hf->config == run->config);
      QVERIFY(hf->params == run->params[id]);
      auto a = logits_of(run->config, run->params[id], tokens);
      auto b = logits_of(hf->config, hf->params, tokens);
      QCOMPARE(a.size(), b.size());
      QVERIFY(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    }
  }

  void hfDirectoryFollowsTheSpecs() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 1);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.gguf = false;
    QVERIFY(dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o).is_ok());
    const QString dir = tmp.filePath("out/path-0");
    auto st = spec::read_safetensors(dir + "/model.safetensors");
    QVERIFY2(st.error.isEmpty(), qPrintable(st.error));
    QCOMPARE(st.metadata["format"], QString("pt"));
    dipaco::ParamLayout layout(run->config);
    QCOMPARE(st.tensors.size(), layout.tensors().size());
    for (const auto& t : layout.tensors()) {
      const QString name = QString::fromStdString(t.name);
      QVERIFY2(st.tensors.count(name), qPrintable(name));
      QCOMPARE(st.tensors[name].dtype, QString("F32"));
      QCOMPARE(st.tensors[name].shape, t.shape);
      auto v = spec::st_floats(st, name);
      QVERIFY(std::equal(v.begin(), v.end(), run->params[0].begin() + t.offset));
    }
    // The standard Llama names transformers looks for.
    for (const char* name :
         {"model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight",
          "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"})
      QVERIFY2(st.tensors.count(name), name);

    QJsonObject config = read_json(dir + "/config.json");
    QCOMPARE(config["architectures"].toArray().at(0).toString(), QString("LlamaForCausalLM"));
    QCOMPARE(config["model_type"].toString(), QString("llama"));
    QCOMPARE(config["hidden_size"].toInt(), 32);
    QCOMPARE(config["intermediate_size"].toInt(), 64);
    QCOMPARE(config["num_hidden_layers"].toInt(), 2);
    QCOMPARE(config["num_attention_heads"].toInt(), 4);
    QCOMPARE(config["num_key_value_heads"].toInt(), 2);
    QCOMPARE(config["vocab_size"].toInt(), export_fixture::kVocab);
    QCOMPARE(config["max_position_embeddings"].toInt(), 32);
    QCOMPARE(config["rope_theta"].toDouble(), 10000.0);
    QCOMPARE(config["rms_norm_eps"].toDouble(), 1e-5);
    QCOMPARE(config["tie_word_embeddings"].toBool(true), false);
    QCOMPARE(config["bos_token_id"].toInt(), 1);
    QCOMPARE(config["eos_token_id"].toInt(), 2);
    QCOMPARE(read_json(dir + "/generation_config.json")["eos_token_id"].toInt(), 2);
    QJsonObject tc = read_json(dir + "/tokenizer_config.json");
    QCOMPARE(tc["tokenizer_class"].toString(), QString("LlamaTokenizer"));
    QCOMPARE(tc["bos_token"].toString(), QString("<s>"));
    QCOMPARE(tc["eos_token"].toString(), QString("</s>"));
    QCOMPARE(spec::slurp(dir + "/tokenizer.model"), QByteArray::fromStdString(tokenizer_));
  }

  void ggufFollowsTheSpec_data() {
    QTest::addColumn<QString>("type");
    QTest::addColumn<int>("ggml_type");
    QTest::addColumn<int>("file_type");
    QTest::addColumn<double>("tolerance");  // max |error| relative to max |weight|
    QTest::newRow("f32") << "f32" << 0 << 0 << 0.0;
    QTest::newRow("f16") << "f16" << 1 << 1 << 1e-3;
    QTest::newRow("bf16") << "bf16" << 30 << 32 << 8e-3;
    QTest::newRow("q8_0") << "q8_0" << 8 << 7 << 1e-2;
  }

  void ggufFollowsTheSpec() {
    QFETCH(QString, type);
    QFETCH(int, ggml_type);
    QFETCH(int, file_type);
    QFETCH(double, tolerance);
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 1);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.hf = false;
    o.gguf_type = *dipaco::parse_gguf_type(type.toStdString());
    auto r = dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    auto g = spec::read_gguf(tmp.filePath("out/path-0.gguf"));
    QVERIFY2(g.error.empty(), g.error.c_str());
    QCOMPARE(g.version, 3u);
    const auto& c = run->config;
    auto u = [&](const char* key) { return g.kv.count(key) ? g.kv[key].u : 999999; };
    QCOMPARE(g.kv["general.architecture"].s, std::string("llama"));
    QCOMPARE(g.kv["general.architecture"].type, 8u);
    QCOMPARE(u("general.file_type"), static_cast<uint64_t>(file_type));
    QCOMPARE(u("llama.context_length"), 32u);
    QCOMPARE(u("llama.embedding_length"), 32u);
    QCOMPARE(u("llama.block_count"), 2u);
    QCOMPARE(u("llama.feed_forward_length"), 64u);
    QCOMPARE(u("llama.attention.head_count"), 4u);
    QCOMPARE(u("llama.attention.head_count_kv"), 2u);
    QCOMPARE(u("llama.rope.dimension_count"), 8u);
    QCOMPARE(g.kv["llama.rope.freq_base"].f, 10000.0);
    QCOMPARE(g.kv["llama.attention.layer_norm_rms_epsilon"].type, 6u);
    QVERIFY(std::fabs(g.kv["llama.attention.layer_norm_rms_epsilon"].f - 1e-5) < 1e-9);
    QCOMPARE(g.kv["tokenizer.ggml.model"].s, std::string("llama"));
    QCOMPARE(u("tokenizer.ggml.bos_token_id"), 1u);
    QCOMPARE(u("tokenizer.ggml.eos_token_id"), 2u);
    QCOMPARE(u("tokenizer.ggml.unknown_token_id"), 0u);
    QCOMPARE(u("tokenizer.ggml.add_bos_token"), 1u);
    QCOMPARE(u("tokenizer.ggml.add_space_prefix"), 1u);
    const auto& tokens = g.kv["tokenizer.ggml.tokens"];
    const auto& scores = g.kv["tokenizer.ggml.scores"];
    const auto& types = g.kv["tokenizer.ggml.token_type"];
    QCOMPARE(tokens.array_type, 8u);
    QCOMPARE(scores.array_type, 6u);
    QCOMPARE(types.array_type, 5u);
    QCOMPARE(tokens.array.size(), static_cast<size_t>(c.vocab_size));
    QCOMPARE(scores.array.size(), static_cast<size_t>(c.vocab_size));
    QCOMPARE(types.array.size(), static_cast<size_t>(c.vocab_size));
    auto spm = dipaco::SentencePieceModel::from_bytes(tokenizer_);
    QVERIFY(spm.is_ok());
    for (int i = 0; i < c.vocab_size; ++i) {
      QCOMPARE(tokens.array[i].s, spm->piece(i));
      QCOMPARE(static_cast<float>(scores.array[i].f), spm->score(i));
    }
    QCOMPARE(tokens.array[1].s, std::string("<s>"));
    QCOMPARE(types.array[0].i, int64_t{2});  // unknown
    QCOMPARE(types.array[1].i, int64_t{3});  // control
    QCOMPARE(types.array[2].i, int64_t{3});
    int bytes = 0;
    for (const auto& t : types.array) bytes += t.i == 6;
    QCOMPARE(bytes, 256);  // byte_fallback pieces typed BYTE

    QCOMPARE(g.tensors.size(), size_t{2 + 9 * 2 + 1});
    dipaco::ParamLayout layout(c);
    const float* p = run->params[0].data();
    const int hd = c.head_dim(), C = c.d_model, H = c.n_heads, KVH = c.n_kv_heads;
    // (gguf name, source rows in GGUF order, rows, cols, is_norm)
    struct Expect {
      std::string name;
      std::vector<float> values;
      uint64_t rows, cols;
    };
    auto rows_of = [&](size_t offset, uint64_t rows, uint64_t cols) {
      return std::vector<float>(p + offset, p + offset + rows * cols);
    };
    // llama.cpp rotates adjacent pairs: GGUF row h*hd + 2i + j is HF row h*hd + j*hd/2 + i.
    auto interleave = [&](size_t offset, int heads) {
      std::vector<float> out(static_cast<size_t>(heads) * hd * C);
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < hd / 2; ++i)
          for (int j = 0; j < 2; ++j)
            std::memcpy(&out[(static_cast<size_t>(h) * hd + 2 * i + j) * C],
                        p + offset + (static_cast<size_t>(h) * hd + j * hd / 2 + i) * C, C * 4);
      return out;
    };
    std::vector<Expect> expect = {
        {"token_embd.weight", rows_of(0, c.vocab_size, C), uint64_t(c.vocab_size), uint64_t(C)},
        {"output_norm.weight", rows_of(layout.final_norm(), 1, C), 1, uint64_t(C)},
        {"output.weight", rows_of(layout.lm_head(), c.vocab_size, C), uint64_t(c.vocab_size),
         uint64_t(C)}};
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& b = layout.block(l);
      std::string blk = "blk." + std::to_string(l) + ".";
      expect.push_back({blk + "attn_norm.weight", rows_of(b.attn_norm, 1, C), 1, uint64_t(C)});
      expect.push_back(
          {blk + "attn_q.weight", interleave(b.wqkv, H), uint64_t(H * hd), uint64_t(C)});
      expect.push_back({blk + "attn_k.weight", interleave(b.wqkv + size_t(H) * hd * C, KVH),
                        uint64_t(KVH * hd), uint64_t(C)});
      expect.push_back({blk + "attn_v.weight",
                        rows_of(b.wqkv + size_t(H + KVH) * hd * C, KVH * hd, C), uint64_t(KVH * hd),
                        uint64_t(C)});
      expect.push_back(
          {blk + "attn_output.weight", rows_of(b.wo, C, H * hd), uint64_t(C), uint64_t(H * hd)});
      expect.push_back({blk + "ffn_norm.weight", rows_of(b.mlp_norm, 1, C), 1, uint64_t(C)});
      expect.push_back(
          {blk + "ffn_gate.weight", rows_of(b.w13, c.d_ff, C), uint64_t(c.d_ff), uint64_t(C)});
      expect.push_back({blk + "ffn_up.weight", rows_of(b.w13 + size_t(c.d_ff) * C, c.d_ff, C),
                        uint64_t(c.d_ff), uint64_t(C)});
      expect.push_back(
          {blk + "ffn_down.weight", rows_of(b.w_down, C, c.d_ff), uint64_t(C), uint64_t(c.d_ff)});
    }
    for (const auto& e : expect) {
      const spec::GgufTensor* t = g.find(e.name);
      QVERIFY2(t != nullptr, e.name.c_str());
      const bool norm = e.rows == 1;
      const std::vector<uint64_t> ne =
          norm ? std::vector<uint64_t>{e.cols} : std::vector<uint64_t>{e.cols, e.rows};
      QCOMPARE(t->ne, ne);
      QCOMPARE(t->type, norm ? 0u : static_cast<uint32_t>(ggml_type));
      auto got = spec::gguf_floats(g, *t);
      QCOMPARE(got.size(), e.values.size());
      double max_err = 0, max_abs = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        max_err = std::max(max_err, std::fabs(double(got[i]) - e.values[i]));
        max_abs = std::max(max_abs, std::fabs(double(e.values[i])));
      }
      QVERIFY2(max_err <= (norm ? 0.0 : tolerance) * max_abs,
               qPrintable(QString("%1: max error %2 (max |w| %3)")
                              .arg(e.name.c_str())
                              .arg(max_err)
                              .arg(max_abs)));
    }
  }

  // q8_0 blocks are 32 values of a row: rows of another length fall back to f16.
  void q8_0FallsBackToF16ForRowsNotMultipleOf32() {
    auto c = export_fixture::tiny_config();
    c.d_ff = 48;
    auto spm = dipaco::SentencePieceModel::from_bytes(tokenizer_);
    QVERIFY(spm.is_ok());
    QTemporaryDir tmp;
    const QString file = tmp.filePath("m.gguf");
    QVERIFY(dipaco::write_gguf_llama(file.toStdString(), c, export_fixture::random_params(c, 4),
                                     *spm, dipaco::GgufType::kQ8_0, "m"));
    auto g = spec::read_gguf(file);
    QVERIFY2(g.error.empty(), g.error.c_str());
    QCOMPARE(g.find("blk.0.ffn_gate.weight")->type, 8u);  // 32 columns
    QCOMPARE(g.find("blk.0.ffn_down.weight")->type, 1u);  // 48 columns
    QCOMPARE(g.kv["general.file_type"].u, uint64_t{7});
  }

  void manifestRecordsProvenance() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 3);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.path_ids = {2, 0};
    o.gguf_type = dipaco::GgufType::kQ8_0;
    auto r = dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QJsonObject m = read_json(tmp.filePath("out/dipaco.json"));
    QCOMPARE(m["format"].toString(), QString("dipaco-export/1"));
    QCOMPARE(m["model"].toString(), QString::fromStdString(run->config.to_string()));
    QCOMPARE(m["source"].toObject()["kind"].toString(), QString("dipaco-run"));
    QCOMPARE(m["source"].toObject()["name"].toString(), QString("tiny"));
    QCOMPARE(m["gguf_type"].toString(), QString("q8_0"));
    auto sha256 = [](const QByteArray& bytes) {
      return QString::fromLatin1(
          QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
    };
    QCOMPARE(m["tokenizer"].toObject()["sha256"].toString(),
             sha256(QByteArray::fromStdString(tokenizer_)));
    QCOMPARE(m["source"].toObject()["run_json"].toObject()["format"].toString(),
             QString("dipaco-run/1"));
    QJsonArray paths = m["paths"].toArray();
    QCOMPARE(paths.size(), 2);
    QJsonObject p2 = paths.at(0).toObject();
    QCOMPARE(p2["id"].toInt(), 2);
    QCOMPARE(p2["modules"].toArray(), (QJsonArray{0, 3}));
    QCOMPARE(p2["shard_documents"].toInt(), 12);
    QCOMPARE(p2["shard_tokens"].toInt(), 1002);
    QVERIFY(std::fabs(p2["val_loss"].toDouble() - 4.3) < 1e-12);
    QCOMPARE(p2["hf"].toString(), QString("path-2"));
    QCOMPARE(p2["gguf"].toString(), QString("path-2.gguf"));
    QCOMPARE(p2["sha256"].toObject()["path-2.gguf"].toString(),
             sha256(spec::slurp(tmp.filePath("out/path-2.gguf"))));
    QCOMPARE(p2["sha256"].toObject()["path-2/model.safetensors"].toString(),
             sha256(spec::slurp(tmp.filePath("out/path-2/model.safetensors"))));
    QVERIFY(QFile::exists(tmp.filePath("out/path-2/model.safetensors")));
    QVERIFY(!QFile::exists(tmp.filePath("out/path-1")));
    QJsonObject router = m["router"].toObject();
    QCOMPARE(router["kind"].toString(), QString("kmeans"));
    QCOMPARE(router["prefix_tokens"].toInt(), export_fixture::kPrefixTokens);
    QCOMPARE(router["base_checkpoint"].toString(), QString("router-base.safetensors"));
    QCOMPARE(spec::slurp(tmp.filePath("out/router-base.safetensors")),
             spec::slurp(tmp.filePath("run/paths/base.safetensors")));
    QCOMPARE(router["file"].toString(), QString("router.safetensors"));
    QCOMPARE(spec::slurp(tmp.filePath("out/router.safetensors")),
             spec::slurp(tmp.filePath("run/router.safetensors")));
    QCOMPARE(read_json(tmp.filePath("out/router.json"))["kind"].toString(), QString("kmeans"));
  }

  void routerSendsEachDocumentToItsPath() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 3);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.gguf = false;
    o.path_ids = {0, 1};
    QVERIFY(dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o).is_ok());
    auto ex = dipaco::open_export(tmp.filePath("out").toStdString());
    QVERIFY2(ex.is_ok(), ex.status().message().c_str());
    dipaco::CpuBackend be(1);
    auto chooser = dipaco::make_path_chooser(*ex, std::nullopt, &be);
    QVERIFY2(chooser.is_ok(), chooser.status().message().c_str());
    QVERIFY2(dipaco::test::contains((*chooser)->describe(), "kmeans router over 3 paths"),
             (*chooser)->describe().c_str());
    for (int i = 0; i < 2; ++i) {
      auto id = (*chooser)->choose(run->routed_docs[i]);
      QVERIFY2(id.is_ok(), id.status().message().c_str());
      QCOMPARE(*id, i);
    }
    // Re-routing reads the prefix-length tokens before the point: here path 1's document.
    std::vector<int32_t> joined = run->routed_docs[0];
    joined.insert(joined.end(), run->routed_docs[1].begin(), run->routed_docs[1].end());
    const size_t point = run->routed_docs[0].size() + export_fixture::kPrefixTokens;
    QCOMPARE(*(*chooser)->choose_at(joined, point), 1);
    QCOMPARE(*(*chooser)->choose(joined), 0);
    // Path 2 was not exported: a clear error, not a silent other path.
    auto missing = (*chooser)->choose(run->routed_docs[2]);
    QVERIFY(!missing.is_ok());
    QVERIFY2(
        dipaco::test::contains(missing.status().message(), "path 2, which is not in the export"),
        missing.status().message().c_str());
  }

  // prefix_features must stay what the runner routed training documents with
  // (routing/document_features.h); checked on a token file holding the same documents.
  void prefixFeaturesMatchTheRunnersDocumentFeatures() {
    QTemporaryDir tmp;
    const auto c = export_fixture::tiny_config();
    dipaco::CpuBackend be(1);
    auto base = dipaco::Model::create(&be, c, 2, export_fixture::kPrefixTokens);
    QVERIFY(base.is_ok());
    (*base)->set_params(export_fixture::random_params(c, 99));
    std::vector<std::vector<uint32_t>> docs;
    for (int i = 0; i < 3; ++i) {
      auto d = export_fixture::routed_doc(i);
      if (i == 2) d.resize(5);  // shorter than the prefix
      docs.emplace_back(d.begin(), d.end());
    }
    const std::string file = tmp.filePath("docs.tok").toStdString();
    QVERIFY(dipaco::write_token_file(file, export_fixture::kVocab, docs));
    auto tf = dipaco::TokenFile::open(file);
    QVERIFY(tf.is_ok());
    auto spans = dipaco::document_spans(*tf);
    auto expected =
        dipaco::compute_span_features(**base, *tf, spans, export_fixture::kPrefixTokens);
    QVERIFY2(expected.is_ok(), expected.status().message().c_str());
    auto one = dipaco::Model::create(&be, c, 1, export_fixture::kPrefixTokens);
    (*one)->set_params((*base)->get_params());
    for (size_t i = 0; i < docs.size(); ++i) {
      std::vector<int32_t> d(docs[i].begin(), docs[i].end());
      auto x = dipaco::prefix_features(**one, d, export_fixture::kPrefixTokens);
      for (int k = 0; k < c.d_model; ++k) {
        float e = (*expected)[i * c.d_model + k];
        QVERIFY2(std::fabs(x[k] - e) <= 1e-5f * (1 + std::fabs(e)),
                 qPrintable(QString("doc %1 feature %2: %3 vs %4").arg(i).arg(k).arg(x[k]).arg(e)));
      }
    }
  }

  // dipaco train --init-from: a run starts from an export's weights (a warm start).
  void trainingWarmStartsFromAnExport() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 1);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions eo;
    eo.gguf = false;
    QVERIFY(dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), eo).is_ok());
    std::vector<std::vector<uint32_t>> docs(4);
    for (int i = 0; i < 4; ++i)
      for (int t = 0; t < 40; ++t) docs[i].push_back((i * 7 + t * 3) % export_fixture::kVocab);
    const std::string tokens = tmp.filePath("train.tok").toStdString();
    QVERIFY(dipaco::write_token_file(tokens, export_fixture::kVocab, docs));
    dipaco::RunConfig rc;
    rc.model = run->config;
    rc.train.batch_size = 1;
    rc.train.seq_len = 16;
    rc.train.steps = 1;
    rc.train.warmup_steps = 0;
    rc.train.lr = rc.train.min_lr = 1e-12;  // the step barely moves the weights
    rc.threads = 1;
    rc.train_tokens = tokens;
    rc.val_tokens = "";
    rc.checkpoint_dir = tmp.filePath("ckpt").toStdString();
    rc.eval_every = 0;
    rc.checkpoint_every = 0;
    FILE* sink = std::fopen("/dev/null", "w");
    dipaco::TrainLoopOptions o;
    o.out = sink;
    o.init_from = tmp.filePath("out/path-0").toStdString();
    auto trained = dipaco::run_training(rc, o);
    QVERIFY2(trained.is_ok(), trained.status().message().c_str());
    auto state = dipaco::read_checkpoint(rc.checkpoint_dir + "/checkpoint.safetensors", rc.model);
    QVERIFY(state.is_ok());
    double max_diff = 0;
    for (size_t i = 0; i < state->params.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(double(state->params[i]) - run->params[0][i]));
    QVERIFY2(max_diff < 1e-6, qPrintable(QString("max |trained - export| %1").arg(max_diff)));
    // An export of another shape is refused with the difference.
    rc.model.d_ff = 96;
    rc.checkpoint_dir = tmp.filePath("ckpt2").toStdString();
    auto refused = dipaco::run_training(rc, o);
    std::fclose(sink);
    QVERIFY(!refused.is_ok());
    QVERIFY2(dipaco::test::contains(refused.status().message(), "d_ff 64 vs 96"),
             refused.status().message().c_str());
  }

  void denseCheckpointDirectoryExportsAsPathZero() {
    QTemporaryDir tmp;
    const auto c = export_fixture::tiny_config(4);
    dipaco::CheckpointState state;
    state.config = c;
    state.step = 7;
    state.params = export_fixture::random_params(c, 3);
    state.m.assign(state.params.size(), 0.0f);
    state.v.assign(state.params.size(), 0.0f);
    QDir().mkpath(tmp.filePath("dense"));
    QVERIFY(dipaco::write_checkpoint(tmp.filePath("dense/checkpoint.safetensors").toStdString(),
                                     dipaco::ParamLayout(c), state));
    QVERIFY(dipaco::write_file_atomically(
        tmp.filePath("dense/metrics.jsonl").toStdString(),
        "{\"step\": 5, \"val_loss\": 6.5}\n{\"step\": 7, \"loss\": 6.1}\n"
        "{\"step\": 7, \"val_loss\": 6.25}\n"));
    QVERIFY(dipaco::write_file_atomically(tmp.filePath("tok.model").toStdString(), tokenizer_));
    dipaco::ExportOptions o;
    auto missing = dipaco::export_run(tmp.filePath("dense").toStdString(),
                                      tmp.filePath("out").toStdString(), o);
    QVERIFY(!missing.is_ok());
    QVERIFY2(dipaco::test::contains(missing.status().message(), "--tokenizer"),
             missing.status().message().c_str());
    o.tokenizer = tmp.filePath("tok.model").toStdString();
    auto r = dipaco::export_run(tmp.filePath("dense").toStdString(),
                                tmp.filePath("out").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    auto hf = dipaco::load_hf_export(tmp.filePath("out/path-0").toStdString());
    QVERIFY2(hf.is_ok(), hf.status().message().c_str());
    QVERIFY(hf->params == state.params);
    QVERIFY(QFile::exists(tmp.filePath("out/path-0.gguf")));
    QJsonObject m = read_json(tmp.filePath("out/dipaco.json"));
    QCOMPARE(m["source"].toObject()["kind"].toString(), QString("dense-checkpoint"));
    QCOMPARE(m["paths"].toArray().at(0).toObject()["val_loss"].toDouble(), 6.25);
  }

  void badInputFailsCleanly_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("message");
    QTest::newRow("unknown path id") << "unknown-path"
                                     << "has no path 7 (its paths: 0, 1)";
    QTest::newRow("no finished paths") << "unfinished"
                                       << "no finished paths";
    QTest::newRow("unfinished path asked for") << "unfinished-id"
                                               << "path 1 is not finished";
    QTest::newRow("corrupted checkpoint") << "corrupt"
                                          << "path-1.safetensors";
    QTest::newRow("non-finite weights") << "nan"
                                        << "non-finite";
    QTest::newRow("output exists") << "exists"
                                   << "already exists";
    QTest::newRow("output not writable") << "readonly"
                                         << "cannot write in";
    QTest::newRow("not a run") << "not-a-run"
                               << "neither run.json nor checkpoint.safetensors";
    QTest::newRow("run in progress") << "in-progress"
                                     << "no run.json yet";
  }

  void badInputFailsCleanly() {
    QFETCH(QString, kind);
    QFETCH(QString, message);
    QTemporaryDir tmp;
    std::vector<int> unfinished;
    if (kind == "unfinished") unfinished = {0, 1};
    if (kind == "unfinished-id") unfinished = {1};
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 2, unfinished);
    QVERIFY(run.is_ok());
    QDir().mkpath(tmp.filePath("parent"));
    QString out = tmp.filePath("parent/out");
    std::string run_dir = run->dir;
    dipaco::ExportOptions o;
    if (kind == "unknown-path") o.path_ids = {0, 7};
    if (kind == "unfinished-id") o.path_ids = {1};
    if (kind == "corrupt") {
      QFile f(tmp.filePath("run/paths/path-1.safetensors"));
      QVERIFY(f.open(QIODevice::ReadWrite));
      QVERIFY(f.resize(f.size() - 100));
    }
    if (kind == "nan") {
      auto params = run->params[1];
      params[5] = NAN;
      QVERIFY(export_fixture::write_path_file(
          tmp.filePath("run/paths/path-1.safetensors").toStdString(), run->config, params));
    }
    if (kind == "exists") {
      QDir().mkpath(out);
      QFile keep(out + "/keep.txt");
      QVERIFY(keep.open(QIODevice::WriteOnly));
    }
    if (kind == "readonly") {
      // Root ignores directory permissions; /proc refuses new entries even to root.
      if (geteuid() == 0) {
        out = "/proc/dipaco-export-test";
      } else {
        QVERIFY(QFile::setPermissions(tmp.filePath("parent"),
                                      QFileDevice::ReadOwner | QFileDevice::ExeOwner));
      }
    }
    if (kind == "not-a-run") run_dir = tmp.filePath("parent").toStdString();
    if (kind == "in-progress") {
      QVERIFY(QFile::rename(tmp.filePath("run/run.json"), tmp.filePath("run/grid.toml")));
    }
    auto r = dipaco::export_run(run_dir, out.toStdString(), o);
    QFile::setPermissions(tmp.filePath("parent"),
                          QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
    QVERIFY(!r.is_ok());
    QVERIFY2(dipaco::test::contains(r.status().message(), message.toStdString()),
             r.status().message().c_str());
    // Nothing left behind: no export, no temporary directory.
    if (kind == "exists") {
      QCOMPARE(entries(out), QStringList{"keep.txt"});
      QCOMPARE(entries(tmp.filePath("parent")), QStringList{"out"});
    } else {
      QVERIFY2(entries(tmp.filePath("parent")).isEmpty(),
               qPrintable(entries(tmp.filePath("parent")).join(", ")));
    }
  }

  void forceReplacesAnEarlierExport() {
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 1);
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.gguf = false;
    const std::string out = tmp.filePath("out").toStdString();
    auto r = dipaco::export_run(run->dir, out, o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QFile old(tmp.filePath("out/old.txt"));
    QVERIFY(old.open(QIODevice::WriteOnly));
    old.close();
    o.force = true;
    r = dipaco::export_run(run->dir, out, o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QVERIFY(!QFile::exists(tmp.filePath("out/old.txt")));
    QVERIFY(QFile::exists(tmp.filePath("out/dipaco.json")));
    QCOMPARE(entries(tmp.path()), (QStringList{"out", "run"}));
    // An empty directory may be filled too.
    QDir().mkpath(tmp.filePath("empty"));
    r = dipaco::export_run(run->dir, tmp.filePath("empty").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());
    QVERIFY(QFile::exists(tmp.filePath("empty/dipaco.json")));
  }

  // --force deleted whatever --out named; it replaces only an earlier export now.
  void forceRefusesToReplaceWhatIsNotAnExport_data() {
    QTest::addColumn<QString>("kind");
    QTest::newRow("a user's directory") << "directory";
    QTest::newRow("a file") << "file";
    QTest::newRow("another tool's dipaco.json") << "foreign manifest";
  }

  void forceRefusesToReplaceWhatIsNotAnExport() {
    QFETCH(QString, kind);
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), tokenizer_, 1);
    QVERIFY(run.is_ok());
    const QString out = tmp.filePath("important");
    const QString precious = kind == "file" ? out : out + "/notes.txt";
    if (kind != "file") QDir().mkpath(out);
    if (kind == "foreign manifest") {
      QFile manifest(out + "/dipaco.json");
      QVERIFY(manifest.open(QIODevice::WriteOnly));
      manifest.write("{\"format\": \"something-else/1\"}");
    }
    QFile notes(precious);
    QVERIFY(notes.open(QIODevice::WriteOnly));
    notes.write("precious\n");
    notes.close();
    dipaco::ExportOptions o;
    o.gguf = false;
    o.force = true;
    auto r = dipaco::export_run(run->dir, out.toStdString(), o);
    QVERIFY(!r.is_ok());
    QVERIFY2(dipaco::test::contains(r.status().message(), "is not a dipaco export"),
             r.status().message().c_str());
    QFile kept(precious);
    QVERIFY(kept.open(QIODevice::ReadOnly));
    QCOMPARE(kept.readAll(), QByteArray("precious\n"));
    QCOMPARE(entries(tmp.path()), (QStringList{"important", "run"}));  // no temporary left
  }
};

QTEST_GUILESS_MAIN(ExportRoundTripTest)
#include "test_export_roundtrip.moc"
