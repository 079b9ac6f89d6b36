// Every backend op against a double-precision reference: forward values, and backward against
// central finite differences of the reference (loss = sum(out * R) for a random R = dout).
#include <QtTest>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_math.h"
#include "engine_test_util.h"
#include "reference_ops.h"

using dipaco::Backend;
using dipaco::DeviceBuffer;
using namespace dipaco::testing;
namespace ref = dipaco::reference;

class OpsTest : public QObject {
  Q_OBJECT

 private:
  // Three threads on any machine, and every op split across them however small, so partitions
  // are uneven and cross thread boundaries.
  std::unique_ptr<Backend> be_ = std::make_unique<dipaco::CpuBackend>(3, 1);

 private slots:
  void expApproximation() {
    for (double x = -80; x <= 80; x += 0.01) {
      double got = dipaco::cpu::exp_approx(static_cast<float>(x));
      double want = std::exp(static_cast<double>(static_cast<float>(x)));
      QVERIFY2(std::fabs(got - want) <= 4e-7 * want, qPrintable(QString::number(x)));
    }
    QCOMPARE(dipaco::cpu::exp_approx(-1000.0f) < 1e-37f, true);
  }

  void matmul() {
    const int N = 7, C = 19, OC = 13;
    auto inp = random_floats(N * C, 1), w = random_floats(OC * C, 2), r = random_floats(N * OC, 3);
    auto dw0 = random_floats(OC * C, 4);
    Backend& be = *be_;
    auto d_inp = upload(be, inp), d_w = upload(be, w), d_r = upload(be, r), d_dw = upload(be, dw0);
    DeviceBuffer d_out(&be, N * OC * 4), d_dinp(&be, N * C * 4);
    be.matmul_forward(d_out.f32(), d_inp.f32(), d_w.f32(), N, C, OC);
    QVERIFY(close(download(be, d_out, N * OC), ref::matmul(to_double(inp), to_double(w), N, C, OC),
                  1e-5, 1e-5, "matmul out"));
    be.matmul_backward(d_dinp.f32(), d_dw.f32(), d_r.f32(), d_inp.f32(), d_w.f32(), N, C, OC);
    auto dinp = download(be, d_dinp, N * C);
    auto dw = download(be, d_dw, OC * C);
    for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];  // += semantics
    auto wd = to_double(w), id = to_double(inp);
    QVERIFY(check_gradient([&](const ref::Vec& x) { return dot(ref::matmul(x, wd, N, C, OC), r); },
                           id, dinp, "matmul dinp"));
    QVERIFY(check_gradient([&](const ref::Vec& x) { return dot(ref::matmul(id, x, N, C, OC), r); },
                           wd, dw, "matmul dweight"));
  }

  void embedding() {
    const int V = 11, C = 6;
    std::vector<int32_t> tokens = {3, 0, 10, 3, 3, 7, 0};
    const int N = static_cast<int>(tokens.size());
    auto wte = random_floats(V * C, 5), r = random_floats(N * C, 6);
    Backend& be = *be_;
    auto d_tok = upload(be, tokens), d_wte = upload(be, wte), d_r = upload(be, r);
    DeviceBuffer d_out(&be, N * C * 4), d_dwte(&be, V * C * 4);
    be.fill_zero(d_dwte.get(), V * C * 4);
    be.embedding_forward(d_out.f32(), d_tok.i32(), d_wte.f32(), N, C);
    QVERIFY(close(download(be, d_out, N * C), ref::embedding(tokens, to_double(wte), C), 0, 0,
                  "embedding out"));
    be.embedding_backward(d_dwte.f32(), d_r.f32(), d_tok.i32(), N, C);
    QVERIFY(check_gradient([&](const ref::Vec& x) { return dot(ref::embedding(tokens, x, C), r); },
                           to_double(wte), download(be, d_dwte, V * C), "embedding dwte"));
  }

  void rmsnorm() {
    const int N = 5, C = 37;
    const double eps = 1e-5;
    auto inp = random_floats(N * C, 7), w = random_floats(C, 8), r = random_floats(N * C, 9);
    auto dinp0 = random_floats(N * C, 10);
    Backend& be = *be_;
    auto d_inp = upload(be, inp), d_w = upload(be, w), d_r = upload(be, r);
    auto d_dinp = upload(be, dinp0);
    DeviceBuffer d_out(&be, N * C * 4), d_rstd(&be, N * 4), d_dw(&be, C * 4);
    be.fill_zero(d_dw.get(), C * 4);
    be.rmsnorm_forward(d_out.f32(), d_rstd.f32(), d_inp.f32(), d_w.f32(), N, C, eps);
    auto id = to_double(inp), wd = to_double(w);
    QVERIFY(close(download(be, d_out, N * C), ref::rmsnorm(id, wd, N, C, eps), 1e-5, 1e-6,
                  "rmsnorm out"));
    be.rmsnorm_backward(d_dinp.f32(), d_dw.f32(), d_r.f32(), d_inp.f32(), d_w.f32(), d_rstd.f32(),
                        N, C);
    auto dinp = download(be, d_dinp, N * C);
    for (size_t i = 0; i < dinp.size(); ++i) dinp[i] -= dinp0[i];
    QVERIFY(
        check_gradient([&](const ref::Vec& x) { return dot(ref::rmsnorm(x, wd, N, C, eps), r); },
                       id, dinp, "rmsnorm dinp"));
    QVERIFY(
        check_gradient([&](const ref::Vec& x) { return dot(ref::rmsnorm(id, x, N, C, eps), r); },
                       wd, download(be, d_dw, C), "rmsnorm dweight"));
  }

  void rope() {
    // Two sequences of T = 5, rows of 3 heads of 8 plus 5 floats the op must not touch.
    const int B = 2, T = 5, heads = 3, hd = 8, stride = heads * hd + 5, N = B * T;
    const double theta = 10000.0;
    auto x = random_floats(N * stride, 11), r = random_floats(N * stride, 12);
    std::vector<float> cos(T * hd / 2), sin(T * hd / 2);
    dipaco::rope_tables(cos.data(), sin.data(), T, hd, theta);
    Backend& be = *be_;
    auto d_x = upload(be, x), d_cos = upload(be, cos), d_sin = upload(be, sin);
    be.rope_forward(d_x.f32(), d_cos.f32(), d_sin.f32(), N, T, heads, hd, stride);
    auto xd = to_double(x);
    QVERIFY(close(download(be, d_x, N * stride), ref::rope(xd, N, T, heads, hd, stride, theta),
                  1e-5, 1e-6, "rope out"));
    auto d_r = upload(be, r);
    be.rope_backward(d_r.f32(), d_cos.f32(), d_sin.f32(), N, T, heads, hd, stride);
    QVERIFY(check_gradient(
        [&](const ref::Vec& v) { return dot(ref::rope(v, N, T, heads, hd, stride, theta), r); }, xd,
        download(be, d_r, N * stride), "rope dx"));
  }

  void attention_data() {
    QTest::addColumn<int>("B");
    QTest::addColumn<int>("T");
    QTest::addColumn<int>("H");
    QTest::addColumn<int>("KVH");
    QTest::addColumn<int>("hd");
    QTest::addColumn<int>("samples");
    QTest::newRow("multi-head") << 2 << 5 << 2 << 2 << 4 << 0;
    QTest::newRow("grouped-query") << 2 << 6 << 4 << 2 << 4 << 0;
    QTest::newRow("multi-query") << 1 << 4 << 3 << 1 << 2 << 0;
    // Longer than one 64-row block, so the blocked causal sgemms are exercised.
    QTest::newRow("two row blocks") << 1 << 70 << 2 << 1 << 4 << 400;
  }

  void attention() {
    QFETCH(int, B);
    QFETCH(int, T);
    QFETCH(int, H);
    QFETCH(int, KVH);
    QFETCH(int, hd);
    QFETCH(int, samples);
    const int row = (H + 2 * KVH) * hd;
    auto qkv = random_floats(B * T * row, 13), r = random_floats(B * T * H * hd, 14);
    Backend& be = *be_;
    auto d_qkv = upload(be, qkv), d_r = upload(be, r);
    DeviceBuffer d_out(&be, B * T * H * hd * 4),
        d_att(&be, be.attention_saved_floats(B, T, H, KVH, hd) * 4);
    DeviceBuffer d_dqkv(&be, B * T * row * 4);
    DeviceBuffer d_ws(&be, be.attention_workspace_floats(B, T, H, KVH, hd) * 4);
    be.attention_forward(d_out.f32(), d_att.f32(), d_qkv.f32(), B, T, H, KVH, hd);
    auto qd = to_double(qkv);
    QVERIFY(close(download(be, d_out, B * T * H * hd), ref::attention(qd, B, T, H, KVH, hd), 1e-5,
                  1e-6, "attention out"));
    be.attention_backward(d_dqkv.f32(), d_ws.f32(), d_r.f32(), d_qkv.f32(), d_out.f32(),
                          d_att.f32(), B, T, H, KVH, hd);
    QVERIFY(check_gradient(
        [&](const ref::Vec& x) { return dot(ref::attention(x, B, T, H, KVH, hd), r); }, qd,
        download(be, d_dqkv, B * T * row), "attention dqkv", samples));
  }

  void swiglu() {
    const int N = 6, F = 21;
    auto h13 = random_floats(N * 2 * F, 15, 2.0f), r = random_floats(N * F, 16);
    Backend& be = *be_;
    auto d_h = upload(be, h13), d_r = upload(be, r);
    DeviceBuffer d_out(&be, N * F * 4), d_dh(&be, N * 2 * F * 4);
    be.swiglu_forward(d_out.f32(), d_h.f32(), N, F);
    auto hd = to_double(h13);
    QVERIFY(close(download(be, d_out, N * F), ref::swiglu(hd, N, F), 1e-5, 1e-6, "swiglu out"));
    be.swiglu_backward(d_dh.f32(), d_r.f32(), d_h.f32(), N, F);
    QVERIFY(check_gradient([&](const ref::Vec& x) { return dot(ref::swiglu(x, N, F), r); }, hd,
                           download(be, d_dh, N * 2 * F), "swiglu dh13"));
  }

  void residualAndInplace() {
    const size_t n = 1001;
    auto a = random_floats(n, 17), b = random_floats(n, 18);
    Backend& be = *be_;
    auto d_a = upload(be, a), d_b = upload(be, b);
    DeviceBuffer d_out(&be, n * 4);
    be.residual_forward(d_out.f32(), d_a.f32(), d_b.f32(), n);
    std::vector<double> want(n);
    for (size_t i = 0; i < n; ++i) want[i] = static_cast<double>(a[i]) + b[i];
    QVERIFY(close(download(be, d_out, n), want, 1e-7, 0, "residual out"));
    be.add_inplace(d_a.f32(), d_b.f32(), n);
    QVERIFY(close(download(be, d_a, n), want, 1e-7, 0, "add_inplace"));
    be.scale_inplace(d_a.f32(), 0.5f, n);
    for (auto& w : want) w *= 0.5;
    QVERIFY(close(download(be, d_a, n), want, 1e-7, 0, "scale_inplace"));
    double ss = 0;
    for (float x : b) ss += static_cast<double>(x) * x;
    QVERIFY(std::fabs(be.sum_squares(d_b.f32(), n) - ss) < 1e-9 * ss);
  }

  void crossentropy() {
    const int N = 5, V = 37;
    auto logits = random_floats(N * V, 19, 3.0f);
    std::vector<int32_t> targets = {0, 36, -1, 5, 5};
    const float dloss = 1.0f / 4;  // four positions count
    Backend& be = *be_;
    auto d_logits = upload(be, logits), d_t = upload(be, targets);
    DeviceBuffer d_loss(&be, N * 4), d_lse(&be, N * 4);
    be.crossentropy_forward(d_loss.f32(), d_lse.f32(), d_logits.f32(), d_t.i32(), N, V);
    auto ld = to_double(logits);
    QVERIFY(close(download(be, d_loss, N), ref::crossentropy(ld, targets, N, V), 1e-5, 1e-6,
                  "crossentropy losses"));
    // In place: the logits buffer becomes dlogits.
    be.crossentropy_backward(d_logits.f32(), d_logits.f32(), d_lse.f32(), d_t.i32(), N, V, dloss);
    auto mean_loss = [&](const ref::Vec& x) {
      double s = 0;
      for (double l : ref::crossentropy(x, targets, N, V)) s += l;
      return s * dloss;
    };
    QVERIFY(check_gradient(mean_loss, ld, download(be, d_logits, N * V), "crossentropy dlogits"));
  }

  void adamwMatchesTorchFormula() {
    const size_t n = 37;
    auto p = random_floats(n, 20), g = random_floats(n, 21);
    std::vector<float> zeros(n, 0.0f);
    Backend& be = *be_;
    auto d_p = upload(be, p), d_g = upload(be, g), d_m = upload(be, zeros), d_v = upload(be, zeros);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, gs = 0.5;
    std::vector<double> pd = to_double(p), m(n, 0), v(n, 0);
    for (int step = 1; step <= 3; ++step) {
      be.adamw_update(d_p.f32(), d_g.f32(), d_m.f32(), d_v.f32(), n, lr, b1, b2, eps, wd, gs, step);
      for (size_t i = 0; i < n; ++i) {
        double gi = g[i] * gs;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        pd[i] *= 1 - lr * wd;
        double mh = m[i] / (1 - std::pow(b1, step)), vh = v[i] / (1 - std::pow(b2, step));
        pd[i] -= lr * mh / (std::sqrt(vh) + eps);
      }
    }
    QVERIFY(close(download(be, d_p, n), pd, 1e-5, 1e-6, "adamw params"));
  }
};

QTEST_GUILESS_MAIN(OpsTest)
#include "test_ops.moc"
