// Path-specific modules travel exactly (run/module_wire.h): with int8 or int4 configured, a
// path-specific module's trained parameters go up as fp32 with no error-feedback residual, and
// the coordinator's step for it (replace_with_path_parameters) makes them its next version bit
// for bit; shared modules still go through the configured codec. A payload of a worker that
// predates per-module dtypes (an outer gradient in the grid's dtype) is told apart by its size,
// and the traffic estimate counts path-specific modules as fp32 both ways.
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>

#include "algo/module_outer_step.h"
#include "backend/cpu/cpu_backend.h"
#include "compress/codec.h"
#include "model/model.h"
#include "run/module_aggregator.h"
#include "run/path_task.h"
#include "run/round_traffic.h"
#include "run_test_data.h"

using namespace dipaco;

namespace {

// Level 0 (block 0 with the embedding): two shared modules, one per path here; level 1 (block 1
// with the head): path-specific, one module per path.
const char* kSharedThenPathSpecific =
    "[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n\n[[grid.level]]\nblocks = [1, 1]\n"
    "path_specific = true\n";

GridSpec tiny_grid_spec(const QString& dir, const std::string& dtype) {
  auto grid = parse_grid_spec(dipaco::test::tiny_grid(dir, kSharedThenPathSpecific,
                                                      "[compression]\ndtype = \"" + dtype + "\"\n"),
                              "grid.toml");
  if (!grid) qFatal("%s", grid.status().message().c_str());
  return std::move(grid).value();
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

class RunPathLocalModulesTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;

 private slots:
  void initTestCase() { dipaco::test::write_tiny_corpus(dir_.path()); }

  void pathSpecificVersionIsTheTrainedParameters() {
    for (const char* configured : {"int8", "int4"}) {
      const GridSpec grid = tiny_grid_spec(dir_.path(), configured);
      QCOMPARE(grid.num_paths(), 2);
      const ParamLayout layout(grid.model);
      CpuBackend backend(1);
      auto model = Model::create(&backend, grid.model, 1, 1);
      QVERIFY(model);
      (*model)->init_params(7);
      const std::vector<float> start = (*model)->get_params();
      TrainOptions inner = grid.inner;
      inner.steps = 8;
      auto trainer = PathTrainer::create(&backend, grid.model, inner);
      QVERIFY2(trainer, trainer.status().message().c_str());

      // Path 1's task, as a worker builds it (path_task_runner.cc, local_run.cc).
      PathTaskSpec spec;
      spec.path_id = 1;
      spec.inner_steps = 4;
      for (int id : grid.path_modules(1)) {
        TaskModule m;
        m.module_id = static_cast<uint32_t>(id);
        m.range = grid.module_range(layout, id);
        m.params.assign(start.begin() + static_cast<std::ptrdiff_t>(m.range.offset),
                        start.begin() + static_cast<std::ptrdiff_t>(m.range.end()));
        m.dtype = module_wire_dtype(grid, id);
        m.error_feedback = grid.error_feedback;
        m.send_params = module_is_path_specific(grid, id);
        spec.modules.push_back(std::move(m));
      }
      QCOMPARE(spec.modules.size(), size_t{2});
      PathTaskState state;
      auto r = (*trainer)->run(spec, dir_.filePath("train.tok").toStdString(), &state);
      QVERIFY2(r, r.status().message().c_str());
      const std::vector<float> trained = (*trainer)->model().get_params();

      int path_specific_seen = 0;
      for (size_t i = 0; i < spec.modules.size(); ++i) {
        const TaskModule& m = spec.modules[i];
        const int id = static_cast<int>(m.module_id);
        const size_t n = m.range.count;
        const bool path_specific = module_is_path_specific(grid, id);
        const std::vector<uint8_t>& payload = r->gradients[i].payload;
        const WireDtype sent = path_specific ? WireDtype::kFp32 : grid.dtype;
        QCOMPARE(module_wire_dtype(grid, id), sent);
        QCOMPARE(payload.size(), encoded_size(sent, n));
        // Error feedback only where the codec loses something.
        QCOMPARE(state.residuals.count(m.module_id), size_t{path_specific ? 0u : 1u});

        // The coordinator's side (module_aggregator.cc): decode by the payload, then the step.
        auto encoding = report_encoding(grid, id, n, payload.size());
        QVERIFY(encoding.has_value());
        QCOMPARE(encoding->dtype, sent);
        QCOMPARE(encoding->params, path_specific);
        auto values = decode(payload, encoding->dtype, n);
        QVERIFY(values);
        std::span<const float> trained_module(trained.data() + m.range.offset, n);
        if (!path_specific) {
          // Through the codec: what arrives is not θ − θ_p exactly.
          std::vector<float> exact(n);
          for (size_t j = 0; j < n; ++j) exact[j] = m.params[j] - trained_module[j];
          QVERIFY2(!same_bits(*values, exact), configured);
          continue;
        }
        ++path_specific_seen;
        ModuleReport report;
        report.path_id = 1;
        report.kind = ModuleReport::Kind::kParams;
        report.values = *values;
        report.shard_size = 1234;
        std::vector<float> version = m.params, scratch;
        auto stepped = replace_with_path_parameters(
            version, std::span<const ModuleReport>(&report, 1), 0, m.module_id, &scratch);
        QVERIFY2(stepped, stepped.status().message().c_str());
        QVERIFY(stepped->stepped);
        QVERIFY(!same_bits(version, m.params));  // it trained
        QVERIFY2(same_bits(version, trained_module), configured);

        // What θ − Δ would have given (the outer gradient in fp32, an SGD step at lr 1): not
        // always θ_p, as θ − (θ − θ_p) rounds where θ_p is not within a factor 2 of θ.
        std::vector<float> delta(n), via_delta = m.params;
        for (size_t j = 0; j < n; ++j) delta[j] = m.params[j] - trained_module[j];
        const ModuleOuterSettings settings = module_outer_settings(grid, id);
        auto optimizer = OuterOptimizer::create(settings.optimizer, n);
        QVERIFY(optimizer);
        ModuleReport grad = report;
        grad.kind = ModuleReport::Kind::kOuterGrad;
        grad.values = delta;
        QVERIFY(module_outer_step(via_delta, std::span<const ModuleReport>(&grad, 1),
                                  settings.aggregation, 0, m.module_id, &*optimizer, &scratch));
        size_t rounded = 0;
        for (size_t j = 0; j < n; ++j)
          rounded += std::memcmp(&via_delta[j], &trained_module[j], sizeof(float)) != 0;
        qInfo("%s: θ − Δ differs from θ_p in %zu of %zu parameters", configured, rounded, n);
        // An older worker's report (θ − θ_p as an outer gradient) still replaces the module.
        std::vector<float> from_older = m.params;
        QVERIFY(replace_with_path_parameters(from_older, std::span<const ModuleReport>(&grad, 1), 0,
                                             m.module_id, &scratch));
        QVERIFY(same_bits(from_older, via_delta));
      }
      QCOMPARE(path_specific_seen, 1);
    }
  }

  void olderWorkersPayloadsAreToldApartBySize() {
    const GridSpec grid = tiny_grid_spec(dir_.path(), "int4");
    const ParamLayout layout(grid.model);
    for (int id = 0; id < grid.num_modules(); ++id) {
      const size_t n = grid.module_range(layout, id).count;
      const bool path_specific = module_is_path_specific(grid, id);
      QCOMPARE(module_wire_dtype(grid, id), path_specific ? WireDtype::kFp32 : WireDtype::kInt4);
      QCOMPARE(module_downlink_dtype(grid, id),
               path_specific ? WireDtype::kFp32 : WireDtype::kInt8);
      // A new worker's payload (θ_p in fp32 for a path-specific module), and an older
      // worker's (an outer gradient in the grid's dtype for every module).
      auto own = report_encoding(grid, id, n, encoded_size(module_wire_dtype(grid, id), n));
      QVERIFY(own.has_value());
      QCOMPARE(own->dtype, module_wire_dtype(grid, id));
      QCOMPARE(own->params, path_specific);
      auto older = report_encoding(grid, id, n, encoded_size(WireDtype::kInt4, n));
      QVERIFY(older.has_value());
      QCOMPARE(older->dtype, WireDtype::kInt4);
      QVERIFY(!older->params);
      QVERIFY(!report_encoding(grid, id, n, encoded_size(WireDtype::kInt8, n)).has_value());
    }
    // A grid whose dtype is fp32 keeps outer gradients for every module (an older worker's Δ and
    // θ_p would both be 4n bytes): a 4n-byte payload is Δ, and no module pushes parameters.
    const GridSpec fp32_grid = tiny_grid_spec(dir_.path(), "fp32");
    int path_specific_in_fp32 = 0;
    for (int id = 0; id < fp32_grid.num_modules(); ++id) {
      const size_t n = fp32_grid.module_range(layout, id).count;
      path_specific_in_fp32 += module_is_path_specific(fp32_grid, id) ? 1 : 0;
      QVERIFY(!module_pushes_params(fp32_grid, id));
      auto payload = report_encoding(fp32_grid, id, n, encoded_size(WireDtype::kFp32, n));
      QVERIFY(payload.has_value());
      QCOMPARE(payload->dtype, WireDtype::kFp32);
      QVERIFY(!payload->params);
    }
    QVERIFY(path_specific_in_fp32 > 0);
    // The sizes of fp32 and any other layout never coincide, so the guess is unambiguous.
    for (size_t n = 1; n < 5000; ++n) {
      for (WireDtype d : {WireDtype::kBf16, WireDtype::kInt8, WireDtype::kInt4})
        QVERIFY(encoded_size(d, n) != encoded_size(WireDtype::kFp32, n));
    }
  }

  void trafficCountsPathSpecificModulesAsFp32BothWays() {
    for (const char* configured : {"int8", "int4"}) {
      const GridSpec grid = tiny_grid_spec(dir_.path(), configured);
      const ParamLayout layout(grid.model);
      const RoundTraffic t = round_traffic(grid, layout);
      uint64_t up = 0, path_local = 0;
      for (int p = 0; p < grid.num_paths(); ++p) {
        for (int id : grid.path_modules(p)) {
          const uint64_t n = grid.module_range(layout, id).count;
          if (module_is_path_specific(grid, id))
            path_local += 8 * n;  // fp32 version down, fp32 outer gradient up
          else
            up += encoded_size(grid.dtype, n);
        }
      }
      QVERIFY(path_local > 0);
      QCOMPARE(t.path_local, path_local * static_cast<uint64_t>(grid.shards_per_path));
      QCOMPARE(t.up, up * static_cast<uint64_t>(grid.shards_per_path));
    }
  }
};

QTEST_GUILESS_MAIN(RunPathLocalModulesTest)
#include "test_run_path_local_modules.moc"
