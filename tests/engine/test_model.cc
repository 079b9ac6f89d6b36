// The whole model: config validation, the parameter layout (modules are contiguous slices),
// deterministic init, and forward/backward against the double-precision reference model.
#include <QtTest>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "engine_test_util.h"
#include "model/model.h"
#include "reference_model.h"

using dipaco::ModelConfig;
using namespace dipaco::testing;

namespace {
ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 13;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 12;
  c.max_seq_len = 8;
  c.rope_theta = 100.0;
  return c;
}

// A device with `free_bytes` free whose backend keeps `scratch_bytes` of its own for the
// matmuls (and a tenth of that for attention), recording the shapes it was asked about.
class ScratchKeepingBackend final : public dipaco::CpuBackend {
 public:
  ScratchKeepingBackend(size_t free_bytes, size_t scratch_bytes)
      : CpuBackend(1), free_(free_bytes), scratch_(scratch_bytes) {}
  size_t available_memory_bytes() const override { return free_; }
  size_t matmul_scratch_bytes(size_t max_input, size_t max_output,
                              size_t max_weight) const override {
    asked_matmul = {max_input, max_output, max_weight};
    return scratch_;
  }
  size_t attention_scratch_bytes(int B, int T, int H, int KVH, int hd) const override {
    asked_attention = {B, T, H, KVH, hd};
    return scratch_ / 10;
  }
  mutable std::vector<size_t> asked_matmul;
  mutable std::vector<int> asked_attention;

 private:
  size_t free_, scratch_;
};
}  // namespace

class ModelTest : public QObject {
  Q_OBJECT

