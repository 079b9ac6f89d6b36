// Cross-backend tests: every CudaBackend op against the CpuBackend (the reference), forward and
// backward, on shapes that are not multiples of the kernels' block sizes; then a whole model's
// gradients and a short training run. fp32 matmuls must agree to ~1e-5 of the scale; bf16 and
// tf32 to their precision. Needs a CUDA device; otherwise prints "skipped: no CUDA device".
#include <QtTest>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "cuda_test_support.h"
#include "model/model.h"
#include "train/batch_source.h"
#include "train/trainer.h"

using dipaco::test::Mirror;
using dipaco::test::random_floats;

namespace {

dipaco::ModelConfig small_config() {
  dipaco::ModelConfig c;
  c.vocab_size = 301;
  c.d_model = 96;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.d_ff = 136;
  c.max_seq_len = 40;
  c.rope_theta = 10000.0;
  return c;
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint32_t seed, bool with_ignored) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) {
    t[i] = static_cast<int32_t>(rng() % vocab);
    if (with_ignored && i % 7 == 3) t[i] = -1;
  }
  return t;
}

}  // namespace

class CudaBackendTest : public QObject {
  Q_OBJECT

  std::unique_ptr<dipaco::CpuBackend> cpu_;
  std::unique_ptr<dipaco::Backend> fp32_, tf32_, bf16_, kernels_, cudnn_;

  static std::unique_ptr<dipaco::Backend> make(
      dipaco::CudaMatmulPrecision precision,
      dipaco::CudaAttention attention = dipaco::CudaAttention::kGemm) {
    auto created = dipaco::create_cuda_backend({0, precision, attention});
    if (!created.is_ok()) qFatal("%s", created.status().message().c_str());
    return std::move(created).value();
  }

  // The cuDNN backend's attention forward and backward against the CPU backend's on random
  // inputs, within bf16 tolerances (whichever path the cuDNN backend takes for the shape).
  void cudnn_attention_matches_cpu(int B, int T, int H, int KVH, int hd) {
    const size_t row = static_cast<size_t>(H + 2 * KVH) * hd;
    auto qkv = random_floats(B * T * row, 30);
    auto dout = random_floats(static_cast<size_t>(B) * T * H * hd, 31);
    std::vector<float> out[2], dqkv[2];
    dipaco::Backend* backends[2] = {cpu_.get(), cudnn_.get()};
    for (int k = 0; k < 2; ++k) {
      dipaco::Backend* be = backends[k];
      Mirror<float> x(be, qkv), o(be, std::vector<float>(B * T * H * hd)),
          a(be, std::vector<float>(be->attention_saved_floats(B, T, H, KVH, hd))), dy(be, dout),
          dx(be, std::vector<float>(qkv.size(), 7.0f)),
          w(be, std::vector<float>(be->attention_workspace_floats(B, T, H, KVH, hd) + 1));
      be->attention_forward(o.get(), a.get(), x.get(), B, T, H, KVH, hd);
      be->attention_backward(dx.get(), w.get(), dy.get(), x.get(), o.get(), a.get(), B, T, H, KVH,
                             hd);
      out[k] = o.host();
      dqkv[k] = dx.host();
    }
    std::printf("  attention %s: out %.2e dqkv %.2e\n", cudnn_->name().c_str(),
                dipaco::test::relative_error(out[1], out[0]),
                dipaco::test::relative_error(dqkv[1], dqkv[0]));
    DIPACO_EXPECT_CLOSE(out[1], out[0], 2e-2);
    DIPACO_EXPECT_CLOSE(dqkv[1], dqkv[0], 3e-2);
  }

 private slots:
  void initTestCase() {
    DIPACO_SKIP_WITHOUT_CUDA();
    cpu_ = std::make_unique<dipaco::CpuBackend>(2, 1);
    fp32_ = make(dipaco::CudaMatmulPrecision::kFp32);
    tf32_ = make(dipaco::CudaMatmulPrecision::kTf32);
    bf16_ = make(dipaco::CudaMatmulPrecision::kBf16);
    kernels_ = make(dipaco::CudaMatmulPrecision::kFp32, dipaco::CudaAttention::kKernels);
    cudnn_ = make(dipaco::CudaMatmulPrecision::kBf16, dipaco::CudaAttention::kCudnn);
    std::printf("GPU backends: %s | %s | %s | %s | %s\n", fp32_->name().c_str(),
                tf32_->name().c_str(), bf16_->name().c_str(), kernels_->name().c_str(),
                cudnn_->name().c_str());
  }

