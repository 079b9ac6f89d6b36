#include "backend/cpu/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DIPACO_CPU_RELAX() _mm_pause()
#else
#define DIPACO_CPU_RELAX() \
  do {                     \
  } while (0)
#endif

namespace dipaco {
namespace {
// A few tens of microseconds of spinning (a pause is ~140 cycles on Skylake-X) before sleeping
// on the futex: enough to bridge the gap between two ops of one step; a sleep/wake costs only a
// few microseconds per op, and a spinning thread would steal a core on a shared machine.
constexpr int kSpinIterations = 2000;
}  // namespace

ThreadPool::ThreadPool(int n_threads, int64_t min_work_per_thread)
    : n_threads_(n_threads < 1 ? 1 : n_threads),
      min_work_per_thread_(min_work_per_thread < 1 ? 1 : min_work_per_thread) {
  threads_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) threads_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void ThreadPool::run_raw(Task task, void* ctx) {
  if (n_threads_ == 1) {
    task(ctx, 0);
    return;
  }
  task_ = task;
  ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  task(ctx, 0);
  for (int i = 0; i < kSpinIterations; ++i) {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    DIPACO_CPU_RELAX();
  }
  for (int left = pending_.load(std::memory_order_acquire); left != 0;
       left = pending_.load(std::memory_order_acquire)) {
    pending_.wait(left, std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop(int t) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; i < kSpinIterations && gen == seen; ++i) {
      DIPACO_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
    }
    while (gen == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    task_(ctx_, t);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace dipaco
