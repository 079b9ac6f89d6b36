// Outer-gradient codecs: round-trip error bounds per dtype, exact sizes, and rejection of
// non-finite inputs and of corrupt or truncated payloads.
#include <QtTest>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "compress/bf16.h"
#include "compress/codec.h"
#include "compress/wire_dtype.h"
#include "test_support.h"

using namespace dipaco;

namespace {

constexpr WireDtype kAll[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8,
                              WireDtype::kInt4};

// Random vector of n values: normal(0, 1) times `magnitude`, with some exact zeros and, when
// spread is set, per-value magnitudes spanning 2^-20..2^20 around `magnitude`.
std::vector<float> random_vector(size_t n, float magnitude, uint32_t seed, bool spread) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    if (gen() % 17 == 0) continue;  // exact zeros
    float m = spread ? std::ldexp(magnitude, exponent(gen)) : magnitude;
    double v = static_cast<double>(normal(gen)) * m;
    x[i] = static_cast<float>(std::clamp(v, -3.0e38, 3.0e38));
  }
  return x;
}

using dipaco::test::contains;

// Checks the documented bound of one dtype on one vector; returns a description of the first
// violation, or "" when all values are within bounds.
std::string check_round_trip(WireDtype dtype, const std::vector<float>& x) {
  auto enc = encode(dtype, x.data(), x.size());
  if (!enc) return "encode failed: " + enc.status().to_string();
  if (enc->size() != encoded_size(dtype, x.size())) return "wrong encoded size";
  auto dec = decode(*enc, dtype, x.size());
  if (!dec) return "decode failed: " + dec.status().to_string();
  const std::vector<float>& y = *dec;
  for (size_t c = 0; c < quant_chunks(x.size()) || (c == 0 && !x.empty()); ++c) {
    size_t begin = c * kQuantChunk, end = std::min(x.size(), begin + kQuantChunk);
    double amax = 0;
    for (size_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(double{x[i]}));
    for (size_t i = begin; i < end; ++i) {
      double err = std::fabs(double{x[i]} - double{y[i]});
      double bound = 0;
      switch (dtype) {
        case WireDtype::kFp32: bound = 0; break;
        case WireDtype::kBf16:
          bound = std::ldexp(std::fabs(double{x[i]}), -8) + 5e-41;
          break;  // subnormal ulp 2^-133
        // Half a quantization step, plus float rounding of the scale and 1e-42 absolute for
        // chunks whose scale is subnormal.
        case WireDtype::kInt8: bound = amax / 254 * (1 + 1e-5) + 1e-42; break;
        case WireDtype::kInt4: bound = amax / 14 * (1 + 1e-5) + 1e-42; break;
      }
      if (err > bound || (x[i] == 0.0f && y[i] != 0.0f)) {
        return std::string(wire_dtype_name(dtype)) + " value " + std::to_string(i) +
               ": x=" + std::to_string(x[i]) + " decoded=" + std::to_string(y[i]) +
               " err=" + std::to_string(err) + " bound=" + std::to_string(bound);
      }
    }
  }
  return "";
}

}  // namespace

class AlgoCodecTest : public QObject {
  Q_OBJECT

 private slots:
  void namesParseAndSizesAreExact() {
    for (WireDtype d : kAll) {
      auto parsed = parse_wire_dtype(wire_dtype_name(d));
      QVERIFY(parsed);
      QCOMPARE(*parsed, d);
    }
    auto bad = parse_wire_dtype("int3");
    QVERIFY(!bad);
    QVERIFY(contains(bad.status().message(), "expected one of fp32, bf16, int8, int4"));
    QCOMPARE(encoded_size(WireDtype::kFp32, 4096), size_t{16384});
    QCOMPARE(encoded_size(WireDtype::kBf16, 4096), size_t{8192});
    QCOMPARE(encoded_size(WireDtype::kInt8, 4096), size_t{4096 + 8});
    QCOMPARE(encoded_size(WireDtype::kInt8, 4097), size_t{4097 + 12});
    QCOMPARE(encoded_size(WireDtype::kInt4, 4097), size_t{2049 + 12});
    QCOMPARE(encoded_size(WireDtype::kInt4, 0), size_t{0});
  }

  void roundTripWithinBoundsOnRandomVectors() {
    const size_t sizes[] = {0, 1, 2, 3, 17, 2047, 2048, 2049, 5001};
    const float magnitudes[] = {1.0f, 1e-3f, 1e30f, 1e-30f, 1e-40f, 1e37f};
    uint32_t seed = 1;
    for (WireDtype d : kAll) {
      for (size_t n : sizes) {
        for (float m : magnitudes) {
          for (bool spread : {false, true}) {
            if (d == WireDtype::kBf16 && m > 1e36f && spread) continue;  // beyond bf16 range
            std::vector<float> x = random_vector(n, m, seed++, spread);
            std::string why = check_round_trip(d, x);
            QVERIFY2(why.empty(), why.c_str());
          }
        }
      }
    }
  }

