#!/usr/bin/env bash
# The GPU checks in one go, on a host with an NVIDIA GPU, its driver and the CUDA 13 libraries:
# the CUDA tests (every op against the CPU backend, a model's gradients, a training curve,
# cuDNN attention, the NCCL island, outer-gradient encoding), with a --with-run bundle also
# `dipaco doctor`, the README's main job and a served run (served_run.sh), then
# training throughput of dipaco's CUDA backend and of PyTorch on the same GPU, same model.
#
#   bash bench/gpu/run.sh [ARCHIVE from tools/gpu-bundle.sh] [--quick]
#
# Prints everything; a failing test makes the exit status non-zero but the benchmark still runs.
set -uo pipefail
archive="${1:-.gpu/dipaco-gpu.tar.xz}"
dir="$(mktemp -d)"
tar -C "$dir" -xJf "$archive" || exit 1
libdirs=$(find /usr/local /usr/lib /opt -xdev \( -name 'libcudnn.so.9' -o -name 'libnccl.so.2' \
  -o -name 'libcublasLt.so.13' -o -name 'libcudart.so.13' \) -print0 2>/dev/null |
  xargs -0 -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$dir/lib:$libdirs"
export DIPACO_CUDA_PLUGIN="$dir/lib/libdipaco_cuda.so"
echo "== host"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
echo "CUDA libraries from: $libdirs"
status=0
summary=""
# Runs one Qt Test binary, keeps its Totals line and the names of the functions that failed.
gpu_test() {
  local log="$dir/$1.log"
  "$dir/bin/$1" 2>&1 | tee "$log"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  summary+="$1: $(grep -m1 '^Totals:' "$log" || echo 'no Totals line (crashed?)')"$'\n'
  summary+="$(grep '^FAIL!' "$log" | cut -c1-200)"
  [[ "${summary: -1}" == $'\n' ]] || summary+=$'\n'
}
trap 'echo "== summary"; printf "%s" "$summary"' EXIT
echo "== tests"
for t in test_cuda_smoke test_cuda_backend test_cudnn_sdpa_graphs test_cuda_island \
  test_cuda_quantize; do
  gpu_test "$t"
done
if [[ -x "$dir/bin/dipaco" ]]; then
  echo "== dipaco doctor"
  "$dir/bin/dipaco" doctor || { status=1; summary+="dipaco doctor: FAILED"$'\n'; }
  echo "== the main job (resources/runs/brown-main.toml) with GPU workers"
  SECONDS=0
  rm -rf /tmp/brown-gpu  # a second run.sh on this host must not time a resume of the first
  (cd "$dir/work" && "$dir/bin/dipaco" run resources/runs/brown-main.toml --backend cuda \
    --dir /tmp/brown-gpu) || { status=1; summary+="main job: FAILED"$'\n'; }
  echo "wall: ${SECONDS} s"
  summary+="main job: ${SECONDS} s wall"$'\n'
  cat /tmp/brown-gpu/summary.md 2>/dev/null
  echo "== a served run: dipaco serve + two dipaco work processes on this GPU over gRPC (loopback)"
  SECONDS=0
  bash "$dir/scripts/served_run.sh" "$dir/bin/dipaco" "$dir/work" 4 ||
    { status=1; summary+="served run: FAILED"$'\n'; }
  summary+="served run (4 outer steps): ${SECONDS} s wall"$'\n'
  [[ "${2:-}" == "--quick" ]] && exit $status
fi
echo "== benchmark: tokens/s and MFU (dense bf16 peak 989 TFLOP/s), dipaco vs PyTorch, same GPU"
py=$(command -v python3)
bench() {
  local label="$1"
  shift
  echo "-- $label: $*"
  summary+="-- $label"$'\n'
  echo "   (bf16 with cuDNN fused attention, the training default in bf16)"
  measure "$dir/bin/dipaco_bench_cuda_train" --precision bf16 --attention cudnn "$@"
  echo "   (bf16 with the cuBLASLt attention path)"
  measure "$dir/bin/dipaco_bench_cuda_train" --precision bf16 --attention gemm "$@"
  echo "   (the same, converting every weight in every product, as before the bf16 weight copies)"
  measure "$dir/bin/dipaco_bench_cuda_train" --precision bf16 --attention gemm --weight-copies 0 "$@"
  measure "$dir/bin/dipaco_bench_cuda_train" --precision tf32 --attention gemm "$@"
  measure "$py" "$dir/scripts/torch_gpu_train.py" "$@"
}
# Runs one benchmark command and adds its last line (the JSON result) to the summary.
measure() {
  local out
  out=$("$@" 2>&1) || status=1
  printf '%s\n' "$out"
  summary+="$(printf '%s\n' "$out" | tail -n1 | cut -c1-400)"$'\n'
}
# The CPU bench's reference model (7.4M parameters), then a GPU-sized one (~220M).
bench "reference (bench/engine) config" --vocab 8192 --d-model 256 --layers 4 --heads 4 \
  --kv-heads 4 --d-ff 704 --seq 256 --batch 8
bench "GPU config" --vocab 32000 --d-model 1024 --layers 12 --heads 16 --kv-heads 16 \
  --d-ff 2816 --seq 1024 --batch 8
# The same model and tokens per step at 4x the context, where attention's T x T grows 16x.
bench "GPU config, long context" --vocab 32000 --d-model 1024 --layers 12 --heads 16 \
  --kv-heads 16 --d-ff 2816 --seq 4096 --batch 2
exit $status
