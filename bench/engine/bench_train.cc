// dipaco_bench_train: training throughput of the engine on synthetic tokens, plus the plain
// sgemm rate of this machine measured in the same process, for bench/engine/run.py to compare
// against PyTorch. Prints one JSON object on stdout.
//
//   dipaco_bench_train [--steps 10] [--warmup 2] [--vocab 8192] [--d-model 256] [--layers 4]
//                      [--heads 4] [--kv-heads 4] [--d-ff 704] [--seq 256] [--batch 8]
//                      [--threads 0]
#include <cblas.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/blas_runtime.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_features.h"
#include "train/trainer.h"

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// OpenBLAS's own multi-threaded sgemm on square matrices: the machine's practical fp32 peak.
double sgemm_gflops(int n, int threads) {
  openblas_set_num_threads(threads);
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
              0.0f, c.data(), n);
  int reps = 0;
  double start = now(), elapsed = 0;
  while (elapsed < 1.5) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    ++reps;
    elapsed = now() - start;
  }
  return 2.0 * n * n * static_cast<double>(n) * reps / elapsed / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  dipaco::ensure_fast_blas_kernels(argv);
  dipaco::ModelConfig model;  // the reference config
  dipaco::TrainOptions train;
  train.lr = 3e-4;
  train.warmup_steps = 0;
  train.steps = 1000000;
  int steps = 10, warmup = 2, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--steps")
      steps = v;
    else if (k == "--warmup")
      warmup = v;
    else if (k == "--vocab")
      model.vocab_size = v;
    else if (k == "--d-model")
      model.d_model = v;
    else if (k == "--layers")
      model.n_layers = v;
    else if (k == "--heads")
      model.n_heads = v;
    else if (k == "--kv-heads")
      model.n_kv_heads = v;
    else if (k == "--d-ff")
      model.d_ff = v;
    else if (k == "--seq")
      model.max_seq_len = train.seq_len = v;
    else if (k == "--batch")
      train.batch_size = v;
    else if (k == "--threads")
      threads = v;
    else {
      std::fprintf(stderr, "dipaco_bench_train: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (threads <= 0) threads = dipaco::cpu_features().logical_cores;
  const double sgemm = sgemm_gflops(2048, threads);

  dipaco::CpuBackend backend(threads);
  auto trainer = dipaco::Trainer::create(&backend, model, train);
  if (!trainer.is_ok()) {
    std::fprintf(stderr, "dipaco_bench_train: %s\n", trainer.status().message().c_str());
    return 1;
  }
  dipaco::SyntheticBatchSource source(train.batch_size, train.seq_len, model.vocab_size, 1);
  double first_loss = 0, last_loss = 0, start = 0;
  std::vector<double> step_seconds;
  for (int i = 0; i < warmup + steps; ++i) {
    double t0 = now();
    auto s = (*trainer)->train_step(source);
    if (!s.is_ok()) {
      std::fprintf(stderr, "dipaco_bench_train: %s\n", s.status().message().c_str());
      return 1;
    }
    if (i == 0) first_loss = s->loss;
    last_loss = s->loss;
    if (i == warmup) start = t0;
    if (i >= warmup) step_seconds.push_back(now() - t0);
  }
  const double elapsed = now() - start;
  const double tokens = static_cast<double>(steps) * train.batch_size * train.seq_len;

  const dipaco::Model& m = (*trainer)->model();
  const double flops_per_token = dipaco::training_flops_per_token(model, train.seq_len);
  const double gflops = flops_per_token * tokens / elapsed / 1e9;
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "{\"engine\": \"dipaco\", \"backend\": \"%s\", \"threads\": %d, \"params\": %zu, "
      "\"steps\": %d, \"tokens_per_s\": %.1f, \"step_ms\": %.1f, \"model_gflops\": %.1f, "
      "\"flops_per_token\": %.0f, \"sgemm_gflops\": %.1f, \"peak_rss_mib\": %.1f, "
      "\"first_loss\": %.4f, \"last_loss\": %.4f}\n",
      backend.name().c_str(), threads, m.num_params(), steps, tokens / elapsed,
      1000.0 * elapsed / steps, gflops, flops_per_token, sgemm, usage.ru_maxrss / 1024.0,
      first_loss, last_loss);
  return 0;
}