  void fp32IsBitExactIncludingSubnormalsAndSignedZero() {
    std::vector<float> x = {0.0f, -0.0f, 1e-45f, -3.4e38f, 3.4028235e38f, 1.17549435e-38f};
    auto enc = encode(WireDtype::kFp32, x.data(), x.size());
    QVERIFY(enc);
    auto dec = decode(*enc, WireDtype::kFp32, x.size());
    QVERIFY(dec);
    for (size_t i = 0; i < x.size(); ++i) {
      QCOMPARE(std::bit_cast<uint32_t>((*dec)[i]), std::bit_cast<uint32_t>(x[i]));
    }
  }

  void zerosAndZeroChunksDecodeToZero() {
    std::vector<float> x(3 * kQuantChunk, 0.0f);
    for (size_t i = kQuantChunk; i < 2 * kQuantChunk; ++i)
      x[i] = 0.25f * ((i - kQuantChunk) % 7 == 0 ? -1 : 1);
    for (WireDtype d : kAll) {
      auto enc = encode(d, x.data(), x.size());
      QVERIFY(enc);
      auto dec = decode(*enc, d, x.size());
      QVERIFY(dec);
      for (size_t i = 0; i < kQuantChunk; ++i) QCOMPARE((*dec)[i], 0.0f);
      for (size_t i = 2 * kQuantChunk; i < 3 * kQuantChunk; ++i) QCOMPARE((*dec)[i], 0.0f);
      // ±max of a chunk is exact in every format (it is ±qmax · scale).
      QCOMPARE((*dec)[kQuantChunk + 1], 0.25f);
      QCOMPARE((*dec)[kQuantChunk], -0.25f);
    }
  }

