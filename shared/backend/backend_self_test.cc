#include "backend/backend_self_test.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_runtime.h"
#include "model/model.h"
#include "tensor/device_buffer.h"

namespace dipaco {
namespace {

constexpr double kTolerance = 1e-4;  // fp32 on both sides; measured ~5e-7 on an H200

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// Device copies of host vectors on one backend, read back after the ops ran.
class Buffers {
 public:
  explicit Buffers(Backend* backend) : backend_(backend) {}
  float* put(const std::vector<float>& host) {
    buffers_.emplace_back(backend_, host.size() * sizeof(float));
    sizes_.push_back(host.size());
    backend_->copy_to_device(buffers_.back().get(), host.data(), host.size() * sizeof(float));
    return buffers_.back().f32();
  }
  std::vector<float> get(size_t i) const {
    std::vector<float> out(sizes_[i]);
    backend_->copy_to_host(out.data(), buffers_[i].get(), out.size() * sizeof(float));
    return out;
  }

 private:
  Backend* backend_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<size_t> sizes_;
};

// matmul forward + backward; returns the concatenated outputs.
std::vector<float> run_matmul(Backend* be) {
  const int N = 192, C = 320, OC = 256;
  Buffers b(be);
  float* inp = b.put(random_floats(static_cast<size_t>(N) * C, 1));
  float* w = b.put(random_floats(static_cast<size_t>(OC) * C, 2));
  float* dout = b.put(random_floats(static_cast<size_t>(N) * OC, 3));
  float* out = b.put(std::vector<float>(static_cast<size_t>(N) * OC));
  float* dinp = b.put(std::vector<float>(static_cast<size_t>(N) * C));
  float* dw = b.put(std::vector<float>(static_cast<size_t>(OC) * C));
  be->matmul_forward(out, inp, w, N, C, OC);
  be->matmul_backward(dinp, dw, dout, inp, w, N, C, OC);
  std::vector<float> all;
  for (size_t i : {3, 4, 5}) {
    auto part = b.get(i);
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

constexpr int kAttB = 2, kAttT = 96, kAttH = 4, kAttKVH = 2, kAttHd = 32;

// True when the backend keeps only the softmax statistics for this shape (cuDNN took it).
bool run_attention_uses_statistics(Backend* be) {
  return be->attention_saved_floats(kAttB, kAttT, kAttH, kAttKVH, kAttHd) ==
         static_cast<size_t>(kAttB) * kAttH * kAttT;
}

std::vector<float> run_attention(Backend* be) {
  const int B = kAttB, T = kAttT, H = kAttH, KVH = kAttKVH, hd = kAttHd;
  const size_t row = static_cast<size_t>(H + 2 * KVH) * hd;
  Buffers b(be);
  float* qkv = b.put(random_floats(B * T * row, 4));
  float* dout = b.put(random_floats(static_cast<size_t>(B) * T * H * hd, 5));
  float* out = b.put(std::vector<float>(static_cast<size_t>(B) * T * H * hd));
  float* att = b.put(std::vector<float>(be->attention_saved_floats(B, T, H, KVH, hd)));
  float* dqkv = b.put(std::vector<float>(B * T * row));
  float* ws = b.put(std::vector<float>(be->attention_workspace_floats(B, T, H, KVH, hd)));
  be->attention_forward(out, att, qkv, B, T, H, KVH, hd);
  be->attention_backward(dqkv, ws, dout, qkv, out, att, B, T, H, KVH, hd);
  // out and dqkv; what attention saves for its backward is each backend's own business.
  std::vector<float> all;
  for (size_t i : {2, 4}) {
    auto part = b.get(i);
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

Result<std::vector<float>> run_model(Backend* be) {
  ModelConfig c;
  c.vocab_size = 97;
  c.d_model = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 96;
  c.max_seq_len = 32;
  const int B = 2, T = 32;
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::create(be, c, B, T));
  model->init_params(3);
  std::vector<int32_t> tokens(B * T + 1);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7 + 3) % 97);
  model->zero_grad();
  model->forward(tokens.data(), tokens.data() + 1, B, T);
  model->backward();
  return model->get_grads();
}

double bf16_matmul_tflops(int device) {
  auto created = create_cuda_backend({device, CudaMatmulPrecision::kBf16});
  if (!created.is_ok()) return 0;
  Backend* be = created->get();
  const int n = 4096;
  DeviceBuffer a(be, sizeof(float) * n * n), w(be, sizeof(float) * n * n),
      out(be, sizeof(float) * n * n);
  if (!a.ok() || !w.ok() || !out.ok()) return 0;
  be->fill_zero(a.get(), a.bytes());
  be->fill_zero(w.get(), w.bytes());
  be->matmul_forward(out.f32(), a.f32(), w.f32(), n, n, n);  // plan + warm-up
  be->synchronize();
  const int reps = 20;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) be->matmul_forward(out.f32(), a.f32(), w.f32(), n, n, n);
  be->synchronize();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * n * n * static_cast<double>(n) * reps / seconds / 1e12;
}

}  // namespace

BackendSelfTest cuda_backend_self_test(int device) {
  BackendSelfTest result;
  auto gpu = create_cuda_backend({device, CudaMatmulPrecision::kFp32});
  if (!gpu.is_ok()) {
    result.error = gpu.status().message();
    return result;
  }
  CpuBackend cpu(0);
  result.matmul_error = relative_error(run_matmul(gpu->get()), run_matmul(&cpu));
  result.attention_error = relative_error(run_attention(gpu->get()), run_attention(&cpu));
  auto gpu_grads = run_model(gpu->get());
  auto cpu_grads = run_model(&cpu);
  if (!gpu_grads.is_ok() || !cpu_grads.is_ok()) {
    result.error = (gpu_grads.is_ok() ? cpu_grads.status() : gpu_grads.status()).message();
    return result;
  }
  result.model_error = relative_error(*gpu_grads, *cpu_grads);
  char text[256];
  if (result.matmul_error > kTolerance || result.attention_error > kTolerance ||
      result.model_error > kTolerance) {
    std::snprintf(text, sizeof text,
                  "GPU %d disagrees with the CPU backend: matmul %.2e, attention %.2e, model "
                  "gradients %.2e (tolerance %.0e)",
                  device, result.matmul_error, result.attention_error, result.model_error,
                  kTolerance);
    result.error = text;
    return result;
  }
  result.bf16_tflops = bf16_matmul_tflops(device);
  auto cudnn = create_cuda_backend({device, CudaMatmulPrecision::kBf16, CudaAttention::kCudnn});
  if (cudnn.is_ok()) {
    result.cudnn_attention_used = run_attention_uses_statistics(cudnn->get());
    if (result.cudnn_attention_used) {
      result.cudnn_attention_error =
          relative_error(run_attention(cudnn->get()), run_attention(&cpu));
    }
  }
  return result;
}

}  // namespace dipaco