  void badDeviceIsRefusedWithTheCount() {
    auto created = dipaco::create_cuda_backend({9999, dipaco::CudaMatmulPrecision::kBf16});
    QVERIFY(!created.is_ok());
    QVERIFY2(created.status().message().find("does not exist") != std::string::npos,
             created.status().message().c_str());
  }

  void embeddingMatchesCpu() {
    const int N = 777, C = 72, V = 50;
    auto tokens = random_tokens(N, V, 1, false);
    auto wte = random_floats(static_cast<size_t>(V) * C, 2);
    auto dout = random_floats(static_cast<size_t>(N) * C, 3);
    auto dwte0 = random_floats(static_cast<size_t>(V) * C, 4);
    std::vector<float> out[2], dwte[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      Mirror<int32_t> t(backends[k], tokens);
      Mirror<float> w(backends[k], wte), o(backends[k], std::vector<float>(N * C)),
          d(backends[k], dout), dw(backends[k], dwte0);
      backends[k]->embedding_forward(o.get(), t.get(), w.get(), N, C);
      backends[k]->embedding_backward(dw.get(), d.get(), t.get(), N, C);
      out[k] = o.host();
      dwte[k] = dw.host();
    }
    QCOMPARE(out[1], out[0]);
    QCOMPARE(dwte[1], dwte[0]);  // same order of additions per row: bit-identical
  }

  void rmsnormMatchesCpu() {
    const int N = 203, C = 333;
    auto inp = random_floats(static_cast<size_t>(N) * C, 5, 2.0f);
    auto weight = random_floats(C, 6);
    auto dout = random_floats(static_cast<size_t>(N) * C, 7);
    auto dinp0 = random_floats(static_cast<size_t>(N) * C, 8);
    auto dw0 = random_floats(C, 9);
    std::vector<float> out[2], rstd[2], dinp[2], dweight[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      dipaco::Backend* be = backends[k];
      Mirror<float> x(be, inp), w(be, weight), o(be, std::vector<float>(N * C)),
          r(be, std::vector<float>(N)), dy(be, dout), dx(be, dinp0), dw(be, dw0);
      be->rmsnorm_forward(o.get(), r.get(), x.get(), w.get(), N, C, 1e-5f);
      be->rmsnorm_backward(dx.get(), dw.get(), dy.get(), x.get(), w.get(), r.get(), N, C);
      out[k] = o.host();
      rstd[k] = r.host();
      dinp[k] = dx.host();
      dweight[k] = dw.host();
    }
    DIPACO_EXPECT_CLOSE(out[1], out[0], 1e-5);
    DIPACO_EXPECT_CLOSE(rstd[1], rstd[0], 1e-5);
    DIPACO_EXPECT_CLOSE(dinp[1], dinp[0], 1e-5);
    DIPACO_EXPECT_CLOSE(dweight[1], dweight[0], 1e-5);
  }

