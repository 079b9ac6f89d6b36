// The worker's path task: outer gradients are θ_start − θ_end (exactly in fp32), state carries
// over between outer steps so that H=1 tasks chained with outer SGD at lr 1 retrace one task of
// H steps (DiLoCo with one replica and H=1 is plain training), error feedback keeps what int8
// could not send, and bad tasks are refused.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <map>

#include "backend/cpu/cpu_backend.h"
#include "compress/codec.h"
#include "compress/error_feedback.h"
#include "run/path_task.h"
#include "run_test_data.h"
#include "test_support.h"

using namespace dipaco;
using dipaco::test::contains;

namespace {

ModelConfig tiny_model() {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.d_ff = 32;
  c.max_seq_len = 16;
  return c;
}

TrainOptions tiny_inner() {
  TrainOptions o;
  o.batch_size = 2;
  o.seq_len = 16;
  o.steps = 8;
  o.warmup_steps = 2;
  o.lr = 3e-3;
  return o;
}

// Two modules: blocks 0 with the embedding, block 1 with the head.
PathTaskSpec spec_from(const ParamLayout& layout, const std::vector<float>& params, uint32_t h,
                       WireDtype dtype) {
  PathTaskSpec spec;
  spec.inner_steps = h;
  ParamRange a = layout.module_range(0, 0, true, false), b = layout.module_range(1, 1, false, true);
  uint32_t id = 0;
  for (ParamRange r : {a, b}) {
    TaskModule m;
    m.module_id = id++;
    m.range = r;
    m.params.assign(params.begin() + static_cast<std::ptrdiff_t>(r.offset),
                    params.begin() + static_cast<std::ptrdiff_t>(r.end()));
    m.dtype = dtype;
    spec.modules.push_back(std::move(m));
  }
  return spec;
}

std::vector<float> initial_params(const ModelConfig& c) {
  CpuBackend backend(1);
  auto m = Model::create(&backend, c, 1, 1);
  (*m)->init_params(7);
  return (*m)->get_params();
}

}  // namespace

class RunPathTaskTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  std::string shard_;

 private slots:
  void initTestCase() {
    dipaco::test::write_tiny_corpus(dir_.path());
    shard_ = dir_.filePath("train.tok").toStdString();
  }

  void chainedSingleStepsRetraceOneLongTask() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(1);
    std::vector<float> start = initial_params(c);

    auto long_trainer = PathTrainer::create(&backend, c, tiny_inner());
    QVERIFY(long_trainer);
    PathTaskState long_state;
    std::vector<double> long_losses;
    auto long_run = (*long_trainer)
                        ->run(spec_from(layout, start, 6, WireDtype::kFp32), shard_, &long_state,
                              [&](int64_t, const StepStats& s) {
                                long_losses.push_back(s.loss);
                                return true;
                              });
    QVERIFY2(long_run, long_run.status().message().c_str());
    std::vector<float> long_end = (*long_trainer)->model().get_params();

    auto short_trainer = PathTrainer::create(&backend, c, tiny_inner());
    PathTaskState state;
    std::vector<float> theta = start;
    std::vector<double> losses;
    for (uint64_t k = 0; k < 6; ++k) {
      PathTaskSpec spec = spec_from(layout, theta, 1, WireDtype::kFp32);
      spec.outer_step = k;
      auto r = (*short_trainer)->run(spec, shard_, &state);
      QVERIFY2(r, r.status().message().c_str());
      losses.push_back(r->first_loss);
      // Outer SGD, lr 1: θ ← θ − Δ.
      for (size_t i = 0; i < spec.modules.size(); ++i) {
        auto delta = decode(r->gradients[i].payload, WireDtype::kFp32, spec.modules[i].range.count);
        QVERIFY(delta);
        for (size_t j = 0; j < delta->size(); ++j)
          theta[spec.modules[i].range.offset + j] -= (*delta)[j];
      }
    }
    QCOMPARE(state.adamw_step, int64_t{6});
    for (size_t i = 0; i < 6; ++i) QVERIFY(std::fabs(losses[i] - long_losses[i]) < 1e-4);
    double max_diff = 0;
    for (size_t i = 0; i < theta.size(); ++i)
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(theta[i] - long_end[i])));
    QVERIFY2(max_diff < 1e-5, std::to_string(max_diff).c_str());
  }

  // The learning rate follows the run's schedule at the task's outer step k (steps k H + 1 ..
  // k H + H) whether the worker has the (path, shard)'s state or starts it fresh, as a worker
  // does when another one trained the previous outer step; the state records its outer step.
  void freshStateContinuesTheRunsSchedule() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(1);
    const std::vector<float> start = initial_params(c);
    const TrainOptions inner = tiny_inner();  // 8 steps: 4 outer steps of H = 2, warmup 2
    auto rates_of = [&](PathTrainer& t, uint64_t outer_step, PathTaskState* state) {
      PathTaskSpec spec = spec_from(layout, start, 2, WireDtype::kFp32);
      spec.outer_step = outer_step;
      std::vector<double> rates;
      auto r = t.run(spec, shard_, state, [&](int64_t, const StepStats& s) {
        rates.push_back(s.lr);
        return true;
      });
      if (!r) qWarning("%s", r.status().message().c_str());
      return rates;
    };
    auto continued = PathTrainer::create(&backend, c, inner);
    QVERIFY(continued);
    PathTaskState state;
    rates_of(**continued, 0, &state);
    rates_of(**continued, 1, &state);
    QCOMPARE(state.outer_step, int64_t{1});
    QCOMPARE(state.adamw_step, int64_t{4});
    const std::vector<double> with_state = rates_of(**continued, 2, &state);

    auto elsewhere = PathTrainer::create(&backend, c, inner);
    QVERIFY(elsewhere);
    PathTaskState fresh;
    const std::vector<double> without_state = rates_of(**elsewhere, 2, &fresh);
    LrSchedule schedule;
    schedule.peak_lr = inner.lr;
    schedule.min_lr = inner.min_lr;
    schedule.warmup_steps = inner.warmup_steps;
    schedule.total_steps = inner.steps;
    QCOMPARE(without_state, (std::vector<double>{schedule.at(5), schedule.at(6)}));
    QCOMPARE(with_state, without_state);
    QVERIFY(schedule.at(5) < schedule.at(2));  // past the warmup's peak, decaying
    QCOMPARE(fresh.adamw_step, int64_t{2});    // AdamW's own count (bias correction) restarted
    QCOMPARE(fresh.outer_step, int64_t{2});

    // The outer step survives the file; a state without one (an older file) reads as -1.
    const std::string file = dir_.filePath("schedule-state.safetensors").toStdString();
    QVERIFY(save_path_task_state(file, fresh));
    auto back = load_path_task_state(file, layout.total());
    QVERIFY2(back, back.status().message().c_str());
    QCOMPARE(back->outer_step, int64_t{2});
    PathTaskState unknown = fresh;
    unknown.outer_step = -1;
    QVERIFY(save_path_task_state(file, unknown));
    back = load_path_task_state(file, layout.total());
    QVERIFY2(back, back.status().message().c_str());
    QCOMPARE(back->outer_step, int64_t{-1});
  }

  void fp32GradientIsStartMinusEnd() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(1);
    std::vector<float> start = initial_params(c);
    auto t = PathTrainer::create(&backend, c, tiny_inner());
    PathTaskState state;
    PathTaskSpec spec = spec_from(layout, start, 3, WireDtype::kFp32);
    auto r = (*t)->run(spec, shard_, &state);
    QVERIFY(r);
    std::vector<float> end = (*t)->model().get_params();
    for (size_t i = 0; i < spec.modules.size(); ++i) {
      auto delta = decode(r->gradients[i].payload, WireDtype::kFp32, spec.modules[i].range.count);
      for (size_t j = 0; j < delta->size(); ++j) {
        size_t at = spec.modules[i].range.offset + j;
        QCOMPARE((*delta)[j], start[at] - end[at]);
      }
    }
    QVERIFY(r->last_loss < r->first_loss + 1.0);
    QCOMPARE(r->tokens, int64_t{3 * 2 * 16});
  }

  void int8KeepsTheResidualForNextRound() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(1);
    std::vector<float> start = initial_params(c);
    auto t = PathTrainer::create(&backend, c, tiny_inner());
    PathTaskState state;
    PathTaskSpec spec = spec_from(layout, start, 2, WireDtype::kInt8);
    auto r = (*t)->run(spec, shard_, &state);
    QVERIFY(r);
    std::vector<float> end = (*t)->model().get_params();
    for (size_t i = 0; i < spec.modules.size(); ++i) {
      const TaskModule& m = spec.modules[i];
      QCOMPARE(r->gradients[i].payload.size(), encoded_size(WireDtype::kInt8, m.range.count));
      auto sent = decode(r->gradients[i].payload, WireDtype::kInt8, m.range.count);
      const std::vector<float>& residual = state.residuals.at(m.module_id);
      for (size_t j = 0; j < m.range.count; ++j) {
        float delta = start[m.range.offset + j] - end[m.range.offset + j];
        QVERIFY(std::fabs((*sent)[j] + residual[j] - delta) < 1e-6);
      }
    }
    // The state survives a file round trip.
    std::string file = dir_.filePath("state.safetensors").toStdString();
    QVERIFY(save_path_task_state(file, state));
    auto back = load_path_task_state(file, layout.total());
    QVERIFY2(back, back.status().message().c_str());
    QCOMPARE(back->adamw_step, state.adamw_step);
    QCOMPARE(back->data_position, state.data_position);
    QVERIFY(back->m == state.m);
    QVERIFY(back->residuals == state.residuals);
    QVERIFY(!load_path_task_state(file, layout.total() + 1));
  }

  // The payloads and residuals are the host codec's, byte for byte (ErrorFeedbackCompressor on
  // θ_start − θ_end), over two chained tasks, with and without error feedback.
  void payloadsAreTheHostCompressors() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(2, 1);
    for (WireDtype d : {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8, WireDtype::kInt4}) {
      auto t = PathTrainer::create(&backend, c, tiny_inner());
      QVERIFY(t);
      PathTaskState state;
      std::vector<float> start = initial_params(c);
      std::map<uint32_t, std::vector<float>> residuals;  // the host's, per module
      for (int task = 0; task < 2; ++task) {
        PathTaskSpec spec = spec_from(layout, start, 2, d);
        spec.outer_step = static_cast<uint64_t>(task);
        spec.modules[1].error_feedback = false;
        auto r = (*t)->run(spec, shard_, &state);
        QVERIFY2(r, r.status().message().c_str());
        std::vector<float> end = (*t)->model().get_params();
        for (size_t i = 0; i < spec.modules.size(); ++i) {
          const TaskModule& m = spec.modules[i];
          std::vector<float> delta(m.range.count);
          for (size_t j = 0; j < delta.size(); ++j)
            delta[j] = m.params[j] - end[m.range.offset + j];
          std::vector<uint8_t> want;
          if (m.error_feedback && d != WireDtype::kFp32) {
            ErrorFeedbackCompressor ef(d, delta.size());
            if (residuals.count(m.module_id)) QVERIFY(ef.set_residual(residuals[m.module_id]));
            QVERIFY(ef.compress(delta, &want));
            residuals[m.module_id].assign(ef.residual().begin(), ef.residual().end());
            QVERIFY(state.residuals.at(m.module_id) == residuals[m.module_id]);
          } else {
            QVERIFY(encode_into(d, delta, &want));
            QVERIFY(!state.residuals.count(m.module_id));
          }
          QVERIFY2(r->gradients[i].payload == want, qPrintable(QString("%1, task %2, module %3")
                                                                   .arg(wire_dtype_name(d))
                                                                   .arg(task)
                                                                   .arg(m.module_id)));
        }
        start = end;
      }
    }
  }

  void badTasksAreRefused() {
    const ModelConfig c = tiny_model();
    ParamLayout layout(c);
    CpuBackend backend(1);
    auto t = PathTrainer::create(&backend, c, tiny_inner());
    PathTaskState state;
    PathTaskSpec spec = spec_from(layout, initial_params(c), 1, WireDtype::kFp32);
    PathTaskSpec missing = spec;
    missing.modules.pop_back();
    QVERIFY(contains((*t)->run(missing, shard_, &state).status().message(), "modules cover"));
    PathTaskSpec wrong = spec;
    wrong.modules[0].params.pop_back();
    QVERIFY(contains((*t)->run(wrong, shard_, &state).status().message(), "wrong size"));
    QVERIFY(!(*t)->run(spec, dir_.filePath("nope.tok").toStdString(), &state));
    auto cancelled =
        (*t)->run(spec, shard_, &state, [](int64_t, const StepStats&) { return false; });
    QCOMPARE(cancelled.status().code(), StatusCode::kUnavailable);
    QCOMPARE(state.adamw_step, int64_t{0});  // a cancelled task leaves the state alone
  }
};

QTEST_GUILESS_MAIN(RunPathTaskTest)
#include "test_run_path_task.moc"
