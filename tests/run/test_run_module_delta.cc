// Quantized module deltas on the downlink: the version the coordinator publishes is exactly what
// a worker rebuilds from the previous version and the delta, for every wire dtype; the
// coordinator's residual feeds the quantization error back (and survives in the outer-state
// file); the delta file round-trips and a garbled, mismatched or truncated one is refused; a
// local worker's cache moves exactly the bytes it should and falls back to the whole version
// when a delta is missing.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "compress/codec.h"
#include "compress/quantized_delta.h"
#include "data/shuffle.h"
#include "run/module_cache.h"
#include "run/module_delta.h"
#include "run/module_files.h"
#include "run/run_layout.h"
#include "test_support.h"
#include "util/sha256.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

std::vector<float> noise(size_t n, uint64_t seed, float scale) {
  SplitMix64 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * (static_cast<float>(rng.next() % 20001) / 10000.0f - 1.0f);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Publishes `rounds` versions of a module that drifts towards random targets, writing each
// version and its delta into `layout` as the module aggregator does. Returns the versions.
std::vector<std::vector<float>> publish_versions(const RunLayout& layout, uint32_t module_id,
                                                 size_t n, int rounds, WireDtype dtype) {
  std::vector<std::vector<float>> versions = {noise(n, 7, 0.5f)};
  std::filesystem::create_directories(layout.module_dir(module_id));
  auto sha = write_module_version(layout.module_version(module_id, 0), module_id, 0, versions[0]);
  if (!sha) qFatal("%s", sha.status().message().c_str());
  std::vector<float> residual;
  for (int k = 1; k <= rounds; ++k) {
    std::vector<float> target = versions.back();
    std::vector<float> step = noise(n, 100 + static_cast<uint64_t>(k), 0.01f);
    for (size_t i = 0; i < n; ++i) target[i] += step[i];
    ModuleDelta d;
    std::vector<float> next;
    Status s = publish_quantized_step(dtype, versions.back(), target, &residual, &d.payload, &next);
    if (!s) qFatal("%s", s.message().c_str());
    d.module_id = module_id;
    d.version = static_cast<uint64_t>(k);
    d.dtype = dtype;
    d.num_params = n;
    d.base_sha256 = *sha;
    sha = write_module_version(layout.module_version(module_id, d.version), module_id, d.version,
                               next);
    if (!sha) qFatal("%s", sha.status().message().c_str());
    d.target_sha256 = *sha;
    d.target_params_sha256 = params_sha256_hex(next);
    s = write_module_delta(layout.module_delta(module_id, d.version), d);
    if (!s) qFatal("%s", s.message().c_str());
    versions.push_back(std::move(next));
  }
  return versions;
}

ModuleRef ref_of(const RunLayout& layout, uint32_t module_id, uint64_t version) {
  auto sha = sha256_file_hex(layout.module_version(module_id, version));
  return {module_id, version, layout.module_version(module_id, version), sha ? *sha : ""};
}

}  // namespace

class RunModuleDeltaTest : public QObject {
  Q_OBJECT

 private slots:
  void publishedVersionIsWhatWorkersRebuild() {
    const size_t n = 5000;  // three quantization chunks, the last one partial
    for (WireDtype dtype : {WireDtype::kInt8, WireDtype::kInt4, WireDtype::kBf16}) {
      // As the aggregator does: each round's target is the published version plus the outer
      // optimizer's step.
      const std::vector<float> start = noise(n, 1, 1.0f);
      std::vector<float> base = start, residual, steps_sum(n, 0.0f);
      for (int round = 0; round < 6; ++round) {
        std::vector<float> step = noise(n, 10 + static_cast<uint64_t>(round), 0.02f);
        std::vector<float> target = base;
        for (size_t i = 0; i < n; ++i) {
          target[i] += step[i];
          steps_sum[i] += step[i];
        }
        std::vector<uint8_t> payload;
        std::vector<float> published, rebuilt;
        QVERIFY(publish_quantized_step(dtype, base, target, &residual, &payload, &published));
        QCOMPARE(payload.size(), encoded_size(dtype, n));
        QVERIFY(apply_quantized_delta(base, payload, dtype, &rebuilt));
        QVERIFY2(same_bits(published, rebuilt), wire_dtype_name(dtype));
        base = published;
      }
      // Error feedback: the published versions lag the sum of every step by the residual alone,
      // not by the sum of every round's quantization error.
      float worst = 0;
      for (size_t i = 0; i < n; ++i) {
        const float lag = start[i] + steps_sum[i] - base[i];
        QVERIFY(std::fabs(lag - residual[i]) < 1e-5f);
        worst = std::max(worst, std::fabs(lag));
      }
      QVERIFY2(worst < (dtype == WireDtype::kInt4 ? 0.03f : 0.005f), wire_dtype_name(dtype));
    }
    std::vector<float> a(3, 0.0f), b(3, 1.0f), r;
    std::vector<uint8_t> p;
    std::vector<float> next;
    QVERIFY(contains(publish_quantized_step(WireDtype::kFp32, a, b, &r, &p, &next).message(),
                     "not fp32"));
    b[1] = NAN;
    QVERIFY(!publish_quantized_step(WireDtype::kInt8, a, b, &r, &p, &next));
  }

