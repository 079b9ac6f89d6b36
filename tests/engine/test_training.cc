// Training: schedule, gradient accumulation, overfitting one batch, bit-exact resume from a
// checkpoint, NaN handling, and checkpoints that do not fit.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "tensor/safetensors.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using dipaco::ModelConfig;
using dipaco::Trainer;
using dipaco::TrainOptions;

namespace {
ModelConfig tiny_model() {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 64;
  c.max_seq_len = 16;
  return c;
}

TrainOptions tiny_options() {
  TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.steps = 50;
  o.warmup_steps = 5;
  o.lr = 3e-3;
  o.min_lr = 3e-4;
  return o;
}

// The same batch every time.
class FixedBatchSource final : public dipaco::BatchSource {
 public:
  FixedBatchSource(int batch, int seq_len, int vocab) : B_(batch), T_(seq_len) {
    for (int i = 0; i < B_ * (T_ + 1); ++i) tokens_.push_back((i * 13 + i / 7) % vocab);
  }
  int batch() const override { return B_; }
  int seq_len() const override { return T_; }
  void next(int32_t* inputs, int32_t* targets) override {
    for (int b = 0; b < B_; ++b)
      for (int t = 0; t < T_; ++t) {
        inputs[b * T_ + t] = tokens_[b * (T_ + 1) + t];
        targets[b * T_ + t] = tokens_[b * (T_ + 1) + t + 1];
      }
  }
  std::string position() const override { return "fixed"; }
  dipaco::Status restore(const std::string&) override { return dipaco::Status::ok(); }

 private:
  int B_, T_;
  std::vector<int> tokens_;
};

std::unique_ptr<Trainer> make_trainer(dipaco::Backend* be, const ModelConfig& c,
                                      const TrainOptions& o) {
  auto t = Trainer::create(be, c, o);
  if (!t.is_ok()) qFatal("%s", t.status().message().c_str());
  return std::move(t).value();
}
}  // namespace

class TrainingTest : public QObject {
  Q_OBJECT

 private slots:
  void scheduleWarmsUpThenDecays() {
    dipaco::LrSchedule s{1.0, 0.1, 10, 110};
    QCOMPARE(s.at(1), 0.1);
    QCOMPARE(s.at(10), 1.0);
    QVERIFY(std::fabs(s.at(60) - 0.55) < 1e-12);  // half-way down the cosine
    QVERIFY(std::fabs(s.at(110) - 0.1) < 1e-12);
    QCOMPARE(s.at(500), 0.1);
    for (int step = 11; step < 110; ++step) QVERIFY(s.at(step + 1) <= s.at(step));
  }

  void optionErrorsNameTheKey() {
    TrainOptions o = tiny_options();
    o.seq_len = 17;
    auto s = o.validate(tiny_model());
    QVERIFY(!s.is_ok());
    QCOMPARE(QString::fromStdString(s.message()),
             QString("train.seq_len 17 exceeds model.max_seq_len 16"));
  }

  void gradientAccumulationMatchesOneBigBatch() {
    dipaco::CpuBackend be(2);
    TrainOptions big = tiny_options(), accum = tiny_options();
    accum.batch_size = 2;
    accum.grad_accum = 2;
    auto a = make_trainer(&be, tiny_model(), big);
    auto b = make_trainer(&be, tiny_model(), accum);
    // Rows 0-1 then 2-3 of the big batch: the synthetic source draws row b from (drawn, b), so
    // give the accumulating trainer a source with the big batch cut in two.
    dipaco::SyntheticBatchSource src_big(4, 16, 32, 9);
    std::vector<int32_t> in(64), tg(64);
    src_big.next(in.data(), tg.data());
    dipaco::SyntheticBatchSource replay_big(4, 16, 32, 9);
    class Halves final : public dipaco::BatchSource {
     public:
      Halves(std::vector<int32_t> i, std::vector<int32_t> t) : in_(i), tg_(t) {}
      int batch() const override { return 2; }
      int seq_len() const override { return 16; }
      void next(int32_t* inputs, int32_t* targets) override {
        std::memcpy(inputs, in_.data() + half_ * 32, 32 * 4);
        std::memcpy(targets, tg_.data() + half_ * 32, 32 * 4);
        half_ ^= 1;
      }
      std::string position() const override { return ""; }
      dipaco::Status restore(const std::string&) override { return dipaco::Status::ok(); }

     private:
      std::vector<int32_t> in_, tg_;
      int half_ = 0;
    } halves(in, tg);
    auto sa = a->train_step(replay_big);
    auto sb = b->train_step(halves);
    QVERIFY(sa.is_ok() && sb.is_ok());
    QVERIFY(std::fabs(sa->loss - sb->loss) < 1e-6);
    QVERIFY(std::fabs(sa->grad_norm - sb->grad_norm) < 1e-5 * sa->grad_norm);
    // The accumulated gradients agree to float rounding (the parameters after AdamW's first
    // step would not: it divides tiny gradients by their own magnitude).
    auto ga = a->model().get_grads(), gb = b->model().get_grads();
    double num = 0, den = 0;
    for (size_t i = 0; i < ga.size(); ++i) {
      num += double(ga[i] - gb[i]) * (ga[i] - gb[i]);
      den += double(ga[i]) * ga[i];
    }
    QVERIFY2(std::sqrt(num / den) < 1e-5, qPrintable(QString::number(std::sqrt(num / den))));
  }