  void bf16RoundsToNearestEvenAndKeepsNaN() {
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
    QCOMPARE(bf16_to_float(float_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    QCOMPARE(bf16_to_float(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))),
             1.0f + std::ldexp(1.0f, -6));
    // Just above the halfway point rounds up.
    QCOMPARE(bf16_to_float(float_to_bf16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f))),
             1.0f + std::ldexp(1.0f, -7));
    QCOMPARE(bf16_to_float(float_to_bf16(-2.5f)), -2.5f);
    // A NaN whose payload is only in the low 16 bits must not become infinity.
    float quiet_low = std::bit_cast<float>(0x7f800001u);
    QVERIFY(std::isnan(bf16_to_float(float_to_bf16(quiet_low))));
    float neg_nan = std::bit_cast<float>(0xff800001u);
    QVERIFY(std::isnan(bf16_to_float(float_to_bf16(neg_nan))));
    QVERIFY(std::signbit(bf16_to_float(float_to_bf16(neg_nan))));
    QCOMPARE(bf16_to_float(float_to_bf16(INFINITY)), INFINITY);
    // The largest float rounds to infinity in bf16; the encoder refuses it.
    QCOMPARE(bf16_to_float(float_to_bf16(3.4e38f)), INFINITY);
    std::vector<float> x = {1.0f, 3.4e38f};
    auto enc = encode(WireDtype::kBf16, x.data(), x.size());
    QVERIFY(!enc);
    QVERIFY2(contains(enc.status().message(), "value 1 of 2"), enc.status().message().c_str());
    QVERIFY(contains(enc.status().message(), "bf16"));
  }

  void nonFiniteInputsAreRefusedWithTheirIndex() {
    for (WireDtype d : kAll) {
      std::vector<float> x = random_vector(5000, 1.0f, 7, false);
      x[4321] = NAN;
      auto enc = encode(d, x.data(), x.size());
      QVERIFY(!enc);
      QCOMPARE(enc.status().code(), StatusCode::kInvalidArgument);
      QVERIFY2(contains(enc.status().message(), "value 4321 of 5000: it is NaN"),
               enc.status().message().c_str());
      x[4321] = 0.0f;
      x[3] = -INFINITY;
      enc = encode(d, x.data(), x.size());
      QVERIFY(!enc);
      QVERIFY2(contains(enc.status().message(), "value 3 of 5000: it is infinite"),
               enc.status().message().c_str());
    }
  }

  void wrongSizesAreRejectedWithTheExpectedSize() {
    std::vector<uint8_t> payload(1000);
    auto dec = decode(payload, WireDtype::kInt8, 4096);
    QVERIFY(!dec);
    QCOMPARE(dec.status().code(), StatusCode::kDataLoss);
    QVERIFY2(contains(dec.status().message(),
                      "int8 payload of 1000 bytes for 4096 values: expected 4104"),
             dec.status().message().c_str());
    std::vector<float> x = random_vector(3001, 1.0f, 3, true);
    for (WireDtype d : kAll) {
      auto enc = encode(d, x.data(), x.size());
      QVERIFY(enc);
      std::vector<uint8_t> truncated(enc->begin(), enc->end() - 1);
      QVERIFY(!decode(truncated, d, x.size()));
      std::vector<uint8_t> longer = *enc;
      longer.push_back(0);
      QVERIFY(!decode(longer, d, x.size()));
      QVERIFY(!decode(std::span<const uint8_t>(), d, x.size()));
      QVERIFY(decode(*enc, d, x.size()));
    }
  }

  void corruptScalesAndValuesAreRejected() {
    std::vector<float> x = random_vector(2 * kQuantChunk + 5, 1.0f, 11, false);
    for (WireDtype d : {WireDtype::kInt8, WireDtype::kInt4}) {
      auto enc = encode(d, x.data(), x.size());
      QVERIFY(enc);
      for (float bad_scale : {NAN, INFINITY, -1.0f}) {
        std::vector<uint8_t> p = *enc;
        std::memcpy(p.data() + 4, &bad_scale, 4);  // chunk 1's scale
        auto dec = decode(p, d, x.size());
        QVERIFY(!dec);
        QVERIFY2(contains(dec.status().message(), "for chunk 1 of 3"),
                 dec.status().message().c_str());
      }
    }
    // -128 and -8 are outside the encoders' ranges.
    auto enc8 = encode(WireDtype::kInt8, x.data(), x.size());
    std::vector<uint8_t> p8 = *enc8;
    p8[12 + 5] = 0x80;
    QVERIFY(!decode(p8, WireDtype::kInt8, x.size()));
    auto enc4 = encode(WireDtype::kInt4, x.data(), x.size());
    std::vector<uint8_t> p4 = *enc4;
    p4[12 + 3] = 0x18;  // low nibble -8
    QVERIFY(!decode(p4, WireDtype::kInt4, x.size()));
    p4 = *enc4;
    p4.back() |= 0x10;  // odd count: the padding nibble must stay 0
    auto dec4 = decode(p4, WireDtype::kInt4, x.size());
    QVERIFY(!dec4);
    QVERIFY(contains(dec4.status().message(), "padding"));
    // fp32 and bf16 payloads carrying NaN or infinity.
    std::vector<float> small = {1.0f, 2.0f, 3.0f};
    auto enc32 = encode(WireDtype::kFp32, small.data(), 3);
    std::vector<uint8_t> p32 = *enc32;
    float nan = NAN;
    std::memcpy(p32.data() + 8, &nan, 4);
    auto dec32 = decode(p32, WireDtype::kFp32, 3);
    QVERIFY(!dec32);
    QVERIFY2(contains(dec32.status().message(), "NaN at value 2 of 3"),
             dec32.status().message().c_str());
    auto enc16 = encode(WireDtype::kBf16, small.data(), 3);
    std::vector<uint8_t> p16 = *enc16;
    p16[0] = 0x80;
    p16[1] = 0x7f;  // +inf
    QVERIFY(!decode(p16, WireDtype::kBf16, 3));
  }

  // Not asserted: prints encode and decode throughput for 10M floats (fp32 bytes per second).
  void throughputPrintout() {
    const size_t n = 10'000'000;
    std::vector<float> x = random_vector(n, 1.0f, 5, false);
    std::vector<uint8_t> payload;
    std::vector<float> y(n);
    for (WireDtype d : kAll) {
      QVERIFY(encode_into(d, x, &payload));  // warm: page faults are not the codec's cost
      auto t0 = std::chrono::steady_clock::now();
      QVERIFY(encode_into(d, x, &payload));
      auto t1 = std::chrono::steady_clock::now();
      QVERIFY(decode_into(payload, d, y));
      auto t2 = std::chrono::steady_clock::now();
      double enc_s = std::chrono::duration<double>(t1 - t0).count();
      double dec_s = std::chrono::duration<double>(t2 - t1).count();
      qInfo("%s: encode %.2f GB/s, decode %.2f GB/s (fp32 GB of 10M values), %zu bytes",
            wire_dtype_name(d), 4.0 * n / enc_s / 1e9, 4.0 * n / dec_s / 1e9, payload.size());
    }
  }
};

QTEST_GUILESS_MAIN(AlgoCodecTest)
#include "test_algo_codec.moc"
