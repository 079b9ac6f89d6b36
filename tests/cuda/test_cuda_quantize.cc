// Outer gradients on the GPU (cuda_quantize.cu) against the CPU backend, which runs the host
// codec: Backend::subtract and Backend::error_feedback_encode must give the same bytes and the
// same residual bits, round after round, for every wire dtype, on sizes around the chunk and a
// large one; a value that cannot be encoded is refused with the codec's error and the residual
// stays as it was. Needs a CUDA device; otherwise prints "skipped: no CUDA device".
#include <QtTest>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "compress/backend_encoder.h"
#include "compress/codec.h"
#include "compress/outer_gradient_inputs.h"
#include "cuda_test_support.h"

using namespace dipaco;
using dipaco::test::Mirror;
using dipaco::test::outer_gradient_round;

namespace {

constexpr WireDtype kAllDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8,
                                    WireDtype::kInt4};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
}

// First index where two byte strings differ, for the failure message.
size_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

class CudaQuantizeTest : public QObject {
  Q_OBJECT

  std::unique_ptr<CpuBackend> cpu_;
  std::unique_ptr<Backend> gpu_;

 private slots:
  void initTestCase() {
    DIPACO_SKIP_WITHOUT_CUDA();
    cpu_ = std::make_unique<CpuBackend>(2, 1);
    auto created = create_cuda_backend({0, CudaMatmulPrecision::kFp32});
    if (!created.is_ok()) qFatal("%s", created.status().message().c_str());
    gpu_ = std::move(created).value();
    std::printf("GPU backend: %s\n", gpu_->name().c_str());
  }

  void subtractIsBitIdentical() {
    const size_t n = 1000003;
    std::vector<float> a = outer_gradient_round(n, 0, 1), b = outer_gradient_round(n, 1, 2);
    Mirror<float> ga(gpu_.get(), a), gb(gpu_.get(), b), ca(cpu_.get(), a), cb(cpu_.get(), b);
    gpu_->subtract(ga.get(), ga.get(), gb.get(), n);
    cpu_->subtract(ca.get(), ca.get(), cb.get(), n);
    QVERIFY(same_bits(ga.host(), ca.host()));
  }

  void encodingMatchesCpu_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<qulonglong>("n");
    QTest::addColumn<bool>("feedback");
    const size_t sizes[] = {
        1, kQuantChunk - 1, kQuantChunk, kQuantChunk + 1, 6 * kQuantChunk + 3, 1000000};
    for (WireDtype d : kAllDtypes) {
      for (size_t n : sizes) {
        for (bool feedback : {true, false}) {
          QTest::addRow("%s n=%zu %s", wire_dtype_name(d), n, feedback ? "ef" : "plain")
              << static_cast<int>(d) << static_cast<qulonglong>(n) << feedback;
        }
      }
    }
  }

  // Four rounds on both backends from the same inputs: identical payloads and residuals.
  void encodingMatchesCpu() {
    QFETCH(int, dtype);
    QFETCH(qulonglong, n);
    QFETCH(bool, feedback);
    const auto d = static_cast<WireDtype>(dtype);
    auto on_gpu = BackendEncoder::create(gpu_.get(), d, n, feedback);
    auto on_cpu = BackendEncoder::create(cpu_.get(), d, n, feedback);
    QVERIFY2(on_gpu, on_gpu.status().message().c_str());
    QVERIFY(on_cpu);
    QCOMPARE((*on_gpu)->has_residual(), (*on_cpu)->has_residual());
    for (int round = 0; round < 4; ++round) {
      std::vector<float> x = outer_gradient_round(n, round, static_cast<uint32_t>(n));
      gpu_->copy_to_device((*on_gpu)->input(), x.data(), 4 * n);
      cpu_->copy_to_device((*on_cpu)->input(), x.data(), 4 * n);
      std::vector<uint8_t> got, want;
      Status g = (*on_gpu)->encode((*on_gpu)->input(), &got);
      QVERIFY2(g, g.message().c_str());
      QVERIFY((*on_cpu)->encode((*on_cpu)->input(), &want));
      QCOMPARE(got.size(), encoded_size(d, n));
      QVERIFY2(got == want, qPrintable(QString("round %1: payloads differ at byte %2")
                                           .arg(round)
                                           .arg(first_difference(got, want))));
      QVERIFY2(same_bits((*on_gpu)->residual(), (*on_cpu)->residual()),
               qPrintable(QString("round %1: residuals differ").arg(round)));
    }
  }

  // NaN, infinity and (bf16) out-of-range values: the GPU refuses them with the same error as
  // the host codec, and writes neither the residual nor the payload.
  void unencodableValuesAreRefusedLikeTheCpu() {
    const size_t n = 3 * kQuantChunk + 1;
    for (const dipaco::test::UnencodableCase& c : dipaco::test::unencodable_cases(n)) {
      auto on_gpu = BackendEncoder::create(gpu_.get(), c.dtype, n, true);
      auto on_cpu = BackendEncoder::create(cpu_.get(), c.dtype, n, true);
      QVERIFY(on_gpu);
      QVERIFY(on_cpu);
      // One good round first, so the residual is not zero.
      std::vector<float> x = outer_gradient_round(n, 0, 3);
      std::vector<uint8_t> out;
      gpu_->copy_to_device((*on_gpu)->input(), x.data(), 4 * n);
      QVERIFY((*on_gpu)->encode((*on_gpu)->input(), &out));
      const std::vector<float> residual_before = (*on_gpu)->residual();
      if ((*on_cpu)->has_residual()) QVERIFY((*on_cpu)->set_residual(residual_before));

      x = outer_gradient_round(n, 1, 3);
      x[c.index] = c.value;
      gpu_->copy_to_device((*on_gpu)->input(), x.data(), 4 * n);
      cpu_->copy_to_device((*on_cpu)->input(), x.data(), 4 * n);
      Status g = (*on_gpu)->encode((*on_gpu)->input(), &out);
      Status want = (*on_cpu)->encode((*on_cpu)->input(), &out);
      QVERIFY(!g);
      QVERIFY(!want);
      QCOMPARE(g.code(), want.code());
      QCOMPARE(QString::fromStdString(g.message()), QString::fromStdString(want.message()));
      QVERIFY(same_bits((*on_gpu)->residual(), residual_before));

      // The op itself leaves the payload buffer's bytes alone.
      std::vector<uint8_t> marker(encoded_size(c.dtype, n), 0xa5);
      Mirror<uint8_t> payload(gpu_.get(), marker);
      DeviceBuffer workspace(gpu_.get(), gpu_->error_feedback_workspace_bytes(n));
      QVERIFY(!gpu_->error_feedback_encode(payload.get(), nullptr, workspace.get(),
                                           (*on_gpu)->input(), n, c.dtype));
      QVERIFY(payload.host() == marker);
    }
  }
};

QTEST_GUILESS_MAIN(CudaQuantizeTest)
#include "test_cuda_quantize.moc"