  void overfitsOneBatch() {
    dipaco::CpuBackend be(2);
    TrainOptions o = tiny_options();
    o.steps = 150;
    o.lr = 1e-2;
    o.min_lr = 1e-3;
    o.adamw.weight_decay = 0.0;
    auto t = make_trainer(&be, tiny_model(), o);
    FixedBatchSource src(o.batch_size, o.seq_len, 32);
    double first = 0, last = 0;
    for (int i = 0; i < o.steps; ++i) {
      auto s = t->train_step(src);
      QVERIFY(s.is_ok());
      if (i == 0) first = s->loss;
      last = s->loss;
    }
    QVERIFY2(first > 3.0 && last < 0.05, qPrintable(QString("loss %1 -> %2").arg(first).arg(last)));
  }

  void resumeFromCheckpointIsBitExact() {
    dipaco::CpuBackend be(2);
    const ModelConfig c = tiny_model();
    const TrainOptions o = tiny_options();
    const int k = 4, m = 5;
    QTemporaryDir dir;
    const std::string ckpt = dir.filePath("ckpt.safetensors").toStdString();

    auto straight = make_trainer(&be, c, o);
    dipaco::SyntheticBatchSource src_a(o.batch_size, o.seq_len, c.vocab_size, 3);
    std::vector<double> want;
    for (int i = 0; i < k + m; ++i) {
      auto s = straight->train_step(src_a);
      QVERIFY(s.is_ok());
      if (i >= k) want.push_back(s->loss);
    }

    auto first = make_trainer(&be, c, o);
    dipaco::SyntheticBatchSource src_b(o.batch_size, o.seq_len, c.vocab_size, 3);
    for (int i = 0; i < k; ++i) QVERIFY(first->train_step(src_b).is_ok());
    QVERIFY(first->save_checkpoint(ckpt, src_b));

    TrainOptions other_seed = o;
    other_seed.seed = 99;  // the checkpoint must override the init entirely
    auto resumed = make_trainer(&be, c, other_seed);
    dipaco::SyntheticBatchSource src_c(o.batch_size, o.seq_len, c.vocab_size, 3);
    auto loaded = resumed->load_checkpoint(ckpt, &src_c);
    QVERIFY2(loaded.is_ok(), loaded.message().c_str());
    QCOMPARE(resumed->step(), int64_t{k});
    for (int i = 0; i < m; ++i) {
      auto s = resumed->train_step(src_c);
      QVERIFY(s.is_ok());
      QVERIFY2(std::memcmp(&s->loss, &want[i], sizeof(double)) == 0,
               qPrintable(QString("step %1: %2 vs %3")
                              .arg(k + i + 1)
                              .arg(s->loss, 0, 'g', 17)
                              .arg(want[i], 0, 'g', 17)));
    }
    QVERIFY(resumed->model().get_params() == straight->model().get_params());
  }

  void nanStopsAndKeepsTheLastGoodCheckpoint() {
    dipaco::CpuBackend be(2);
    const ModelConfig c = tiny_model();
    auto t = make_trainer(&be, c, tiny_options());
    dipaco::SyntheticBatchSource src(4, 16, c.vocab_size, 1);
    QVERIFY(t->train_step(src).is_ok());
    QTemporaryDir dir;
    const std::string ckpt = dir.filePath("ckpt.safetensors").toStdString();
    QVERIFY(t->save_checkpoint(ckpt, src));
    auto good = dipaco::read_file(ckpt);
    QVERIFY(good.is_ok());

    auto params = t->model().get_params();
    params[t->model().layout().block(0).wqkv] = NAN;
    t->model().set_params(params);
    auto s = t->train_step(src);
    QVERIFY(!s.is_ok());
    QVERIFY2(s.status().message().find("loss is NaN at step 2") != std::string::npos,
             s.status().message().c_str());
    QCOMPARE(t->step(), int64_t{1});  // no update was applied
    auto saved = t->save_checkpoint(ckpt, src);
    QVERIFY(!saved.is_ok());
    QVERIFY2(saved.message().find("not finite") != std::string::npos, saved.message().c_str());
    QVERIFY(*dipaco::read_file(ckpt) == *good);
  }

