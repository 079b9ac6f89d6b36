// dipaco's model against an independent Llama written in PyTorch (tests/engine/
// torch_reference.py, run with Debian's /usr/bin/python3): logits, loss and every parameter
// gradient of a tiny model must agree to ~1e-4 relative. Skips when torch is not installed.
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "engine_test_util.h"
#include "model/model.h"
#include "tensor/safetensors.h"
#include "train/trainer.h"

#ifndef DIPACO_ENGINE_TEST_DIR
#error "DIPACO_ENGINE_TEST_DIR must name tests/engine"
#endif

namespace {
constexpr const char* kPython = "/usr/bin/python3";

std::vector<double> read_f64(const dipaco::SafetensorsFile& f, const std::string& name) {
  const auto* t = f.find(name);
  if (t == nullptr || t->dtype != "F64") return {};
  std::vector<double> v(t->bytes / 8);
  std::memcpy(v.data(), f.data(*t), t->bytes);
  return v;
}

// ||a - b|| / ||b||, and a's size must match.
double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1e-300));
}
}  // namespace

class TorchReferenceTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QProcess probe;
    probe.start(kPython, {"-c", "import torch"});
    if (!probe.waitForFinished(120000) || probe.exitCode() != 0) {
      QSKIP(
          "/usr/bin/python3 cannot 'import torch' (install Debian's python3-torch to run the "
          "PyTorch reference test)");
    }
  }

  void matchesPyTorchLlama_data() {
    QTest::addColumn<int>("n_kv_heads");
    QTest::newRow("multi-head") << 4;
    QTest::newRow("grouped-query") << 2;
  }

  void matchesPyTorchLlama() {
    QFETCH(int, n_kv_heads);
    dipaco::ModelConfig c;
    c.vocab_size = 29;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = n_kv_heads;
    c.d_ff = 40;
    c.max_seq_len = 16;
    c.rope_theta = 10000.0;
    c.norm_eps = 1e-5;
    const int B = 2, T = 12;
    dipaco::CpuBackend be(2);
    auto created = dipaco::Model::create(&be, c, B, T);
    QVERIFY(created.is_ok());
    dipaco::Model& model = **created;
    // Random weights larger than the init's, and norm gains away from 1, so that every term
    // of the gradient is exercised.
    auto params = dipaco::testing::random_floats(model.num_params(), 7, 0.2f);
    for (const auto& t : model.layout().tensors())
      if (!t.is_matrix)
        for (size_t i = 0; i < t.numel; ++i) params[t.offset + i] += 1.0f;
    model.set_params(params);
    std::vector<int32_t> inputs(B * T), targets(B * T);
    for (int i = 0; i < B * T; ++i) {
      inputs[i] = (i * 7 + 3) % c.vocab_size;
      targets[i] = i == 5 ? -1 : (i * 11 + 1) % c.vocab_size;
    }
    double loss = model.forward(inputs.data(), targets.data(), B, T);
    auto logits = model.get_logits();
    model.zero_grad();
    model.backward();
    auto grads = model.get_grads();

    QTemporaryDir dir;
    std::string in_path = dir.filePath("in.safetensors").toStdString();
    std::string out_path = dir.filePath("out.safetensors").toStdString();
    std::vector<dipaco::SafetensorsWriteItem> items;
    for (const auto& t : model.layout().tensors())
      items.push_back({t.name, "F32", t.shape, params.data() + t.offset, t.numel * 4});
    items.push_back({"inputs", "I32", {B, T}, inputs.data(), inputs.size() * 4});
    items.push_back({"targets", "I32", {B, T}, targets.data(), targets.size() * 4});
    QVERIFY(dipaco::write_safetensors(in_path, items, {{"model_config", c.to_string()}}));

    QProcess py;
    py.setProcessChannelMode(QProcess::MergedChannels);
    py.start(kPython, {QString(DIPACO_ENGINE_TEST_DIR) + "/torch_reference.py",
                       QString::fromStdString(in_path), QString::fromStdString(out_path)});
    QVERIFY(py.waitForFinished(300000));
    QVERIFY2(py.exitCode() == 0, py.readAll().constData());

    auto out = dipaco::SafetensorsFile::open(out_path);
    QVERIFY2(out.is_ok(), out.status().message().c_str());
    auto ref_loss = read_f64(*out, "loss");
    QCOMPARE(ref_loss.size(), size_t{1});
    QVERIFY2(std::fabs(loss - ref_loss[0]) <= 1e-5 * std::fabs(ref_loss[0]),
             qPrintable(
                 QString("loss %1, torch %2").arg(loss, 0, 'g', 10).arg(ref_loss[0], 0, 'g', 10)));
    double e = relative_error(logits, read_f64(*out, "logits"));
    QVERIFY2(e < 1e-4, qPrintable(QString("logits relative error %1").arg(e)));
    for (const auto& t : model.layout().tensors()) {
      std::vector<float> g(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
      double err = relative_error(g, read_f64(*out, "grad." + t.name));
      QVERIFY2(err < 1e-4, qPrintable(QString("%1: gradient relative error %2")
                                          .arg(QString::fromStdString(t.name))
                                          .arg(err)));
    }
  }

  // Three optimizer steps of dipaco's Trainer (AdamW, decay on matrices only, global-norm
  // clipping that is active, warmup schedule) against torch.optim.AdamW + clip_grad_norm_.
  void adamwTrainingStepsMatchTorch() {
    dipaco::ModelConfig c;
    c.vocab_size = 29;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 40;
    c.max_seq_len = 8;
    dipaco::TrainOptions o;
    o.batch_size = 2;
    o.seq_len = 8;
    o.steps = 3;
    o.warmup_steps = 2;
    o.lr = 1e-2;
    o.min_lr = 1e-3;
    o.grad_clip = 0.5;
    o.adamw.weight_decay = 0.1;
    dipaco::CpuBackend be(2);
    auto trainer = dipaco::Trainer::create(&be, c, o);
    QVERIFY(trainer.is_ok());
    dipaco::Model& model = (*trainer)->model();
    auto params = dipaco::testing::random_floats(model.num_params(), 11, 0.1f);
    for (const auto& t : model.layout().tensors())
      if (!t.is_matrix)
        for (size_t i = 0; i < t.numel; ++i) params[t.offset + i] += 1.0f;
    model.set_params(params);
    dipaco::SyntheticBatchSource src(2, 8, c.vocab_size, 5);
    std::vector<int32_t> inputs(16), targets(16);
    src.next(inputs.data(), targets.data());
    class Same final : public dipaco::BatchSource {
     public:
      Same(const std::vector<int32_t>& i, const std::vector<int32_t>& t) : i_(i), t_(t) {}
      int batch() const override { return 2; }
      int seq_len() const override { return 8; }
      void next(int32_t* in, int32_t* tg) override {
        std::copy(i_.begin(), i_.end(), in);
        std::copy(t_.begin(), t_.end(), tg);
      }
      std::string position() const override { return ""; }
      dipaco::Status restore(const std::string&) override { return dipaco::Status::ok(); }

     private:
      std::vector<int32_t> i_, t_;
    } same(inputs, targets);
    std::string lrs;
    bool clipped = false;
    for (int step = 0; step < 3; ++step) {
      auto s = (*trainer)->train_step(same);
      QVERIFY(s.is_ok());
      clipped = clipped || s->grad_norm > o.grad_clip;
      lrs += (step ? "," : "") + QString::number(s->lr, 'g', 17).toStdString();
    }
    QVERIFY2(clipped, "the test should exercise gradient clipping");
    auto trained = model.get_params();

    QTemporaryDir dir;
    std::string in_path = dir.filePath("in.safetensors").toStdString();
    std::string out_path = dir.filePath("out.safetensors").toStdString();
    std::vector<dipaco::SafetensorsWriteItem> items;
    for (const auto& t : model.layout().tensors())
      items.push_back({t.name, "F32", t.shape, params.data() + t.offset, t.numel * 4});
    items.push_back({"inputs", "I32", {2, 8}, inputs.data(), 64});
    items.push_back({"targets", "I32", {2, 8}, targets.data(), 64});
    QVERIFY(dipaco::write_safetensors(in_path, items,
                                      {{"model_config", c.to_string()},
                                       {"train_lrs", lrs},
                                       {"weight_decay", "0.1"},
                                       {"beta1", "0.9"},
                                       {"beta2", "0.95"},
                                       {"eps", "1e-8"},
                                       {"grad_clip", "0.5"}}));
    QProcess py;
    py.setProcessChannelMode(QProcess::MergedChannels);
    py.start(kPython, {QString(DIPACO_ENGINE_TEST_DIR) + "/torch_reference.py",
                       QString::fromStdString(in_path), QString::fromStdString(out_path)});
    QVERIFY(py.waitForFinished(300000));
    QVERIFY2(py.exitCode() == 0, py.readAll().constData());
    auto out = dipaco::SafetensorsFile::open(out_path);
    QVERIFY2(out.is_ok(), out.status().message().c_str());
    for (const auto& t : model.layout().tensors()) {
      // Compare the change each step made, which is what AdamW computed.
      std::vector<float> delta(t.numel);
      auto ref = read_f64(*out, t.name);
      QCOMPARE(ref.size(), t.numel);
      std::vector<double> ref_delta(t.numel);
      for (size_t i = 0; i < t.numel; ++i) {
        delta[i] = trained[t.offset + i] - params[t.offset + i];
        ref_delta[i] = ref[i] - params[t.offset + i];
      }
      double err = relative_error(delta, ref_delta);
      QVERIFY2(err < 1e-3, qPrintable(QString("%1: update relative error %2")
                                          .arg(QString::fromStdString(t.name))
                                          .arg(err)));
    }
  }
};

QTEST_GUILESS_MAIN(TorchReferenceTest)
#include "test_torch_reference.moc"
