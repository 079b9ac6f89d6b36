// The matmul weight-copy contract (Backend::bind_matmul_weights) as Model, AdamW, Trainer,
// checkpoints and islands keep it, checked on the CPU: SnapshotWeightsBackend is a CpuBackend
// whose matmuls read weights only from its own copy of the bound buffer, updated only where the
// contract says (bind, refresh, adamw_update), the way the CUDA backend's bf16 copy is. Any
// write to the weights the contract misses leaves the copy stale, and the run then differs from
// a plain CpuBackend's; with every write covered the two are bit for bit the same.
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine_test_util.h"
#include "island_test_support.h"
#include "tensor/island_host_all_reduce.h"

using namespace dipaco;

namespace {

class SnapshotWeightsBackend final : public CpuBackend {
 public:
  SnapshotWeightsBackend() : CpuBackend(1) {}

  const float* bound() const { return bound_; }
  long copy_reads() const { return copy_reads_; }
  long binds() const { return binds_; }

  size_t matmul_weight_copy_bytes(size_t count) const override { return count * sizeof(float); }
  bool bind_matmul_weights(const float* weights, size_t count) override {
    bound_ = weights;
    copy_.assign(weights, weights + count);
    ++binds_;
    return true;
  }
  void refresh_matmul_weights(const float* slice, size_t count) override {
    if (float* copy = copy_of(slice, count)) std::memcpy(copy, slice, count * sizeof(float));
  }
  void release_matmul_weights(const float* weights) override {
    if (weights == bound_) bound_ = nullptr;
  }

  void matmul_forward(float* out, const float* inp, const float* weight, int N, int C,
                      int OC) override {
    CpuBackend::matmul_forward(out, inp, read(weight, size_t(OC) * C), N, C, OC);
  }
  void matmul_forward_residual(float* out, const float* inp, const float* weight,
                               const float* residual, int N, int C, int OC) override {
    CpuBackend::matmul_forward_residual(out, inp, read(weight, size_t(OC) * C), residual, N, C, OC);
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC) override {
    CpuBackend::matmul_backward(dinp, dweight, dout, inp, read(weight, size_t(OC) * C), N, C, OC);
  }
  void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, float lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                    int64_t step) override {
    CpuBackend::adamw_update(param, grad, m, v, count, lr, beta1, beta2, eps, weight_decay,
                             grad_scale, step);
    refresh_matmul_weights(param, count);
  }

 private:
  float* copy_of(const float* x, size_t count) {
    if (bound_ == nullptr || x < bound_ || x + count > bound_ + copy_.size()) return nullptr;
    return copy_.data() + (x - bound_);
  }
  // Every model weight must come from the copy; a weight that does not is a contract breach.
  const float* read(const float* weight, size_t count) {
    const float* copy = copy_of(weight, count);
    if (copy == nullptr) qFatal("a matmul read a weight outside the bound buffer");
    ++copy_reads_;
    return copy;
  }

  const float* bound_ = nullptr;
  std::vector<float> copy_;
  long copy_reads_ = 0, binds_ = 0;
};

std::unique_ptr<Trainer> make_trainer(Backend* backend) {
  auto t = Trainer::create(backend, test::island_model(), test::island_options());
  if (!t.is_ok()) qFatal("%s", t.status().message().c_str());
  return std::move(t).value();
}

double forward_loss(Model& model, uint64_t seed) {
  const TrainOptions o = test::island_options();
  SyntheticBatchSource source(o.batch_size, o.seq_len, model.config().vocab_size, seed);
  std::vector<int32_t> inputs(o.batch_size * o.seq_len), targets(inputs.size());
  source.next(inputs.data(), targets.data());
  return model.forward(inputs.data(), targets.data(), o.batch_size, o.seq_len);
}

}  // namespace

class MatmulWeightCopiesTest : public QObject {
  Q_OBJECT

 private slots:
  // 10 clipped AdamW steps with gradient accumulation: the same losses and parameters.
  void trainingWithCopiesEqualsPlainBitForBit() {
    SnapshotWeightsBackend copies;
    CpuBackend plain(1);
    auto a = make_trainer(&copies);
    auto b = make_trainer(&plain);
    const TrainOptions o = test::island_options();
    test::UnevenTargetsSource sa(o.batch_size, o.seq_len, a->model().config().vocab_size, 3);
    test::UnevenTargetsSource sb(o.batch_size, o.seq_len, b->model().config().vocab_size, 3);
    test::TrainedRun ra = test::train_all_steps(*a, sa);
    test::TrainedRun rb = test::train_all_steps(*b, sb);
    for (size_t s = 0; s < ra.steps.size(); ++s) QCOMPARE(ra.steps[s].loss, rb.steps[s].loss);
    QVERIFY(ra.params == rb.params);
    QVERIFY(rb.steps.back().loss < rb.steps.front().loss);
    // 7 products per layer and micro-batch forward and backward, and the head's 2.
    QVERIFY2(copies.copy_reads() > 100, qPrintable(QString::number(copies.copy_reads())));
  }