  void matmulMatchesCpuInEachPrecision() {
    const int N = 130, C = 200, OC = 72;
    auto inp = random_floats(static_cast<size_t>(N) * C, 10);
    auto weight = random_floats(static_cast<size_t>(OC) * C, 11, 0.1f);
    auto dout = random_floats(static_cast<size_t>(N) * OC, 12);
    auto dw0 = random_floats(static_cast<size_t>(OC) * C, 13);
    struct Case {
      dipaco::Backend* be;
      double tolerance;
    } cases[] = {{cpu_.get(), 0.0}, {fp32_.get(), 1e-5}, {tf32_.get(), 5e-3}, {bf16_.get(), 2e-2}};
    std::vector<float> ref_out, ref_dinp, ref_dw;
    for (const Case& c : cases) {
      Mirror<float> x(c.be, inp), w(c.be, weight), o(c.be, std::vector<float>(N * OC)),
          dy(c.be, dout), dx(c.be, std::vector<float>(N * C)), dw(c.be, dw0);
      c.be->matmul_forward(o.get(), x.get(), w.get(), N, C, OC);
      c.be->matmul_backward(dx.get(), dw.get(), dy.get(), x.get(), w.get(), N, C, OC);
      if (c.be == cpu_.get()) {
        ref_out = o.host();
        ref_dinp = dx.host();
        ref_dw = dw.host();
        continue;
      }
      std::printf("  matmul %s: out %.2e dinp %.2e dweight %.2e\n", c.be->name().c_str(),
                  dipaco::test::relative_error(o.host(), ref_out),
                  dipaco::test::relative_error(dx.host(), ref_dinp),
                  dipaco::test::relative_error(dw.host(), ref_dw));
      DIPACO_EXPECT_CLOSE(o.host(), ref_out, c.tolerance);
      DIPACO_EXPECT_CLOSE(dx.host(), ref_dinp, c.tolerance);
      DIPACO_EXPECT_CLOSE(dw.host(), ref_dw, c.tolerance);
    }
  }

  void ropeMatchesCpu() {
    const int B = 3, T = 11, heads = 5, hd = 12, stride = 7 * hd;
    const int N = B * T;
    auto x0 = random_floats(static_cast<size_t>(N) * stride, 14);
    std::vector<float> cos(T * hd / 2), sin(cos.size());
    dipaco::rope_tables(cos.data(), sin.data(), T, hd, 10000.0);
    std::vector<float> fwd[2], back[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      Mirror<float> x(backends[k], x0), c(backends[k], cos), s(backends[k], sin);
      backends[k]->rope_forward(x.get(), c.get(), s.get(), N, T, heads, hd, stride);
      fwd[k] = x.host();
      backends[k]->rope_backward(x.get(), c.get(), s.get(), N, T, heads, hd, stride);
      back[k] = x.host();
    }
    DIPACO_EXPECT_CLOSE(fwd[1], fwd[0], 1e-6);
    DIPACO_EXPECT_CLOSE(back[1], back[0], 1e-6);
    DIPACO_EXPECT_CLOSE(back[1], x0, 1e-5);  // the inverse rotation undoes the forward
  }

  void attentionMatchesCpu_data() {
    QTest::addColumn<int>("B");
    QTest::addColumn<int>("T");
    QTest::addColumn<int>("H");
    QTest::addColumn<int>("KVH");
    QTest::addColumn<int>("hd");
    QTest::newRow("grouped, odd T") << 2 << 37 << 4 << 2 << 16;
    QTest::newRow("multi-head, long") << 1 << 200 << 3 << 3 << 64;
    QTest::newRow("wide head") << 2 << 19 << 2 << 1 << 160;
    QTest::newRow("one token") << 3 << 1 << 2 << 2 << 8;
  }
  void attentionMatchesCpu() {
    QFETCH(int, B);
    QFETCH(int, T);
    QFETCH(int, H);
    QFETCH(int, KVH);
    QFETCH(int, hd);
    const size_t row = static_cast<size_t>(H + 2 * KVH) * hd;
    auto qkv = random_floats(B * T * row, 15);
    auto dout = random_floats(static_cast<size_t>(B) * T * H * hd, 16);
    // The cuBLASLt path (fp32 products), its kernel twin, and TF32 products.
    std::vector<float> out[4], att[4], dqkv[4];
    dipaco::Backend* backends[4] = {cpu_.get(), fp32_.get(), kernels_.get(), tf32_.get()};
    for (int k = 0; k < 4; ++k) {
      dipaco::Backend* be = backends[k];
      size_t ws = be->attention_workspace_floats(B, T, H, KVH, hd);
      Mirror<float> x(be, qkv), o(be, std::vector<float>(B * T * H * hd)),
          a(be, std::vector<float>(static_cast<size_t>(B) * H * T * T)), dy(be, dout),
          dx(be, std::vector<float>(qkv.size(), 7.0f)), w(be, std::vector<float>(ws));
      be->attention_forward(o.get(), a.get(), x.get(), B, T, H, KVH, hd);
      be->attention_backward(dx.get(), w.get(), dy.get(), x.get(), o.get(), a.get(), B, T, H, KVH,
                             hd);
      out[k] = o.host();
      att[k] = a.host();
      dqkv[k] = dx.host();
    }
    for (int k = 1; k < 4; ++k) {
      const double tolerance = k == 3 ? 1e-2 : 1e-5;
      std::printf("  attention %s: out %.2e att %.2e dqkv %.2e\n", backends[k]->name().c_str(),
                  dipaco::test::relative_error(out[k], out[0]),
                  dipaco::test::relative_error(att[k], att[0]),
                  dipaco::test::relative_error(dqkv[k], dqkv[0]));
      DIPACO_EXPECT_CLOSE(out[k], out[0], tolerance);
      DIPACO_EXPECT_CLOSE(att[k], att[0], tolerance);
      DIPACO_EXPECT_CLOSE(dqkv[k], dqkv[0], tolerance);
    }
  }

