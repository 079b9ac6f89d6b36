// Outer gradients on the GPU: θ_start − θ_end, and one round of error-feedback encoding into
// the wire layouts of compress/wire_dtype.h (CPU twin: cpu_outer_gradient.cc, which runs the
// host codec, compress/codec.cc and compress/error_feedback.cc).
//
// The payload and the residual are bit for bit the host's: every value goes through the same
// float operations in the same order, each written as an explicitly rounded intrinsic
// (__fadd_rn, __fmul_rn, ...) so that nvcc cannot contract a multiply and an add into an FMA
// the host does not do; the scales are IEEE divisions, rounding to an integer is the host's
// 1.5·2^23 trick (or rint, ties to even, where the host uses nearbyint), and the plugin is
// built without --use_fast_math, so subnormals are kept as on the host.
//
// Three launches, over chunks of kQuantChunk values (the wire's scale chunks):
//   1. chunk_amax_kernel, one block per chunk: c = x + residual, and the largest |c| bit
//      pattern of the chunk (for floats the pattern of |c| orders like the value, and inf and
//      NaN sort above every finite value, as in codec.cc's max_abs_bits);
//   2. global_amax_kernel, one block: the largest of those, which decides whether the round
//      can be encoded at all (no atomics: a fixed-order reduction like every other kernel);
//   3. encode_kernel<dtype>, one block per chunk: returns at once when a value cannot be
//      encoded (payload and residual untouched); else quantizes, packs, and sets
//      residual = c - decode(payload) from the very values it wrote.
// The host then reads the global maximum (4 bytes) to answer whether the round was encoded.
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.cuh"
#include "compress/wire_dtype.h"

