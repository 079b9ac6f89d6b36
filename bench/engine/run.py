#!/usr/bin/python3
"""Training throughput: dipaco's CPU engine vs PyTorch CPU, same model, same machine, one run.

  /usr/bin/python3 bench/engine/run.py [--build build-engine] [--steps 10] [--warmup 2]
                                       [model options passed to both, e.g. --d-model 512]

Runs build/bench/engine/dipaco_bench_train (which also measures a plain 2048^3 sgemm with all
cores) and bench/engine/torch_train.py (Debian's python3-torch, OPENBLAS_CORETYPE set to the
kernel family dipaco uses, so both get the same BLAS kernels; once as installed and once with
OMP_WAIT_POLICY=PASSIVE, keeping the faster), then prints tokens/s of each,
their ratio, dipaco's achieved model GFLOP/s against the sgemm rate, and peak RSS of each.
Timings on a shared machine vary; the ratio is what to compare. Not part of ctest.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build-engine"))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2,
                   help="alternate the two engines this many times and keep each one's best run "
                        "(the machine may be shared)")
    a, model_args = p.parse_known_args()
    exe = os.path.join(a.build, "bench", "engine", "dipaco_bench_train")
    if not os.path.exists(exe):
        sys.exit(f"run.py: {exe} not found; build the dipaco_bench_train target first")
    common = ["--steps", str(a.steps), "--warmup", str(a.warmup)] + model_args
    env = dict(os.environ)
    load = os.getloadavg()[0]
    dipaco = torch = None
    torch_runs = []
    for _ in range(max(1, a.rounds)):
        d = run_json([exe] + common, env)
        core = d["backend"].split("OpenBLAS ")[-1].rstrip(")")
        env.setdefault("OPENBLAS_CORETYPE", core)
        if dipaco is None or d["tokens_per_s"] > dipaco["tokens_per_s"]:
            dipaco = d
        # PyTorch as installed, and with OpenMP's idle threads sleeping instead of spinning
        # (its spinning workers fight OpenBLAS's threads for the cores, badly so on a busy
        # machine). The better of the two is the peer.
        for wait_policy in ("", "PASSIVE"):
            torch_env = dict(env)
            if wait_policy:
                torch_env["OMP_WAIT_POLICY"] = wait_policy
            t = run_json(["/usr/bin/python3", os.path.join(HERE, "torch_train.py")] + common,
                         torch_env)
            t["omp_wait_policy"] = wait_policy or "default"
            torch_runs.append(t)
            if torch is None or t["tokens_per_s"] > torch["tokens_per_s"]:
                torch = t

    ratio = dipaco["tokens_per_s"] / torch["tokens_per_s"]
    torch_gflops = dipaco["flops_per_token"] * torch["tokens_per_s"] / 1e9
    print(f"model: {dipaco['params']:,} parameters, {a.steps} timed steps after {a.warmup} warm-up, "
          f"best of {max(1, a.rounds)} alternating rounds; load average at start {load:.2f}")
    print(f"sgemm (OpenBLAS {core}, 2048^3, {dipaco['threads']} threads): "
          f"{dipaco['sgemm_gflops']:.1f} GFLOP/s")
    print(f"{'':10} {'tokens/s':>10} {'step ms':>9} {'GFLOP/s':>9} {'% sgemm':>8} {'peak RSS':>10}")
    for name, r, gf in (("dipaco", dipaco, dipaco["model_gflops"]), ("pytorch", torch, torch_gflops)):
        print(f"{name:10} {r['tokens_per_s']:>10.0f} {r['step_ms']:>9.1f} {gf:>9.1f} "
              f"{100 * gf / dipaco['sgemm_gflops']:>7.0f}% {r['peak_rss_mib']:>7.0f} MiB")
    print(f"ratio dipaco / pytorch: {ratio:.2f}x tokens/s, "
          f"{torch['peak_rss_mib'] / dipaco['peak_rss_mib']:.1f}x less memory")
    print(f"dipaco backend: {dipaco['backend']}")
    print(f"pytorch {torch['torch']}: {torch['threads']} threads, OMP_WAIT_POLICY "
          f"{torch['omp_wait_policy']}, BLAS "
          f"{', '.join(torch['blas']) or 'none found'} (OpenBLAS core {torch['openblas_core'] or '?'})")
    print("pytorch runs (tokens/s): " + ", ".join(
        f"{t['tokens_per_s']:.0f} (OMP_WAIT_POLICY {t['omp_wait_policy']})" for t in torch_runs))
    print(f"loss after the run: dipaco {dipaco['last_loss']}, pytorch {torch['last_loss']} "
          f"(first {dipaco['first_loss']} / {torch['first_loss']})")
    print(f"flops per token (6 x matmul weights + 6 x layers x seq x d_model): "
          f"{dipaco['flops_per_token']:,.0f}")


if __name__ == "__main__":
    main()