  void checkpointOfAnotherModelIsAClearError() {
    dipaco::CpuBackend be(2);
    ModelConfig c = tiny_model();
    auto t = make_trainer(&be, c, tiny_options());
    dipaco::SyntheticBatchSource src(4, 16, c.vocab_size, 1);
    QTemporaryDir dir;
    const std::string ckpt = dir.filePath("ckpt.safetensors").toStdString();
    QVERIFY(t->save_checkpoint(ckpt, src));
    auto bytes = *dipaco::read_file(ckpt);

    ModelConfig wider = c;
    wider.d_ff = 96;
    auto other = make_trainer(&be, wider, tiny_options());
    auto before = other->model().get_params();
    auto s = other->load_checkpoint(ckpt, &src);
    QVERIFY(!s.is_ok());
    QVERIFY2(s.message().find("different model") != std::string::npos &&
                 s.message().find("d_ff 64 vs 96") != std::string::npos,
             s.message().c_str());
    QVERIFY(other->model().get_params() == before);
    QVERIFY(*dipaco::read_file(ckpt) == bytes);
  }

  void checkpointTensorOfAnotherDtypeOrShapeIsAClearError() {
    dipaco::CpuBackend be(2);
    ModelConfig c = tiny_model();
    auto t = make_trainer(&be, c, tiny_options());
    dipaco::SyntheticBatchSource src(4, 16, c.vocab_size, 1);
    QTemporaryDir dir;
    const std::string ckpt = dir.filePath("ckpt.safetensors").toStdString();
    QVERIFY(t->save_checkpoint(ckpt, src));
    // Rewrite the file with one tensor as F16 [..] and another with a transposed shape.
    auto file = dipaco::SafetensorsFile::open(ckpt);
    QVERIFY(file.is_ok());
    std::vector<dipaco::SafetensorsWriteItem> items;
    for (const auto& st : file->tensors()) {
      dipaco::SafetensorsWriteItem item{st.name, st.dtype, st.shape, file->data(st), st.bytes};
      if (st.name == "model.norm.weight") {
        item.dtype = "F16";
        item.shape = {st.shape[0] * 2};
      }
      items.push_back(item);
    }
    const std::string bad = dir.filePath("bad.safetensors").toStdString();
    QVERIFY(dipaco::write_safetensors(bad, items, file->metadata()));
    auto s = t->load_checkpoint(bad, &src);
    QVERIFY(!s.is_ok());
    QVERIFY2(
        s.message().find("'model.norm.weight' has dtype F16, expected F32") != std::string::npos,
        s.message().c_str());

    for (auto& item : items)
      if (item.name == "model.norm.weight") {
        item.dtype = "F32";
        item.shape = {c.d_model};
      } else if (item.name == "model.layers.1.mlp.down_proj.weight") {
        item.shape = {c.d_ff, c.d_model};
      }
    QVERIFY(dipaco::write_safetensors(bad, items, file->metadata()));
    s = t->load_checkpoint(bad, &src);
    QVERIFY(!s.is_ok());
    QVERIFY2(s.message().find("'model.layers.1.mlp.down_proj.weight' has shape [64, 32], "
                              "expected [32, 64]") != std::string::npos,
             s.message().c_str());
  }

  void safetensorsRejectsTruncatedFiles() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("t.safetensors").toStdString();
    std::vector<float> x = {1, 2, 3, 4, 5, 6};
    QVERIFY(dipaco::write_safetensors(path, {{"x", "F32", {2, 3}, x.data(), 24}}, {{"k", "v\"q"}}));
    auto f = dipaco::SafetensorsFile::open(path);
    QVERIFY(f.is_ok());
    QCOMPARE(f->metadata().at("k"), std::string("v\"q"));
    QCOMPARE(f->find("x")->shape, (std::vector<int64_t>{2, 3}));
    QVERIFY(std::memcmp(f->data(*f->find("x")), x.data(), 24) == 0);
    auto bytes = *dipaco::read_file(path);
    QVERIFY(dipaco::write_file_atomically(path, bytes.substr(0, bytes.size() - 4)));
    auto t = dipaco::SafetensorsFile::open(path);
    QVERIFY(!t.is_ok());
    QVERIFY2(t.status().message().find("past the end") != std::string::npos,
             t.status().message().c_str());
  }
};

QTEST_GUILESS_MAIN(TrainingTest)
#include "test_training.moc"
