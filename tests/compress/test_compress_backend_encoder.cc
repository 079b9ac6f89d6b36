// The CPU backend's outer-gradient ops (Backend::subtract, Backend::error_feedback_encode) and
// BackendEncoder against the host codec: the same payload bytes and the same residual bits as
// ErrorFeedbackCompressor over several rounds, on sizes around the chunk, for every wire dtype;
// a value that cannot be encoded is refused with the codec's error and changes nothing.
#include <QtTest>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "compress/backend_encoder.h"
#include "compress/codec.h"
#include "compress/error_feedback.h"
#include "compress/outer_gradient_inputs.h"
#include "tensor/device_buffer.h"

using namespace dipaco;
using dipaco::test::outer_gradient_round;

namespace {

constexpr WireDtype kAllDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8,
                                    WireDtype::kInt4};

std::vector<size_t> sizes_around_the_chunk() {
  return {1, 2, 3, kQuantChunk - 1, kQuantChunk, kQuantChunk + 1, 6 * kQuantChunk + 3};
}

bool same_bits(const std::vector<float>& a, std::span<const float> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
}

QString where(WireDtype d, size_t n, int round) {
  return QString("%1, n = %2, round %3").arg(wire_dtype_name(d)).arg(n).arg(round);
}

}  // namespace

class CompressBackendEncoderTest : public QObject {
  Q_OBJECT

  CpuBackend cpu_{2, 1};  // threaded ops even on small inputs

 private slots:
  void subtractIsTheHostDifference() {
    const size_t n = 3001;
    std::vector<float> a = outer_gradient_round(n, 0, 1), b = outer_gradient_round(n, 1, 2);
    DeviceBuffer da(&cpu_, 4 * n), db(&cpu_, 4 * n);
    cpu_.copy_to_device(da.get(), a.data(), 4 * n);
    cpu_.copy_to_device(db.get(), b.data(), 4 * n);
    cpu_.subtract(da.f32(), da.f32(), db.f32(), n);  // in place, as path tasks do
    std::vector<float> got(n), want(n);
    cpu_.copy_to_host(got.data(), da.get(), 4 * n);
    for (size_t i = 0; i < n; ++i) want[i] = a[i] - b[i];
    QVERIFY(same_bits(got, want));
  }

  // With error feedback: payload and residual equal ErrorFeedbackCompressor's every round
  // (fp32 sends x unchanged and has no residual, as path tasks always did).
  void matchesTheCompressorByteForByte() {
    for (WireDtype d : kAllDtypes) {
      for (size_t n : sizes_around_the_chunk()) {
        auto encoder = BackendEncoder::create(&cpu_, d, n, true);
        QVERIFY2(encoder, encoder.status().message().c_str());
        QCOMPARE((*encoder)->has_residual(), d != WireDtype::kFp32);
        ErrorFeedbackCompressor reference(d, n);
        std::vector<uint8_t> got, want;
        for (int round = 0; round < 4; ++round) {
          std::vector<float> x = outer_gradient_round(n, round, static_cast<uint32_t>(n));
          cpu_.copy_to_device((*encoder)->input(), x.data(), 4 * n);
          Status s = (*encoder)->encode((*encoder)->input(), &got);
          QVERIFY2(s, qPrintable(where(d, n, round) + ": " + s.message().c_str()));
          if (d == WireDtype::kFp32) {
            QVERIFY(encode_into(d, x, &want));
          } else {
            QVERIFY(reference.compress(x, &want));
            QVERIFY2(same_bits((*encoder)->residual(), reference.residual()),
                     qPrintable(where(d, n, round) + ": residuals differ"));
          }
          QCOMPARE(got.size(), encoded_size(d, n));
          QVERIFY2(got == want, qPrintable(where(d, n, round) + ": payloads differ"));
        }
      }
    }
  }

  // error_feedback_round split into single chunks, run last to first, gives the bytes of one
  // pass on one thread (the CPU backend splits it across its pool).
  void roundDoesNotDependOnTheSplit() {
    const size_t n = 5 * kQuantChunk + 7;
    ChunkRangeRunner backwards = [](size_t chunks, const ChunkRangeFn& fn) {
      for (size_t c = chunks; c-- > 0;) fn(c, c + 1);
    };
    for (WireDtype d : kAllDtypes) {
      std::vector<float> r1(n, 0.0f), r2(n, 0.0f), c1(n), c2(n), d1(n), d2(n);
      std::vector<uint8_t> p1(encoded_size(d, n)), p2(encoded_size(d, n));
      for (int round = 0; round < 3; ++round) {
        std::vector<float> x = outer_gradient_round(n, round, 11);
        QVERIFY(error_feedback_round(d, x, r1, p1, c1, d1));
        QVERIFY(error_feedback_round(d, x, r2, p2, c2, d2, backwards));
        QVERIFY2(p1 == p2, qPrintable(where(d, n, round)));
        QVERIFY(same_bits(r1, r2));
      }
    }
  }