  void cudnnAttentionMatchesCpu_data() {
    QTest::addColumn<int>("B");
    QTest::addColumn<int>("T");
    QTest::addColumn<int>("H");
    QTest::addColumn<int>("KVH");
    QTest::addColumn<int>("hd");
    QTest::newRow("grouped, odd T") << 2 << 37 << 4 << 2 << 16;
    QTest::newRow("multi-head, T 256") << 2 << 256 << 4 << 4 << 64;
    QTest::newRow("grouped 4:1, head 128") << 1 << 130 << 8 << 2 << 128;
  }
  // cuDNN's fused attention (bf16 operands): the shape must pass the backend's probe (so it
  // saves only the [B, H, T] statistics), and out and dqkv must match the CPU backend.
  void cudnnAttentionMatchesCpu() {
    QFETCH(int, B);
    QFETCH(int, T);
    QFETCH(int, H);
    QFETCH(int, KVH);
    QFETCH(int, hd);
    const size_t saved = cudnn_->attention_saved_floats(B, T, H, KVH, hd);
    QVERIFY2(saved == static_cast<size_t>(B) * H * T,
             "cuDNN refused this shape (its reason is printed above); the backend fell back");
    cudnn_attention_matches_cpu(B, T, H, KVH, hd);
  }

  // A shape cuDNN does not take (head_dim 12 is not a multiple of 8) is sized for the
  // probabilities and runs on the cuBLASLt path, matching the CPU, on the cuDNN backend.
  void cudnnRefusedShapeFallsBackToCublas() {
    const int B = 2, T = 20, H = 4, KVH = 2, hd = 12;
    QCOMPARE(cudnn_->attention_saved_floats(B, T, H, KVH, hd), static_cast<size_t>(B) * H * T * T);
    cudnn_attention_matches_cpu(B, T, H, KVH, hd);
  }

  void swigluResidualAndScaleMatchCpu() {
    const int N = 97, F = 129;
    auto h13 = random_floats(static_cast<size_t>(N) * 2 * F, 17, 3.0f);
    auto dout = random_floats(static_cast<size_t>(N) * F, 18);
    auto a = random_floats(5001, 19), b = random_floats(5001, 20);
    std::vector<float> out[2], dh13[2], res[2], added[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      dipaco::Backend* be = backends[k];
      Mirror<float> h(be, h13), o(be, std::vector<float>(N * F)), dy(be, dout),
          dh(be, std::vector<float>(h13.size())), x(be, a), y(be, b),
          r(be, std::vector<float>(a.size()));
      be->swiglu_forward(o.get(), h.get(), N, F);
      be->swiglu_backward(dh.get(), dy.get(), h.get(), N, F);
      be->residual_forward(r.get(), x.get(), y.get(), a.size());
      be->add_inplace(x.get(), y.get(), a.size());
      be->scale_inplace(x.get(), -0.75f, a.size());
      out[k] = o.host();
      dh13[k] = dh.host();
      res[k] = r.host();
      added[k] = x.host();
    }
    DIPACO_EXPECT_CLOSE(out[1], out[0], 1e-5);
    DIPACO_EXPECT_CLOSE(dh13[1], dh13[0], 1e-5);
    QCOMPARE(res[1], res[0]);
    QCOMPARE(added[1], added[0]);
  }