  void deltaFilesRoundTripAndGarbledOnesAreRefused() {
    QTemporaryDir dir;
    RunLayout layout{dir.path().toStdString()};
    const size_t n = 3000;
    auto versions = publish_versions(layout, 2, n, 2, WireDtype::kInt8);
    auto delta = read_module_delta(layout.module_delta(2, 2), 2, 2, n);
    QVERIFY2(delta, delta.status().message().c_str());
    QCOMPARE(delta->payload.size(), encoded_size(WireDtype::kInt8, n));
    QCOMPARE(delta->target_sha256, *sha256_file_hex(layout.module_version(2, 2)));
    QCOMPARE(delta->base_sha256, *sha256_file_hex(layout.module_version(2, 1)));
    auto rebuilt = rebuild_module_version(*delta, versions[1]);
    QVERIFY(rebuilt && same_bits(*rebuilt, versions[2]));
    // Rebuilt on the wrong base, or from a payload with one byte changed: refused.
    auto wrong_base = rebuild_module_version(*delta, versions[0]);
    QCOMPARE(wrong_base.status().code(), StatusCode::kDataLoss);
    ModuleDelta garbled = *delta;
    garbled.payload[garbled.payload.size() / 2] ^= 0x11;
    auto refused = rebuild_module_version(garbled, versions[1]);
    QCOMPARE(refused.status().code(), StatusCode::kDataLoss);
    QVERIFY(contains(refused.status().message(), "fetch it whole"));
    // Another module's or version's delta, or a truncated payload: refused on reading.
    QVERIFY(contains(read_module_delta(layout.module_delta(2, 2), 3, 2, n).status().message(),
                     "expected module 3"));
    QVERIFY(!read_module_delta(layout.module_delta(2, 2), 2, 1, n));
    garbled.payload.resize(garbled.payload.size() - 1);
    QVERIFY(!write_module_delta(layout.module_delta(2, 2), garbled));
  }

  void outerStateKeepsTheDownlinkResidual() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("outer.safetensors").toStdString();
    OuterOptimizerState state;
    state.step = 3;
    state.values = noise(10, 3, 1.0f);
    std::vector<float> residual = noise(10, 4, 0.001f), back;
    QVERIFY(write_outer_state(path, state, residual));
    auto read = read_outer_state(path, &back);
    QVERIFY(read);
    QCOMPARE(read->step, int64_t{3});
    QVERIFY(same_bits(read->values, state.values));
    QVERIFY(same_bits(back, residual));
    QVERIFY(write_outer_state(path, state));
    QVERIFY(read_outer_state(path, &back));
    QVERIFY(back.empty());
  }

  void cacheMovesExactBytesAndFallsBackToWholeVersions() {
    QTemporaryDir dir;
    RunLayout layout{dir.path().toStdString()};
    const size_t n = 4100;
    auto versions = publish_versions(layout, 0, n, 4, WireDtype::kInt8);
    const uint64_t whole = n * sizeof(float), delta = encoded_size(WireDtype::kInt8, n);
    QCOMPARE(max_delta_chain(WireDtype::kInt8, n), uint64_t{3});
    QCOMPARE(max_delta_chain(WireDtype::kInt4, n), uint64_t{7});
    QCOMPARE(max_delta_chain(WireDtype::kFp32, n), uint64_t{0});

    ModuleCache cache(layout, WireDtype::kInt8);
    auto v0 = cache.fetch(ref_of(layout, 0, 0), n);
    QVERIFY(v0 && v0->bytes == whole && same_bits(v0->params, versions[0]));
    auto again = cache.fetch(ref_of(layout, 0, 0), n);
    QVERIFY(again && again->bytes == 0);
    auto v1 = cache.fetch(ref_of(layout, 0, 1), n);  // one delta
    QVERIFY(v1 && v1->bytes == delta && v1->deltas == 1 && same_bits(v1->params, versions[1]));
    auto v3 = cache.fetch(ref_of(layout, 0, 3), n);  // two deltas in a row
    QVERIFY(v3 && v3->bytes == 2 * delta && v3->deltas == 2 && same_bits(v3->params, versions[3]));
    // The delta to version 4 is gone (collected): the whole version, checked by its hash.
    std::filesystem::remove(layout.module_delta(0, 4));
    auto v4 = cache.fetch(ref_of(layout, 0, 4), n);
    QVERIFY(v4 && v4->bytes == whole && v4->deltas == 0 && same_bits(v4->params, versions[4]));
    // A worker four versions behind fetches the whole version (a chain would cost more).
    ModuleCache behind(layout, WireDtype::kInt8);
    QVERIFY(behind.fetch(ref_of(layout, 0, 0), n));
    auto far = behind.fetch(ref_of(layout, 0, 4), n);
    QVERIFY(far && far->bytes == whole);
    // A garbled delta on disk is refused; the worker falls back to the whole version.
    ModuleCache garbled(layout, WireDtype::kInt8);
    QVERIFY(garbled.fetch(ref_of(layout, 0, 2), n));
    {
      std::fstream f(layout.module_delta(0, 3), std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(-7, std::ios::end);
      const char byte = static_cast<char>(f.get() ^ 0x11);
      f.seekp(-7, std::ios::end);
      f.put(byte);
    }
    auto v3_again = garbled.fetch(ref_of(layout, 0, 3), n);
    QVERIFY(v3_again && v3_again->bytes == whole && same_bits(v3_again->params, versions[3]));
    // An fp32 downlink never reads deltas.
    ModuleCache fp32(layout, WireDtype::kFp32);
    QVERIFY(fp32.fetch(ref_of(layout, 0, 0), n));
    auto v1_fp32 = fp32.fetch(ref_of(layout, 0, 1), n);
    QVERIFY(v1_fp32 && v1_fp32->bytes == whole);
  }
};

QTEST_GUILESS_MAIN(RunModuleDeltaTest)
#include "test_run_module_delta.moc"