 private slots:
  void configErrorsNameTheKey_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<int>("value");
    QTest::addColumn<QString>("message");
    QTest::newRow("heads") << "d_model" << 250 << "d_model 250 is not divisible by n_heads 4";
    QTest::newRow("kv heads") << "n_kv_heads" << 3 << "n_heads 4 is not divisible by n_kv_heads 3";
    QTest::newRow("layers") << "n_layers" << 0 << "n_layers must be >= 1, got 0";
    QTest::newRow("odd head dim") << "d_model" << 20 << "head dimension d_model / n_heads = 5";
  }

  void configErrorsNameTheKey() {
    QFETCH(QString, field);
    QFETCH(int, value);
    QFETCH(QString, message);
    ModelConfig c;
    if (field == "d_model") c.d_model = value;
    if (field == "n_kv_heads") c.n_kv_heads = value;
    if (field == "n_layers") c.n_layers = value;
    dipaco::Status s = c.validate();
    QVERIFY(!s.is_ok());
    QVERIFY2(s.message().find(message.toStdString()) != std::string::npos, s.message().c_str());
  }

  void configRoundTripsThroughText() {
    ModelConfig c = tiny_config();
    auto parsed = ModelConfig::parse(c.to_string());
    QVERIFY2(parsed.is_ok(), parsed.status().message().c_str());
    QVERIFY(*parsed == c);
    QVERIFY(!ModelConfig::parse("d_model=8 bogus=1").is_ok());
  }

  void seqLenBeyondMaxIsAnError() {
    dipaco::CpuBackend be(1);
    auto m = dipaco::Model::create(&be, tiny_config(), 2, 9);
    QVERIFY(!m.is_ok());
    QVERIFY2(m.status().message().find("max_seq_len 8") != std::string::npos,
             m.status().message().c_str());
  }

  void layoutMakesModulesContiguous() {
    ModelConfig c;  // the reference config: 8192 x 256, 4 layers
    dipaco::ParamLayout layout(c);
    QCOMPARE(layout.total(), size_t{7'407'872});  // the issue's ~7.4M
    // Tensors tile the buffer in order with no gaps.
    size_t next = 0;
    for (const auto& t : layout.tensors()) {
      QCOMPARE(t.offset, next);
      next += t.numel;
    }
    QCOMPARE(next, layout.total());
    QCOMPARE(layout.tensors().size(), size_t{1 + 9 * 4 + 2});
    // A module of blocks 1..2 is exactly those blocks' tensors, back to back.
    auto mid = layout.module_range(1, 2, false, false);
    QCOMPARE(mid.offset, layout.block_range(1).offset);
    QCOMPARE(mid.end(), layout.block_range(2).end());
    auto names = layout.tensors_in(mid);
    QCOMPARE(names.size(), size_t{18});
    QCOMPARE(QString::fromStdString(names.front()->name),
             QString("model.layers.1.input_layernorm.weight"));
    // First level with the embedding, last level with the head: still one slice each, and the
    // levels partition the whole buffer.
    auto first = layout.module_range(0, 0, true, false);
    auto last = layout.module_range(3, 3, false, true);
    QCOMPARE(first.offset, size_t{0});
    QCOMPARE(first.end(), mid.offset);
    QCOMPARE(mid.end(), last.offset);
    QCOMPARE(last.end(), layout.total());
    QCOMPARE(layout.module_range(0, 3, true, true), (dipaco::ParamRange{0, layout.total()}));
    // Fused projections: k follows q, up follows gate.
    const auto& b0 = layout.block(0);
    QCOMPARE(b0.wo - b0.wqkv, size_t{(4 + 2 * 4) * 64 * 256});
    QCOMPARE(b0.w_down - b0.w13, size_t{2 * 704 * 256});
  }

  void initIsDeterministicAndScaled() {
    dipaco::CpuBackend be(2);
    ModelConfig c = tiny_config();
    c.n_layers = 8;
    auto a = dipaco::Model::create(&be, c, 1, 4);
    auto b = dipaco::Model::create(&be, c, 1, 4);
    QVERIFY(a.is_ok() && b.is_ok());
    (*a)->init_params(7);
    (*b)->init_params(7);
    QVERIFY((*a)->get_params() == (*b)->get_params());
    (*b)->init_params(8);
    QVERIFY((*a)->get_params() != (*b)->get_params());
    auto p = (*a)->get_params();
    const auto& layout = (*a)->layout();
    QCOMPARE(p[layout.final_norm()], 1.0f);
    double ss = 0;
    for (size_t i = 0; i < size_t(c.vocab_size) * c.d_model; ++i) ss += double(p[i]) * p[i];
    double stddev = std::sqrt(ss / (c.vocab_size * c.d_model));
    QVERIFY2(stddev > 0.015 && stddev < 0.025, qPrintable(QString::number(stddev)));
  }

  void forwardAndGradientsMatchReference() {
    dipaco::CpuBackend be(3, 1);  // every op threaded
    ModelConfig c = tiny_config();
    const int B = 2, T = 7;
    auto created = dipaco::Model::create(&be, c, B, 8);
    QVERIFY(created.is_ok());
    dipaco::Model& model = **created;
    // Larger-than-init weights so every path carries signal the check can see.
    auto params = random_floats(model.num_params(), 42, 0.3f);
    for (const auto& t : model.layout().tensors())
      if (!t.is_matrix)
        for (size_t i = 0; i < t.numel; ++i) params[t.offset + i] += 1.0f;
    model.set_params(params);
    std::vector<int32_t> inputs = {1, 5, 12, 0, 3, 3, 7, 2, 2, 9, 11, 4, 6, 8};
    std::vector<int32_t> targets = {5, 12, 0, 3, 3, 7, -1, 2, 9, 11, 4, 6, 8, 10};

    double loss = model.forward(inputs.data(), targets.data(), B, T);
    dipaco::reference::Vec ref_logits;
    auto pd = to_double(params);
    double ref_loss = dipaco::reference::model_loss(c, pd, inputs, targets, B, T, &ref_logits);
    QVERIFY2(std::fabs(loss - ref_loss) < 1e-5 * std::fabs(ref_loss),
             qPrintable(QString("loss %1 vs reference %2").arg(loss).arg(ref_loss)));
    QVERIFY(close(model.get_logits(), ref_logits, 1e-4, 1e-5, "logits"));

    model.zero_grad();
    model.backward();
    auto grads = model.get_grads();
    // Every parameter, by finite differences of the double model.
    QVERIFY(check_gradient(
        [&](const dipaco::reference::Vec& p) {
          return dipaco::reference::model_loss(c, p, inputs, targets, B, T);
        },
        pd, grads, "model gradient", 0, 2e-3, 1e-5));

    // Gradients accumulate: a second forward/backward with scale 0.5 adds half again.
    model.forward(inputs.data(), targets.data(), B, T);
    model.backward(0.5f);
    auto twice = model.get_grads();
    for (size_t i = 0; i < grads.size(); ++i)
      QVERIFY(std::fabs(twice[i] - 1.5f * grads[i]) <= 1e-5f + 1e-4f * std::fabs(grads[i]));
  }

  // Big enough that every op splits across threads: 1 and 3 threads must agree (up to sgemm
  // blocking and reduction order), so the threaded paths are checked against the serial ones
  // that the reference comparisons above exercise.
  void threadedMatchesSingleThreaded() {
    ModelConfig c;
    c.vocab_size = 300;
    c.d_model = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 96;
    c.max_seq_len = 80;
    const int B = 3, T = 80;
    std::vector<int32_t> in(B * T), tg(B * T);
    for (int i = 0; i < B * T; ++i) {
      in[i] = (i * 31 + 7) % c.vocab_size;
      tg[i] = (i * 17 + 3) % c.vocab_size;
    }
    std::vector<float> grads[2], logits[2];
    double loss[2];
    for (int run = 0; run < 2; ++run) {
      dipaco::CpuBackend be(run == 0 ? 1 : 3, 1);
      auto m = dipaco::Model::create(&be, c, B, T);
      QVERIFY(m.is_ok());
      (*m)->init_params(5);
      loss[run] = (*m)->forward(in.data(), tg.data(), B, T);
      logits[run] = (*m)->get_logits();
      (*m)->zero_grad();
      (*m)->backward();
      grads[run] = (*m)->get_grads();
    }
    QVERIFY(std::fabs(loss[0] - loss[1]) < 1e-6 * loss[0]);
    QVERIFY(close(logits[1], to_double(logits[0]), 1e-4, 1e-6, "logits 3 vs 1 threads"));
    QVERIFY(close(grads[1], to_double(grads[0]), 1e-3, 1e-7, "gradients 3 vs 1 threads"));
  }

  void moduleSlicesCopyInAndOut() {
    dipaco::CpuBackend be(1);
    ModelConfig c = tiny_config();
    c.n_layers = 3;
    auto m = dipaco::Model::create(&be, c, 1, 4);
    QVERIFY(m.is_ok());
    (*m)->init_params(3);
    auto all = (*m)->get_params();
    auto range = (*m)->layout().module_range(1, 1, false, false);
    auto slice = (*m)->get_params(range);
    QVERIFY(std::equal(slice.begin(), slice.end(), all.begin() + range.offset));
    for (auto& x : slice) x = 0.5f;
    (*m)->set_params(range, slice);
    auto after = (*m)->get_params();
    for (size_t i = 0; i < all.size(); ++i) {
      bool inside = i >= range.offset && i < range.end();
      QCOMPARE(after[i], inside ? 0.5f : all[i]);
    }
  }

  void smallerBatchThanAllocatedWorks() {
    dipaco::CpuBackend be(2);
    ModelConfig c = tiny_config();
    auto big = dipaco::Model::create(&be, c, 4, 8);
    auto small = dipaco::Model::create(&be, c, 1, 3);
    QVERIFY(big.is_ok() && small.is_ok());
    (*big)->init_params(1);
    (*small)->init_params(1);
    std::vector<int32_t> in = {1, 2, 3}, tg = {2, 3, 4};
    double a = (*big)->forward(in.data(), tg.data(), 1, 3);
    double b = (*small)->forward(in.data(), tg.data(), 1, 3);
    QCOMPARE(a, b);
  }

  // The budget counts what the backend allocates for itself at the first step, and asks for
  // it with the model's largest matmul operands and its attention shape.
  void budgetCountsTheBackendsOwnScratch() {
    const ModelConfig c = tiny_config();  // C 8, F 12, V 13, qkv (4 + 2 * 2) * 2 = 16
    const size_t gib = size_t{1} << 30;
    ScratchKeepingBackend fits(gib, 0);
    QVERIFY(dipaco::Model::create(&fits, c, 4, 8).is_ok());
    const size_t N = 4 * 8;
    QCOMPARE(fits.asked_matmul, (std::vector<size_t>{N * 12, N * 24, 24 * 8}));  // w13 [2F, C]
    QCOMPARE(fits.asked_attention, (std::vector<int>{4, 8, 4, 2, 2}));

    ScratchKeepingBackend too_small(gib, gib);
    auto refused = dipaco::Model::create(&too_small, c, 4, 8);
    QVERIFY(!refused.is_ok());
    const std::string& m = refused.status().message();
    QVERIFY2(m.find("working copies") != std::string::npos && m.find("free") != std::string::npos,
             m.c_str());
  }
};

QTEST_GUILESS_MAIN(ModelTest)
#include "test_model.moc"
