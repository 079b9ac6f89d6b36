// A training step allocates nothing: every buffer is carved at creation. This binary replaces
// the global operator new with a counting one and trains a few steps.
#include <QtTest>
#include <atomic>
#include <cstdlib>
#include <new>

#include "backend/cpu/cpu_backend.h"
#include "train/trainer.h"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

class StepAllocationsTest : public QObject {
  Q_OBJECT

 private slots:
  void trainingStepAllocatesNothing() {
    dipaco::ModelConfig c;
    c.vocab_size = 64;
    c.d_model = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 128;
    c.max_seq_len = 96;
    dipaco::TrainOptions o;
    o.batch_size = 2;
    o.seq_len = 96;  // more than one attention row block, and big enough to use threads
    o.grad_accum = 2;
    dipaco::CpuBackend be(2, 1);  // every op through the thread pool
    auto trainer = dipaco::Trainer::create(&be, c, o);
    QVERIFY(trainer.is_ok());
    dipaco::SyntheticBatchSource src(o.batch_size, o.seq_len, c.vocab_size, 1);
    QVERIFY((*trainer)->train_step(src).is_ok());  // warm-up: BLAS sets up its buffers
    long before = g_allocations.load();
    QVERIFY(before > 0);  // the counter sees the set-up allocations
    for (int i = 0; i < 3; ++i) {
      auto s = (*trainer)->train_step(src);
      QVERIFY(s.is_ok());
    }
    long during = g_allocations.load() - before;
    QCOMPARE(during, 0L);
  }
};

QTEST_GUILESS_MAIN(StepAllocationsTest)
#include "test_step_allocations.moc"
