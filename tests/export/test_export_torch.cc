// An exported tiny model run by an independent PyTorch Llama (export_reference.py, Debian's
// /usr/bin/python3): loaded from the Hugging Face directory with HF's RoPE and from the F32
// GGUF with llama.cpp's RoPE, both must give dipaco's logits to ~1e-4. This is what checks the
// q/k row permutation of the GGUF export. Skips when torch is not installed.
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "export/export_run.h"
#include "export/hf_llama.h"
#include "export_fixture.h"

#ifndef DIPACO_EXPORT_TEST_DIR
#error "DIPACO_EXPORT_TEST_DIR must name tests/export"
#endif

namespace {
constexpr const char* kPython = "/usr/bin/python3";

std::vector<double> read_f64(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  QByteArray b = f.readAll();
  std::vector<double> v(static_cast<size_t>(b.size()) / 8);
  std::memcpy(v.data(), b.constData(), v.size() * 8);
  return v;
}

double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || b.empty()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}
}  // namespace

class ExportTorchTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QProcess probe;
    probe.start(kPython, {"-c", "import torch"});
    if (!probe.waitForFinished(120000) || probe.exitCode() != 0)
      QSKIP("/usr/bin/python3 cannot 'import torch' (install Debian's python3-torch)");
    if (dipaco::Status s = dipaco::sentencepiece_available(); !s) QSKIP(s.message().c_str());
  }

  void pytorchLlamaMatchesDipacoOnHfAndGguf_data() {
    QTest::addColumn<int>("n_kv_heads");
    QTest::newRow("multi-head") << 4;
    QTest::newRow("grouped-query") << 2;
  }

  void pytorchLlamaMatchesDipacoOnHfAndGguf() {
    QFETCH(int, n_kv_heads);
    auto tok = export_fixture::train_tokenizer();
    QVERIFY(tok.is_ok());
    QTemporaryDir tmp;
    auto run = export_fixture::make_run(tmp.filePath("run"), *tok, 1, {},
                                        export_fixture::tiny_config(n_kv_heads));
    QVERIFY(run.is_ok());
    dipaco::ExportOptions o;
    o.gguf_type = dipaco::GgufType::kF32;
    auto r = dipaco::export_run(run->dir, tmp.filePath("out").toStdString(), o);
    QVERIFY2(r.is_ok(), r.status().message().c_str());

    // dipaco's logits from the re-imported export.
    auto hf = dipaco::load_hf_export(tmp.filePath("out/path-0").toStdString());
    QVERIFY(hf.is_ok());
    const int T = 20;
    std::vector<int32_t> tokens(T);
    QString token_text;
    for (int i = 0; i < T; ++i) {
      tokens[i] = (i * 53 + 1) % export_fixture::kVocab;
      token_text += (i ? "," : "") + QString::number(tokens[i]);
    }
    dipaco::CpuBackend be(1);
    auto model = dipaco::Model::create(&be, hf->config, 1, hf->config.max_seq_len);
    QVERIFY(model.is_ok());
    (*model)->set_params(hf->params);
    (*model)->forward(tokens.data(), nullptr, 1, T);
    auto logits = (*model)->get_logits();

    QProcess py;
    py.setProcessChannelMode(QProcess::MergedChannels);
    py.start(kPython,
             {QString(DIPACO_EXPORT_TEST_DIR) + "/export_reference.py", tmp.filePath("out/path-0"),
              tmp.filePath("out/path-0.gguf"), token_text, tmp.path()});
    QVERIFY(py.waitForFinished(300000));
    QVERIFY2(py.exitCode() == 0, py.readAll().constData());
    for (const char* which : {"hf", "gguf"}) {
      double e = relative_error(logits, read_f64(tmp.filePath(QString(which) + ".f64")));
      qInfo("%s: logits relative error %.3g", which, e);
      QVERIFY2(e < 1e-4, qPrintable(QString("%1: logits relative error %2").arg(which).arg(e)));
    }
  }
};

QTEST_GUILESS_MAIN(ExportTorchTest)
#include "test_export_torch.moc"