  void crossentropyMatchesCpu() {
    const int N = 45, V = 1001;
    auto logits = random_floats(static_cast<size_t>(N) * V, 21, 4.0f);
    auto targets = random_tokens(N, V, 22, true);
    std::vector<float> losses[2], lse[2], dlogits[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      dipaco::Backend* be = backends[k];
      Mirror<float> x(be, logits), l(be, std::vector<float>(N)), s(be, std::vector<float>(N));
      Mirror<int32_t> t(be, targets);
      be->crossentropy_forward(l.get(), s.get(), x.get(), t.get(), N, V);
      be->crossentropy_backward(x.get(), x.get(), s.get(), t.get(), N, V, 1.0f / N);  // in place
      losses[k] = l.host();
      lse[k] = s.host();
      dlogits[k] = x.host();
    }
    DIPACO_EXPECT_CLOSE(losses[1], losses[0], 1e-5);
    DIPACO_EXPECT_CLOSE(lse[1], lse[0], 1e-6);
    DIPACO_EXPECT_CLOSE(dlogits[1], dlogits[0], 1e-5);
  }

  void reductionsMatchCpu() {
    for (size_t n : {size_t{1}, size_t{1000}, size_t{3000001}}) {
      auto x = random_floats(n, 23);
      Mirror<float> c(cpu_.get(), x), g(fp32_.get(), x);
      double cs = cpu_->sum(c.get(), n), gs = fp32_->sum(g.get(), n);
      double cq = cpu_->sum_squares(c.get(), n), gq = fp32_->sum_squares(g.get(), n);
      QVERIFY2(std::fabs(cs - gs) <= 1e-9 * std::max(1.0, std::fabs(cq)),
               qPrintable(QString("sum %1 vs %2").arg(gs).arg(cs)));
      QVERIFY2(std::fabs(cq - gq) <= 1e-12 * cq,
               qPrintable(QString("ss %1 vs %2").arg(gq).arg(cq)));
    }
  }

