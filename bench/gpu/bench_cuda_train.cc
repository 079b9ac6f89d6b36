// dipaco_bench_cuda_train: training throughput of the CUDA backend on synthetic tokens, in
// tokens/s and MFU (model FLOPs / the GPU's dense bf16 peak). Prints one JSON object per line;
// bench/gpu/run.sh compares it with PyTorch on the same GPU in the same run.
//
//   dipaco_bench_cuda_train [--steps 20] [--warmup 3] [--precision bf16|tf32|fp32]
//       [--peak-tflops 989] [--vocab 32000] [--d-model 1024] [--layers 12] [--heads 16]
//       [--kv-heads 16] [--d-ff 2816] [--seq 1024] [--batch 8] [--device 0]
//       [--weight-copies 1|0]   (0: bf16 matmuls convert every weight again, as before the
//                                bf16 compute copies)
//       [--attention gemm|kernels|cudnn]   (default gemm: the attention path to measure)
//
// gpu_mem_gib is what the process took on the GPU from before the model's allocation to the end
// of the run (free memory before minus after). The backend keeps what it allocates, so this is
// its peak; unlike PyTorch's peak_mem_gib it includes cuBLASLt's and cuDNN's workspaces.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda_runtime.h"
#include "train/trainer.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  dipaco::ModelConfig model;
  model.vocab_size = 32000;
  model.d_model = 1024;
  model.n_layers = 12;
  model.n_heads = 16;
  model.n_kv_heads = 16;
  model.d_ff = 2816;
  model.max_seq_len = 1024;
  dipaco::TrainOptions train;
  train.lr = 3e-4;
  train.warmup_steps = 0;
  train.steps = 1000000;
  train.seq_len = 1024;
  train.batch_size = 8;
  int steps = 20, warmup = 3;
  double peak_tflops = 989.0;  // H100/H200 SXM dense bf16
  dipaco::CudaBackendOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string value = argv[i + 1];
    int v = std::atoi(value.c_str());
    if (k == "--steps") {
      steps = v;
    } else if (k == "--warmup") {
      warmup = v;
    } else if (k == "--precision") {
      auto p = dipaco::parse_cuda_precision(value);
      if (!p.is_ok()) {
        std::fprintf(stderr, "dipaco_bench_cuda_train: %s\n", p.status().message().c_str());
        return 2;
      }
      options.precision = *p;
    } else if (k == "--peak-tflops") {
      peak_tflops = std::atof(value.c_str());
    } else if (k == "--device") {
      options.device = v;
    } else if (k == "--attention") {
      auto a = dipaco::parse_cuda_attention(value);
      if (!a.is_ok()) {
        std::fprintf(stderr, "dipaco_bench_cuda_train: %s\n", a.status().message().c_str());
        return 2;
      }
      options.attention = *a;
    } else if (k == "--weight-copies") {
      options.bf16_weight_copies = v != 0;
    } else if (k == "--vocab") {
      model.vocab_size = v;
    } else if (k == "--d-model") {
      model.d_model = v;
    } else if (k == "--layers") {
      model.n_layers = v;
    } else if (k == "--heads") {
      model.n_heads = v;
    } else if (k == "--kv-heads") {
      model.n_kv_heads = v;
    } else if (k == "--d-ff") {
      model.d_ff = v;
    } else if (k == "--seq") {
      model.max_seq_len = train.seq_len = v;
    } else if (k == "--batch") {
      train.batch_size = v;
    } else {
      std::fprintf(stderr, "dipaco_bench_cuda_train: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto backend = dipaco::create_cuda_backend(options);
  if (!backend.is_ok()) {
    std::printf("skipped: no CUDA device (%s)\n", backend.status().message().c_str());
    return 0;
  }
  const size_t free_before = (*backend)->available_memory_bytes();
  auto trainer = dipaco::Trainer::create(backend->get(), model, train);
  if (!trainer.is_ok()) {
    std::fprintf(stderr, "dipaco_bench_cuda_train: %s\n", trainer.status().message().c_str());
    return 1;
  }
  dipaco::SyntheticBatchSource source(train.batch_size, train.seq_len, model.vocab_size, 1);
  double first_loss = 0, last_loss = 0, start = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      (*backend)->synchronize();
      start = now();
    }
    auto s = (*trainer)->train_step(source);  // returns after the loss reached the host
    if (!s.is_ok()) {
      std::fprintf(stderr, "dipaco_bench_cuda_train: %s\n", s.status().message().c_str());
      return 1;
    }
    if (i == 0) first_loss = s->loss;
    last_loss = s->loss;
  }
  (*backend)->synchronize();
  const double elapsed = now() - start;
  const double gpu_mem_gib =
      static_cast<double>(free_before - (*backend)->available_memory_bytes()) / (1 << 30);
  const double tokens = static_cast<double>(steps) * train.batch_size * train.seq_len;
  const dipaco::Model& m = (*trainer)->model();
  const double flops_per_token = dipaco::training_flops_per_token(model, train.seq_len);
  const double tflops = flops_per_token * tokens / elapsed / 1e12;
  std::printf(
      "{\"engine\": \"dipaco\", \"backend\": \"%s\", \"weight_copies\": %s, \"params\": %zu, "
      "\"batch\": %d, \"seq\": %d, "
      "\"steps\": %d, \"tokens_per_s\": %.1f, \"step_ms\": %.2f, \"model_tflops\": %.2f, "
      "\"mfu\": %.4f, \"gpu_mem_gib\": %.2f, \"first_loss\": %.4f, \"last_loss\": %.4f}\n",
      (*backend)->name().c_str(), options.bf16_weight_copies ? "true" : "false", m.num_params(),
      train.batch_size, train.seq_len, steps, tokens / elapsed, 1000.0 * elapsed / steps, tflops,
      tflops / peak_tflops, gpu_mem_gib, first_loss, last_loss);
  return 0;
}
