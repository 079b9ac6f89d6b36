#!/usr/bin/env bash
# Packs what the GPU checks need into one archive, for a GPU host that has the NVIDIA driver
# and CUDA 13 libraries (cudart, cuBLASLt, cuDNN 9, NCCL) but not dipaco's build dependencies:
# the CUDA test and bench binaries, libdipaco_cuda.so, their non-system shared libraries
# (Qt, OpenBLAS, ...) and the scripts. On the GPU host: bash bench/gpu/run.sh ARCHIVE.
#
#   bash tools/gpu-bundle.sh [BUILD_DIR] [OUT.tar.xz] [--with-run]
#
# --with-run adds the dipaco CLI, resources/runs and the prepared Brown token files
# (data/brown/tokens, from `bash tools/bootstrap.sh main` or `dipaco data`), so that run.sh also
# runs `dipaco doctor`, the main DiPaCo job with GPU workers and a served run (dipaco serve and
# two dipaco work processes over gRPC).
set -euo pipefail
build="${1:-build}"
out="${2:-.gpu/dipaco-gpu.tar.xz}"
with_run="${3:-}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
bins=(tests/cuda/test_cuda_smoke tests/cuda/test_cuda_backend tests/cuda/test_cudnn_sdpa_graphs
  tests/cuda/test_cuda_island tests/cuda/test_cuda_quantize
  bench/gpu/dipaco_bench_cuda_train)
if [[ "$with_run" == "--with-run" ]]; then
  bins+=(app/cli/dipaco)
  mkdir -p "$stage/work/data/brown/tokens" "$stage/work/resources"
  cp -r "$repo/resources/runs" "$stage/work/resources/"
  cp "$repo"/data/brown/tokens/{train.tok,val.tok,meta.json} "$stage/work/data/brown/tokens/"
  cp "$repo/data/brown/tokenizer.model" "$stage/work/data/brown/"
fi
for b in "${bins[@]}"; do
  [[ -x "$build/$b" ]] || { echo "gpu-bundle: $build/$b is not built" >&2; exit 1; }
  cp "$build/$b" "$stage/bin/"
done
cp "$build/shared/backend/cuda/libdipaco_cuda.so" "$stage/lib/"
# Shared libraries of the binaries, except the C runtime (the host's is newer) and CUDA's own
# (the host's match its driver).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libstdc\+\+|libgcc_s|libdl|libpthread|librt|libcuda|libcudart|libcublas|libcudnn|libnccl)'
for f in "$stage"/bin/* "$stage/lib/libdipaco_cuda.so"; do
  ldd "$f" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
    if [[ ! "$name" =~ $skip ]]; then cp -nL "$path" "$stage/lib/$name"; fi
  done
done
mkdir -p "$stage/scripts"
cp "$repo/bench/gpu/torch_gpu_train.py" "$repo/bench/gpu/served_run.sh" "$stage/scripts/"
cp "$repo/bench/engine/torch_train.py" "$stage/scripts/"
mkdir -p "$(dirname "$out")"
tar -C "$stage" -cJf "$out" .
echo "gpu-bundle: $out ($(du -h "$out" | cut -f1))"
