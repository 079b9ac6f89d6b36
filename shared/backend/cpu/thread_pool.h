// ThreadPool: a fixed set of persistent threads for the CPU backend's fused loops.
//
// The caller's thread is worker 0, so a pool of n threads starts n - 1. Work is split
// statically (worker t always gets the same chunk of the same op), which keeps results
// deterministic and makes run() allocation-free. Idle workers spin briefly, then sleep on a
// futex, so they do not steal the cores from BLAS or from other processes between steps.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace dipaco {

class ThreadPool {
 public:
  // Jobs get one thread per min_work_per_thread units of work (see threads_for).
  static constexpr int64_t kDefaultMinWorkPerThread = 1 << 17;
  static constexpr int kChunksPerThread = 4;
  explicit ThreadPool(int n_threads, int64_t min_work_per_thread = kDefaultMinWorkPerThread);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(t) once for each worker t in [0, size()) and returns when all have finished.
  // Not re-entrant: fn must not call run() again.
  template <typename F>
  void run(F&& fn) {
    auto* ctx = &fn;
    run_raw([](void* c, int t) { (*static_cast<decltype(ctx)>(c))(t); }, ctx);
  }

  // How many threads a job of `work` units (about one float operation each) deserves: waking
  // a thread costs microseconds, so small jobs run on the caller alone.
  int threads_for(int64_t work) const {
    int64_t parts = work / min_work_per_thread_;
    if (parts < 1) return 1;
    return parts < n_threads_ ? static_cast<int>(parts) : n_threads_;
  }

  // Splits [0, n) (n items of `cost_per_item` work units each) into a fixed set of contiguous
  // chunks, kChunksPerThread per thread the work deserves, which the threads claim in turn;
  // calls fn(begin, end) once per chunk. The chunk boundaries depend only on n, the work and the
  // pool size, never on timing, so results stay deterministic; and when the OS preempts one
  // thread (a shared machine), the others take over its remaining chunks instead of waiting.
  // (More chunks re-pack an sgemm's shared operand more often, but on a busy machine the
  // balancing wins: measured 10-30% faster than one chunk per thread at load average ~2.)
  template <typename F>
  void parallel_for(int64_t n, int64_t cost_per_item, F&& fn,
                    int chunks_per_thread = kChunksPerThread) {
    if (n <= 0) return;
    int parts = threads_for(n * cost_per_item);
    if (parts == 1 || n == 1) {
      fn(int64_t{0}, n);
      return;
    }
    const int64_t per_thread = chunks_per_thread < 1 ? 1 : chunks_per_thread;
    const int64_t chunks = n < parts * per_thread ? n : parts * per_thread;
    std::atomic<int64_t> next{0};
    run([&](int t) {
      if (t >= parts) return;
      for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
           c = next.fetch_add(1, std::memory_order_relaxed)) {
        fn(n * c / chunks, n * (c + 1) / chunks);
      }
    });
  }

 private:
  using Task = void (*)(void*, int);
  void run_raw(Task task, void* ctx);
  void worker_loop(int t);

  int n_threads_;
  int64_t min_work_per_thread_;
  std::vector<std::thread> threads_;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace dipaco