  void adamwMatchesCpu() {
    const size_t n = 100003;
    auto p0 = random_floats(n, 24), g = random_floats(n, 25);
    std::vector<float> params[2], moments[2];
    dipaco::Backend* backends[2] = {cpu_.get(), fp32_.get()};
    for (int k = 0; k < 2; ++k) {
      dipaco::Backend* be = backends[k];
      Mirror<float> p(be, p0), gr(be, g), m(be, std::vector<float>(n)),
          v(be, std::vector<float>(n));
      for (int step = 1; step <= 5; ++step)
        be->adamw_update(p.get(), gr.get(), m.get(), v.get(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                         0.5f, step);
      params[k] = p.host();
      moments[k] = v.host();
    }
    DIPACO_EXPECT_CLOSE(params[1], params[0], 1e-6);
    DIPACO_EXPECT_CLOSE(moments[1], moments[0], 1e-6);
  }

  // The whole model: loss, logits and every parameter's gradient.
  void modelGradientsMatchCpu() {
    const dipaco::ModelConfig c = small_config();
    const int B = 3, T = 33;
    auto inputs = random_tokens(B * T, c.vocab_size, 26, false);
    auto targets = random_tokens(B * T, c.vocab_size, 27, true);
    struct Case {
      dipaco::Backend* be;
      double tolerance;
    } cases[] = {{cpu_.get(), 0},
                 {fp32_.get(), 1e-4},
                 {kernels_.get(), 1e-4},
                 {bf16_.get(), 5e-2},
                 {cudnn_.get(), 5e-2}};
    double ref_loss = 0;
    std::vector<float> ref_grads, ref_logits;
    for (const Case& k : cases) {
      auto created = dipaco::Model::create(k.be, c, B, T);
      QVERIFY2(created.is_ok(), created.status().message().c_str());
      auto& model = **created;
      model.init_params(7);
      model.zero_grad();
      double loss = model.forward(inputs.data(), targets.data(), B, T);
      auto logits = model.get_logits();
      model.backward();
      auto grads = model.get_grads();
      if (k.be == cpu_.get()) {
        ref_loss = loss;
        ref_grads = grads;
        ref_logits = logits;
        continue;
      }
      std::printf("  model %s: loss %.7f vs %.7f, logits %.2e, grads %.2e\n", k.be->name().c_str(),
                  loss, ref_loss, dipaco::test::relative_error(logits, ref_logits),
                  dipaco::test::relative_error(grads, ref_grads));
      QVERIFY(std::fabs(loss - ref_loss) <= k.tolerance * ref_loss);
      DIPACO_EXPECT_CLOSE(logits, ref_logits, k.tolerance);
      DIPACO_EXPECT_CLOSE(grads, ref_grads, k.tolerance);
    }
  }

  // 60 AdamW steps on the same synthetic data: the loss curves agree step by step.
  void trainingCurvesMatchCpu() {
    const dipaco::ModelConfig c = small_config();
    dipaco::TrainOptions o;
    o.batch_size = 4;
    o.seq_len = 32;
    o.steps = 60;
    o.warmup_steps = 4;
    o.lr = 3e-3;
    o.min_lr = 3e-4;
    struct Case {
      dipaco::Backend* be;
      double tolerance;
    } cases[] = {{cpu_.get(), 0}, {fp32_.get(), 1e-3}, {bf16_.get(), 3e-2}, {cudnn_.get(), 3e-2}};
    std::vector<double> ref;
    for (const Case& k : cases) {
      auto created = dipaco::Trainer::create(k.be, c, o);
      QVERIFY2(created.is_ok(), created.status().message().c_str());
      dipaco::SyntheticBatchSource source(o.batch_size, o.seq_len, c.vocab_size, 5);
      std::vector<double> losses;
      for (int s = 0; s < o.steps; ++s) {
        auto stats = (*created)->train_step(source);
        QVERIFY2(stats.is_ok(), stats.status().message().c_str());
        losses.push_back(stats->loss);
      }
      if (k.be == cpu_.get()) {
        ref = losses;
        QVERIFY(ref.back() < 0.85 * ref.front());  // it learns (5.76 -> 4.25 measured)
        continue;
      }
      double worst = 0;
      for (size_t s = 0; s < losses.size(); ++s)
        worst = std::max(worst, std::fabs(losses[s] - ref[s]) / ref[s]);
      std::printf("  training %s: first %.4f last %.4f (cpu %.4f -> %.4f), worst step %.2e\n",
                  k.be->name().c_str(), losses.front(), losses.back(), ref.front(), ref.back(),
                  worst);
      QVERIFY2(worst <= k.tolerance,
               qPrintable(QString("worst relative step difference %1").arg(worst)));
    }
  }

  // The bf16 weight copies (refreshed by AdamW and by set_params) give the same bits as
  // converting the weights in every product: training losses, parameters, and a forward after
  // one module's parameters were replaced. cuBLASLt picks its algorithm by the operands'
  // alignment too, and the converted operands are 256-byte aligned, so the sizes here keep
  // every weight's copy 256-byte aligned as well (d_model, d_ff and vocab multiples of 128):
  // then the algorithms, and so the bits, are the same.
  void bf16WeightCopiesGiveTheSameBits() {
    dipaco::ModelConfig c = small_config();
    c.vocab_size = 384;
    c.d_model = 128;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 256;
    dipaco::TrainOptions o;
    o.batch_size = 4;
    o.seq_len = 32;
    o.steps = 12;
    o.warmup_steps = 2;
    o.lr = 3e-3;
    o.grad_accum = 2;
    dipaco::CudaBackendOptions without = {0, dipaco::CudaMatmulPrecision::kBf16};
    without.bf16_weight_copies = false;
    auto converting = dipaco::create_cuda_backend(without);
    QVERIFY2(converting.is_ok(), converting.status().message().c_str());
    dipaco::Backend* backends[2] = {bf16_.get(), converting->get()};
    QVERIFY(backends[0]->matmul_weight_copy_bytes(1000) == 2000);
    QVERIFY(backends[1]->matmul_weight_copy_bytes(1000) == 0);
    std::vector<double> losses[2];
    std::vector<float> params[2];
    double reloaded_loss[2] = {0, 0};
    const auto tokens = random_tokens(o.batch_size * o.seq_len, c.vocab_size, 31, false);
    for (int k = 0; k < 2; ++k) {
      auto created = dipaco::Trainer::create(backends[k], c, o);
      QVERIFY2(created.is_ok(), created.status().message().c_str());
      dipaco::SyntheticBatchSource source(o.batch_size, o.seq_len, c.vocab_size, 5);
      for (int s = 0; s < o.steps; ++s) {
        auto stats = (*created)->train_step(source);
        QVERIFY2(stats.is_ok(), stats.status().message().c_str());
        losses[k].push_back(stats->loss);
      }
      dipaco::Model& model = (*created)->model();
      params[k] = model.get_params();
      const dipaco::ParamRange block = model.layout().block_range(0);
      model.set_params(block, random_floats(block.count, 32, 0.05f));
      reloaded_loss[k] = model.forward(tokens.data(), tokens.data(), o.batch_size, o.seq_len);
    }
    std::printf(
        "  bf16 weight copies: last loss %.7f vs %.7f converting, after reload %.7f vs "
        "%.7f\n",
        losses[0].back(), losses[1].back(), reloaded_loss[0], reloaded_loss[1]);
    QCOMPARE(losses[0], losses[1]);
    QVERIFY(params[0] == params[1]);
    QCOMPARE(reloaded_loss[0], reloaded_loss[1]);
  }

  // What the first training step takes from the GPU stays within what Model::create budgeted
  // (its buffers, AdamW's state, the weight copies and the backend's scratch), for a head whose
  // bf16 dlogits copy is large ([N, V]: 312 MiB here) and with cuDNN attention's buffers.
  void firstStepStaysWithinTheBudget() {
    dipaco::ModelConfig c = small_config();
    c.vocab_size = 32000;
    c.d_model = 256;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 688;
    c.max_seq_len = 1024;
    dipaco::TrainOptions o;
    o.batch_size = 5;
    o.seq_len = 1024;
    o.steps = 1;
    // Allocation granularity and cuDNN's engines beyond the budget's 64 MiB for lazily loaded
    // kernels (on an H100 the step used 14 and 28 MiB more than the budget without it); still
    // less than the dlogits copy (391 MiB with scratch's growth) that the budget must not miss.
    const size_t slack = size_t{256} << 20;
    for (dipaco::CudaAttention attention :
         {dipaco::CudaAttention::kGemm, dipaco::CudaAttention::kCudnn}) {
      auto created =
          dipaco::create_cuda_backend({0, dipaco::CudaMatmulPrecision::kBf16, attention});
      QVERIFY2(created.is_ok(), created.status().message().c_str());
      dipaco::Backend& be = **created;
      const size_t before = be.available_memory_bytes();
      auto trainer = dipaco::Trainer::create(&be, c, o);
      QVERIFY2(trainer.is_ok(), trainer.status().message().c_str());
      dipaco::SyntheticBatchSource source(o.batch_size, o.seq_len, c.vocab_size, 5);
      auto stats = (*trainer)->train_step(source);
      QVERIFY2(stats.is_ok(), stats.status().message().c_str());
      be.synchronize();
      const size_t used = before - be.available_memory_bytes();
      const size_t budget = (*trainer)->model().budget_bytes();
      std::printf("  first step on %s: used %zu MiB, budget %zu MiB\n", be.name().c_str(),
                  used >> 20, budget >> 20);
      QVERIFY2(used <= budget + slack,
               qPrintable(QString("used %1 MiB, budget %2 MiB").arg(used >> 20).arg(budget >> 20)));
    }
  }

  void modelTooLargeForTheGpuIsRefusedWithFigures() {
    dipaco::ModelConfig c = small_config();
    c.max_seq_len = 4096;
    c.vocab_size = 262144;
    auto created = dipaco::Model::create(bf16_.get(), c, 4096, 4096);
    QVERIFY(!created.is_ok());
    const std::string& m = created.status().message();
    QVERIFY2(m.find("needs") != std::string::npos && m.find("free") != std::string::npos,
             m.c_str());
  }
};

QTEST_GUILESS_MAIN(CudaBackendTest)
#include "test_cuda_backend.moc"