  // Without error feedback every round is encode(dtype, x).
  void withoutFeedbackIsThePlainEncoding() {
    for (WireDtype d : kAllDtypes) {
      for (size_t n : sizes_around_the_chunk()) {
        auto encoder = BackendEncoder::create(&cpu_, d, n, false);
        QVERIFY(encoder);
        QVERIFY(!(*encoder)->has_residual());
        QVERIFY(!(*encoder)->set_residual(std::vector<float>(n, 1.0f)));
        std::vector<uint8_t> got, want;
        for (int round = 0; round < 2; ++round) {
          std::vector<float> x = outer_gradient_round(n, round, 99);
          cpu_.copy_to_device((*encoder)->input(), x.data(), 4 * n);
          QVERIFY((*encoder)->encode((*encoder)->input(), &got));
          QVERIFY(encode_into(d, x, &want));
          QVERIFY2(got == want, qPrintable(where(d, n, round)));
        }
      }
    }
  }

  // A residual restored from a saved state continues exactly where the compressor would.
  void restoredResidualContinuesTheRounds() {
    const size_t n = 2 * kQuantChunk + 5;
    for (WireDtype d : {WireDtype::kBf16, WireDtype::kInt8, WireDtype::kInt4}) {
      ErrorFeedbackCompressor reference(d, n);
      std::vector<uint8_t> want, got;
      QVERIFY(reference.compress(outer_gradient_round(n, 0, 5), &want));
      auto encoder = BackendEncoder::create(&cpu_, d, n, true);
      QVERIFY(encoder);
      QVERIFY((*encoder)->set_residual(reference.residual()));
      QVERIFY(!(*encoder)->set_residual(std::vector<float>(n + 1, 0.0f)));
      std::vector<float> x = outer_gradient_round(n, 1, 5);
      cpu_.copy_to_device((*encoder)->input(), x.data(), 4 * n);
      QVERIFY((*encoder)->encode((*encoder)->input(), &got));
      QVERIFY(reference.compress(x, &want));
      QVERIFY(got == want);
      QVERIFY(same_bits((*encoder)->residual(), reference.residual()));
      QVERIFY((*encoder)->set_residual({}));  // empty: back to zeros
      QVERIFY(same_bits((*encoder)->residual(), std::vector<float>(n, 0.0f)));
    }
  }

  // NaN, infinity and (bf16) out-of-range values are refused with the codec's own error; the
  // op writes neither payload nor residual.
  void unencodableValuesAreRefusedAndChangeNothing() {
    const size_t n = 3 * kQuantChunk + 1;
    for (const dipaco::test::UnencodableCase& c : dipaco::test::unencodable_cases(n)) {
      ErrorFeedbackCompressor reference(c.dtype, n);
      std::vector<uint8_t> want;
      QVERIFY(reference.compress(outer_gradient_round(n, 0, 3), &want));
      std::vector<float> bad = outer_gradient_round(n, 1, 3);
      bad[c.index] = c.value;
      Status refused = c.dtype == WireDtype::kFp32 ? encode_into(c.dtype, bad, &want)
                                                   : reference.compress(bad, &want);
      QVERIFY(!refused);

      auto encoder = BackendEncoder::create(&cpu_, c.dtype, n, true);
      QVERIFY(encoder);
      if ((*encoder)->has_residual()) QVERIFY((*encoder)->set_residual(reference.residual()));
      const std::vector<float> residual_before = (*encoder)->residual();
      cpu_.copy_to_device((*encoder)->input(), bad.data(), 4 * n);
      std::vector<uint8_t> got;
      Status s = (*encoder)->encode((*encoder)->input(), &got);
      QVERIFY(!s);
      QCOMPARE(s.code(), refused.code());
      QCOMPARE(QString::fromStdString(s.message()), QString::fromStdString(refused.message()));
      QVERIFY(got.empty());
      QVERIFY(same_bits((*encoder)->residual(), residual_before));

      // The op itself: false, and the payload buffer keeps its bytes.
      DeviceBuffer payload(&cpu_, encoded_size(c.dtype, n));
      DeviceBuffer workspace(&cpu_, cpu_.error_feedback_workspace_bytes(n));
      std::vector<uint8_t> marker(payload.bytes(), 0xa5), after(payload.bytes());
      cpu_.copy_to_device(payload.get(), marker.data(), marker.size());
      QVERIFY(!cpu_.error_feedback_encode(static_cast<uint8_t*>(payload.get()), nullptr,
                                          workspace.get(), (*encoder)->input(), n, c.dtype));
      cpu_.copy_to_host(after.data(), payload.get(), after.size());
      QVERIFY(after == marker);
    }
  }

  void refusalNamesTheValue() {
    auto encoder = BackendEncoder::create(&cpu_, WireDtype::kInt8, 4, true);
    QVERIFY(encoder);
    const std::vector<float> x = {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f};
    cpu_.copy_to_device((*encoder)->input(), x.data(), 4 * x.size());
    std::vector<uint8_t> out;
    Status s = (*encoder)->encode((*encoder)->input(), &out);
    QCOMPARE(s.code(), StatusCode::kInvalidArgument);
    QVERIFY2(s.message().find("value 2 of 4: it is NaN") != std::string::npos, s.message().c_str());
  }

  void emptyGradientEncodesToNothing() {
    for (WireDtype d : kAllDtypes) {
      auto encoder = BackendEncoder::create(&cpu_, d, 0, true);
      QVERIFY(encoder);
      std::vector<uint8_t> got(3);
      QVERIFY((*encoder)->encode((*encoder)->input(), &got));
      QVERIFY(got.empty());
    }
  }
};

QTEST_GUILESS_MAIN(CompressBackendEncoderTest)
#include "test_compress_backend_encoder.moc"