  // set_params (whole and one module) and a checkpoint load refresh the copy.
  void loadingParametersRefreshesTheCopy() {
    SnapshotWeightsBackend copies;
    CpuBackend plain(1);
    auto a = make_trainer(&copies);
    auto b = make_trainer(&plain);
    const ParamRange block = a->model().layout().block_range(1);
    const auto module = testing::random_floats(block.count, 5, 0.05f);
    a->model().set_params(block, module);
    b->model().set_params(block, module);
    QCOMPARE(forward_loss(a->model(), 9), forward_loss(b->model(), 9));

    const auto all = testing::random_floats(a->model().num_params(), 6, 0.05f);
    a->model().set_params(all);
    b->model().set_params(all);
    QCOMPARE(forward_loss(a->model(), 10), forward_loss(b->model(), 10));

    QTemporaryDir dir;
    const TrainOptions o = test::island_options();
    SyntheticBatchSource source(o.batch_size, o.seq_len, a->model().config().vocab_size, 4);
    const std::string path = dir.filePath("step.safetensors").toStdString();
    auto trained = make_trainer(&plain);  // different parameters: one step from the seed init
    QVERIFY(trained->train_step(source).is_ok());
    QVERIFY2(trained->save_checkpoint(path, source).is_ok(), path.c_str());
    QVERIFY(a->load_checkpoint(path, nullptr).is_ok());
    QCOMPARE(forward_loss(a->model(), 11), forward_loss(trained->model(), 11));
  }

  // An island of two replicas with copies equals one of two plain replicas (sync_replicas and
  // every replica's AdamW keep their copies fresh).
  void islandWithCopiesEqualsPlainIsland() {
    SnapshotWeightsBackend c0, c1;
    CpuBackend p0(1), p1(1);
    HostIslandAllReduce reduce_copies({&c0, &c1}), reduce_plain({&p0, &p1});
    const TrainOptions o = test::island_options();
    auto a = Trainer::create_island({&c0, &c1}, &reduce_copies, test::island_model(), o);
    auto b = Trainer::create_island({&p0, &p1}, &reduce_plain, test::island_model(), o);
    QVERIFY2(a.is_ok() && b.is_ok(), "island trainers");
    test::UnevenTargetsSource sa(o.batch_size, o.seq_len, test::island_model().vocab_size, 8);
    test::UnevenTargetsSource sb(o.batch_size, o.seq_len, test::island_model().vocab_size, 8);
    test::TrainedRun ra = test::train_all_steps(**a, sa);
    test::TrainedRun rb = test::train_all_steps(**b, sb);
    for (size_t s = 0; s < ra.steps.size(); ++s) QCOMPARE(ra.steps[s].loss, rb.steps[s].loss);
    QVERIFY(ra.params == rb.params);
    QVERIFY(c1.copy_reads() > 0);
  }

  // The control: a write around the contract (straight into the buffer) leaves the copy stale
  // and the forward differs, so the equalities above do test the copy.
  void aWriteAroundTheContractIsSeen() {
    SnapshotWeightsBackend copies;
    CpuBackend plain(1);
    auto a = make_trainer(&copies);
    auto b = make_trainer(&plain);
    const auto all = testing::random_floats(a->model().num_params(), 12, 0.05f);
    copies.copy_to_device(a->model().params(), all.data(), all.size() * sizeof(float));
    b->model().set_params(all);
    QVERIFY(forward_loss(a->model(), 13) != forward_loss(b->model(), 13));
  }

  // A model binds its buffer on creation and releases it when destroyed; the next one binds its
  // own.
  void modelsBindAndRelease() {
    SnapshotWeightsBackend copies;
    {
      auto a = make_trainer(&copies);
      QCOMPARE(copies.bound(), static_cast<const float*>(a->model().params()));
    }
    QVERIFY(copies.bound() == nullptr);
    auto b = make_trainer(&copies);
    QCOMPARE(copies.bound(), static_cast<const float*>(b->model().params()));
    QCOMPARE(copies.binds(), 2L);
  }
};

QTEST_GUILESS_MAIN(MatmulWeightCopiesTest)
#include "test_matmul_weight_copies.moc"
