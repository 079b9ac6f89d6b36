// Error feedback: the sum over rounds of what the receiver decodes tracks the sum of the
// inputs (the bias of lossy rounding does not accumulate), state round-trips, traffic counts.
#include <QtTest>
#include <cmath>
#include <random>
#include <vector>

#include "compress/codec.h"
#include "compress/error_feedback.h"

using namespace dipaco;

namespace {

// Max over i of |sum_t decoded_t[i] - sum_t x_t[i]| after `rounds` rounds of the same
// slowly drifting input, with or without error feedback.
double sum_error(WireDtype dtype, bool feedback, int rounds, size_t n, double* max_abs_input) {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> base(n);
  for (float& v : base) v = u(gen);
  base[0] = 1.0f;  // fixes every chunk's scale near 1 so small values round the same way
  ErrorFeedbackCompressor ef(dtype, n);
  std::vector<double> sum_in(n, 0.0), sum_out(n, 0.0);
  std::vector<uint8_t> payload;
  std::vector<float> x(n), decoded(n);
  *max_abs_input = 0;
  for (int t = 0; t < rounds; ++t) {
    for (size_t i = 0; i < n; ++i) {
      x[i] = base[i] * 0.05f + (i == 0 ? 1.0f : 0.0f) + 0.001f * u(gen);
      *max_abs_input = std::max(*max_abs_input, std::fabs(double{x[i]}));
      sum_in[i] += x[i];
    }
    if (feedback) {
      Status s = ef.compress(x, &payload);
      if (!s) return -1;
      for (size_t i = 0; i < n; ++i) sum_out[i] += ef.last_decoded()[i];
    } else {
      if (!encode_into(dtype, x, &payload)) return -1;
      if (!decode_into(payload, dtype, decoded)) return -1;
      for (size_t i = 0; i < n; ++i) sum_out[i] += decoded[i];
    }
  }
  double worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(sum_in[i] - sum_out[i]));
  return worst;
}

}  // namespace

class AlgoErrorFeedbackTest : public QObject {
  Q_OBJECT

 private slots:
  void sumOfDecodedConvergesToSumOfInputs() {
    const int rounds = 200;
    const size_t n = 3000;
    for (WireDtype d : {WireDtype::kBf16, WireDtype::kInt8, WireDtype::kInt4}) {
      double amax = 0;
      double with = sum_error(d, true, rounds, n, &amax);
      double without = sum_error(d, false, rounds, n, &amax);
      QVERIFY(with >= 0 && without >= 0);
      // With feedback the error of the sum is the last residual: at most one round's
      // quantization error of (x + residual), whose magnitude stays about that of x.
      double one_round = d == WireDtype::kInt4   ? 2 * amax / 14
                         : d == WireDtype::kInt8 ? 2 * amax / 254
                                                 : 2 * amax / 256;
      QVERIFY2(with <= one_round,
               qPrintable(QString("%1: %2 > %3").arg(wire_dtype_name(d)).arg(with).arg(one_round)));
      // Without it, the rounding bias of a steady input adds up over the rounds.
      QVERIFY2(
          without > 10 * with,
          qPrintable(
              QString("%1: without %2, with %3").arg(wire_dtype_name(d)).arg(without).arg(with)));
      // The mean decoded value per round converges to the mean input.
      QVERIFY(with / rounds < 1e-3 * amax);
    }
  }

  void residualIsWhatWasNotSent() {
    std::vector<float> x = {0.3f, -0.71f, 1.0f, 0.05f, 0.0f};
    ErrorFeedbackCompressor ef(WireDtype::kInt4, x.size());
    std::vector<uint8_t> payload;
    QVERIFY(ef.compress(x, &payload));
    QCOMPARE(payload.size(), encoded_size(WireDtype::kInt4, x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      QCOMPARE(ef.last_decoded()[i] + ef.residual()[i], x[i]);
    }
    // The receiver decodes the same values from the payload.
    auto dec = decode(payload, WireDtype::kInt4, x.size());
    QVERIFY(dec);
    for (size_t i = 0; i < x.size(); ++i) QCOMPARE((*dec)[i], ef.last_decoded()[i]);
    // The next round sends x + residual.
    std::vector<float> r(ef.residual().begin(), ef.residual().end());
    QVERIFY(ef.compress(x, &payload));
    for (size_t i = 0; i < x.size(); ++i) {
      QCOMPARE(ef.last_decoded()[i] + ef.residual()[i], x[i] + r[i]);
    }
    QCOMPARE(ef.rounds(), uint64_t{2});
    QCOMPARE(ef.bytes_sent(), uint64_t{2 * encoded_size(WireDtype::kInt4, x.size())});
  }

  void fp32KeepsNoResidual() {
    std::vector<float> x = {0.3f, -0.71f, 1e-30f};
    ErrorFeedbackCompressor ef(WireDtype::kFp32, x.size());
    std::vector<uint8_t> payload;
    QVERIFY(ef.compress(x, &payload));
    for (float r : ef.residual()) QCOMPARE(r, 0.0f);
  }

  void stateRoundTripsAndErrorsLeaveItUnchanged() {
    ErrorFeedbackCompressor ef(WireDtype::kInt8, 4);
    std::vector<float> r = {0.01f, -0.02f, 0.0f, 0.005f};
    QVERIFY(ef.set_residual(r));
    QCOMPARE(std::vector<float>(ef.residual().begin(), ef.residual().end()), r);
    Status s = ef.set_residual(std::vector<float>(3));
    QVERIFY(!s);
    QVERIFY2(s.message().find("residual of 3 values for a compressor of 4") != std::string::npos,
             s.message().c_str());
    std::vector<uint8_t> payload;
    s = ef.compress(std::vector<float>(5), &payload);
    QVERIFY(!s);
    QVERIFY(s.message().find("holds 4 values but was given 5") != std::string::npos);
    std::vector<float> bad = {1.0f, NAN, 0.0f, 0.0f};
    QVERIFY(!ef.compress(bad, &payload));
    QCOMPARE(std::vector<float>(ef.residual().begin(), ef.residual().end()), r);
    QCOMPARE(ef.rounds(), uint64_t{0});
    ef.reset();
    for (float v : ef.residual()) QCOMPARE(v, 0.0f);
  }
};

QTEST_GUILESS_MAIN(AlgoErrorFeedbackTest)
#include "test_algo_error_feedback.moc"