namespace dipaco {

namespace {

constexpr int kThreads = 256;
constexpr int kChunk = static_cast<int>(kQuantChunk);
static_assert(kChunk % 2 == 0, "an int4 byte must not span two chunks");

// As compress/codec.cc: the bit patterns of |x| at which encoding refuses a value.
constexpr int32_t kAbsMask = 0x7fffffff;
constexpr int32_t kInfBits = 0x7f800000;
constexpr int32_t kBf16OverflowBits = 0x7f7f8000;  // rounds to infinity in bf16
constexpr float kRoundMagic = 12582912.0f;         // 1.5 · 2^23

__device__ inline int32_t warp_max_int(int32_t v) {
  for (int offset = cuda::kWarp / 2; offset > 0; offset /= 2)
    v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Max over the block (blockDim.x a multiple of 32); every thread gets it. shared: 32 ints.
__device__ inline int32_t block_max_int(int32_t v, int32_t* shared) {
  const int lane = threadIdx.x % cuda::kWarp;
  const int warp = threadIdx.x / cuda::kWarp;
  const int warps = blockDim.x / cuda::kWarp;
  v = warp_max_int(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0;
  return warp_max_int(v);
}

// The value the host codec encodes: x + residual (x alone without error feedback).
__device__ inline float corrected(const float* x, const float* residual, size_t i) {
  return residual != nullptr ? __fadd_rn(x[i], residual[i]) : x[i];
}

// Values in the chunk that starts at value `begin`: kChunk, or fewer for the last one.
__device__ inline int chunk_length(size_t begin, size_t count) {
  return count - begin < static_cast<size_t>(kChunk) ? static_cast<int>(count - begin) : kChunk;
}

__device__ inline bool exponent_is(float v, int32_t e) {
  return ((__float_as_int(v) >> 23) & 0xff) == e;
}
__device__ inline bool is_finite(float v) {
  return !exponent_is(v, 0xff);
}
__device__ inline bool is_normal(float v) {
  return !exponent_is(v, 0) && !exponent_is(v, 0xff);
}

__global__ void subtract_kernel(float* out, const float* a, const float* b, size_t count) {
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __fsub_rn(a[i], b[i]);
}

__global__ void chunk_amax_kernel(int32_t* chunk_amax, const float* x, const float* residual,
                                  size_t count) {
  __shared__ int32_t shared[cuda::kWarp];
  const size_t begin = static_cast<size_t>(blockIdx.x) * kChunk;
  const int len = chunk_length(begin, count);
  int32_t m = 0;
  for (int i = threadIdx.x; i < len; i += blockDim.x)
    m = max(m, __float_as_int(corrected(x, residual, begin + i)) & kAbsMask);
  m = block_max_int(m, shared);
  if (threadIdx.x == 0) chunk_amax[blockIdx.x] = m;
}

__global__ void global_amax_kernel(int32_t* amax, const int32_t* chunk_amax, size_t chunks) {
  __shared__ int32_t shared[cuda::kWarp];
  int32_t m = 0;
  for (size_t c = threadIdx.x; c < chunks; c += blockDim.x) m = max(m, chunk_amax[c]);
  m = block_max_int(m, shared);
  if (threadIdx.x == 0) *amax = m;
}

// codec.cc's quantize_chunk for one chunk whose max |c| is amax: the scale, and how each value
// becomes an integer in [-qmax, qmax].
struct ChunkQuantizer {
  float qmax, scale, inv;
  bool zero, fast;

  __device__ ChunkQuantizer(float amax, float q) : qmax(q) {
    zero = amax == 0.0f;
    scale = zero ? 0.0f : __fdiv_rn(amax, qmax);
    inv = zero ? 0.0f : __fdiv_rn(qmax, amax);
    fast = !zero && is_finite(inv) && scale > 0.0f && is_normal(scale);
  }

  __device__ int32_t quantize(float c) const {
    if (zero) return 0;
    if (fast)
      return static_cast<int32_t>(
          __fsub_rn(__fadd_rn(__fmul_rn(c, inv), kRoundMagic), kRoundMagic));
    // A subnormal scale: divide by it in double, round to nearest even, clamp (the host's
    // nearbyint and std::clamp).
    double s = scale;
    double v = s > 0.0 ? rint(__ddiv_rn(static_cast<double>(c), s)) : 0.0;
    const double lim = qmax;
    v = v < -lim ? -lim : (lim < v ? lim : v);
    return static_cast<int32_t>(v);
  }

  // What the receiver decodes from q (codec.cc's decode_int8 / decode_int4).
  __device__ float decode(int32_t q) const { return __fmul_rn(static_cast<float>(q), scale); }
};

template <WireDtype kDtype>
__global__ void encode_kernel(uint8_t* payload, float* residual, const float* x, size_t count,
                              const int32_t* chunk_amax, const int32_t* amax, int32_t limit) {
  if (*amax >= limit) return;  // refused: write nothing anywhere
  const size_t begin = static_cast<size_t>(blockIdx.x) * kChunk;
  const int len = chunk_length(begin, count);

  if constexpr (kDtype == WireDtype::kFp32) {
    float* out = reinterpret_cast<float*>(payload) + begin;
    for (int i = threadIdx.x; i < len; i += blockDim.x) out[i] = x[begin + i];
  } else if constexpr (kDtype == WireDtype::kBf16) {
    uint16_t* out = reinterpret_cast<uint16_t*>(payload) + begin;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
      const float c = corrected(x, residual, begin + i);
      // Round to nearest even (compress/bf16.h without its NaN branch: c is finite here).
      const uint32_t bits = __float_as_uint(c);
      const uint32_t h = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
      out[i] = static_cast<uint16_t>(h);
      if (residual != nullptr) residual[begin + i] = __fsub_rn(c, __uint_as_float(h << 16));
    }
  } else {
    constexpr float kQmax = kDtype == WireDtype::kInt8 ? 127.0f : 7.0f;
    const ChunkQuantizer quant(__int_as_float(chunk_amax[blockIdx.x]), kQmax);
    if (threadIdx.x == 0) reinterpret_cast<float*>(payload)[blockIdx.x] = quant.scale;
    uint8_t* values = payload + 4 * static_cast<size_t>(gridDim.x);  // after the chunks' scales
    if constexpr (kDtype == WireDtype::kInt8) {
      int8_t* out = reinterpret_cast<int8_t*>(values) + begin;
      for (int i = threadIdx.x; i < len; i += blockDim.x) {
        const float c = corrected(x, residual, begin + i);
        const int32_t q = quant.quantize(c);
        out[i] = static_cast<int8_t>(q);
        if (residual != nullptr) residual[begin + i] = __fsub_rn(c, quant.decode(q));
      }
    } else {
      // Byte p holds value 2p in its low nibble and 2p + 1 in its high one; an odd chunk's
      // last high nibble is 0.
      uint8_t* out = values + begin / 2;
      const int pairs = (len + 1) / 2;
      for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        const size_t i0 = begin + 2 * p;
        const float c0 = corrected(x, residual, i0);
        const int32_t q0 = quant.quantize(c0);
        int32_t q1 = 0;
        const bool has_second = 2 * p + 1 < len;
        if (has_second) {
          const float c1 = corrected(x, residual, i0 + 1);
          q1 = quant.quantize(c1);
          if (residual != nullptr) residual[i0 + 1] = __fsub_rn(c1, quant.decode(q1));
        }
        out[p] = static_cast<uint8_t>((q0 & 0xf) | ((q1 & 0xf) << 4));
        if (residual != nullptr) residual[i0] = __fsub_rn(c0, quant.decode(q0));
      }
    }
  }
}

}  // namespace

void CudaBackend::subtract(float* out, const float* a, const float* b, size_t count) {
  use_device();
  if (count == 0) return;
  subtract_kernel<<<cuda::grid_for(count, kThreads), kThreads, 0, stream_>>>(out, a, b, count);
  DIPACO_CUDA_CHECK_LAUNCH();
}

size_t CudaBackend::error_feedback_workspace_bytes(size_t count) const {
  return (quant_chunks(count) + 1) * sizeof(int32_t);  // each chunk's max |c|, then the max
}

bool CudaBackend::error_feedback_encode(uint8_t* payload, float* residual, void* workspace,
                                        const float* x, size_t count, WireDtype dtype) {
  use_device();
  if (count == 0) return true;
  if (dtype == WireDtype::kFp32) residual = nullptr;  // fp32 sends x itself
  const size_t chunks = quant_chunks(count);
  int32_t* chunk_amax = static_cast<int32_t*>(workspace);
  int32_t* amax = chunk_amax + chunks;
  const auto grid = static_cast<unsigned>(chunks);
  chunk_amax_kernel<<<grid, kThreads, 0, stream_>>>(chunk_amax, x, residual, count);
  DIPACO_CUDA_CHECK_LAUNCH();
  global_amax_kernel<<<1, 1024, 0, stream_>>>(amax, chunk_amax, chunks);
  DIPACO_CUDA_CHECK_LAUNCH();
  const int32_t limit = dtype == WireDtype::kBf16 ? kBf16OverflowBits : kInfBits;
  using EncodeKernel =
      void (*)(uint8_t*, float*, const float*, size_t, const int32_t*, const int32_t*, int32_t);
  const EncodeKernel encode = dtype == WireDtype::kFp32   ? encode_kernel<WireDtype::kFp32>
                              : dtype == WireDtype::kBf16 ? encode_kernel<WireDtype::kBf16>
                              : dtype == WireDtype::kInt8 ? encode_kernel<WireDtype::kInt8>
                                                          : encode_kernel<WireDtype::kInt4>;
  encode<<<grid, kThreads, 0, stream_>>>(payload, residual, x, count, chunk_amax, amax, limit);
  DIPACO_CUDA_CHECK_LAUNCH();
  int32_t host_amax = 0;
  DIPACO_CUDA_CHECK(
      cudaMemcpyAsync(&host_amax, amax, sizeof(host_amax), cudaMemcpyDeviceToHost, stream_));
  DIPACO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return host_amax < limit;
}

}  // namespace dipaco
