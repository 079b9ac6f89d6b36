#!/usr/bin/env python3
"""Bytes on the wire per outer step of a DiPaCo grid versus data parallel for the same tokens
(issue #6, benchmark 2: target >= 1000x less with int8/4-bit on the default grid).

Bytes per outer step do not depend on H (every task fetches its path's modules and pushes one
outer gradient per module, whatever H is); data parallel's bytes grow with H (an fp32 gradient
both ways on every inner step). So the bench trains the grid for a few outer steps at a small H,
takes the bytes each step really moved from the run's metrics.jsonl, and compares them with data
parallel at the H asked for (DiLoCo's H = 500 by default). It prints the analytic per-task
estimate beside the measurement, and the fp32-downlink figure for comparison.

    /usr/bin/python3 bench/dipaco/wire_ratio.py --build build \\
        [--grid resources/runs/brown-main.toml] [--up int4] [--down int8] [--h 500] \\
        [--outer-steps 4] [--measure-h 2] [--seed runs/brown-dipaco-2x2] [--work bench-runs]

--seed copies base.safetensors, router.safetensors, routing.json and shards/ from a finished
run of the same grid, so the measurement skips the base model and routing.
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

QUANT_CHUNK = 2048


def encoded_size(dtype, n):
    chunks = (n + QUANT_CHUNK - 1) // QUANT_CHUNK
    return {"fp32": 4 * n, "bf16": 2 * n, "int8": 4 * chunks + n,
            "int4": 4 * chunks + (n + 1) // 2}[dtype]


def module_params(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return int(header["__metadata__"]["num_params"])


def set_key(text, table, key, value):
    """Sets `key = value` in [table] of a TOML text (adds the key when missing)."""
    lines = text.split("\n")
    start = next(i for i, l in enumerate(lines) if l.strip() == "[%s]" % table)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if re.match(r"^%s\s*=" % key, lines[i]):
            lines[i] = "%s = %s" % (key, value)
            return "\n".join(lines)
    lines.insert(start + 1, "%s = %s" % (key, value))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--grid", default="resources/runs/brown-main.toml")
    ap.add_argument("--up", default="int4")
    ap.add_argument("--down", default="int8")
    ap.add_argument("--h", type=int, default=500)
    ap.add_argument("--outer-steps", type=int, default=4)
    ap.add_argument("--measure-h", type=int, default=2)
    ap.add_argument("--seed", default="")
    ap.add_argument("--work", default="bench-runs")
    args = ap.parse_args()
    dipaco = os.path.abspath(os.path.join(args.build, "app/cli/dipaco"))
    name = "wire-%s-up-%s-down" % (args.up, args.down)
    run_dir = os.path.join(args.work, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    if args.seed:
        for f in ("base.safetensors", "router.safetensors", "routing.json"):
            shutil.copy(os.path.join(args.seed, f), run_dir)
        shutil.copytree(os.path.join(args.seed, "shards"), os.path.join(run_dir, "shards"))
    with open(args.grid) as f:
        text = f.read()
    for table, key, value in [("run", "dir", '"%s"' % run_dir),
                              ("run", "outer_steps", args.outer_steps),
                              ("run", "inner_steps", args.measure_h),
                              ("compression", "dtype", '"%s"' % args.up),
                              ("compression", "downlink", '"%s"' % args.down),
                              ("eval", "every", 0)]:
        text = set_key(text, table, key, value)
    grid_file = os.path.join(args.work, name + ".toml")
    with open(grid_file, "w") as f:
        f.write(text)
    with open(os.path.join(args.work, name + ".log"), "w") as log:
        if subprocess.call([dipaco, "run", grid_file], stdout=log, stderr=subprocess.STDOUT):
            sys.exit("dipaco run failed; see %s" % log.name)

    with open(os.path.join(run_dir, "run.json")) as f:
        run = json.load(f)
    steps = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "bytes_up" in m:
                steps.append(m)
    paths = run["paths"]
    tasks = len(paths)  # one shard per path on the default grid
    sizes = {}
    for p in paths:
        for m in p["modules"]:
            sizes[m] = module_params(os.path.join(run_dir, "modules", "m%d" % m, "v0.safetensors"))
    params_per_path = sum(sizes[m] for m in paths[0]["modules"])
    dp_step = tasks * args.h * 2 * params_per_path * 4
    assert steps[0]["data_parallel_bytes"] == tasks * args.measure_h * 2 * params_per_path * 4

    def per_task(up, down):
        return sum(encoded_size(up, sizes[m]) + encoded_size(down, sizes[m])
                   for p in paths for m in p["modules"])

    analytic = per_task(args.up, args.down)
    analytic_fp32_down = per_task(args.up, "fp32")
    last = steps[-1]
    measured_last = last["bytes_up"] + last["bytes_down"]
    measured_all = sum(s["bytes_up"] + s["bytes_down"] for s in steps)
    mib = lambda b: "%.1f MiB" % (b / 2**20)
    print("grid %s: %d paths, %d parameters per path; %s up, %s down; H = %d" % (
        args.grid, tasks, params_per_path, args.up, args.down, args.h))
    print("data parallel per outer step (same tokens): %s" % mib(dp_step))
    for s in steps:
        print("  measured outer step %d: %s up + %s down" % (
            s["outer_step"], mib(s["bytes_up"]), mib(s["bytes_down"])))
    rows = [
        ("analytic steady state (each task fetches its modules as deltas)", analytic),
        ("measured, last outer step", measured_last),
        ("measured, mean over %d outer steps (first one whole)" % len(steps), measured_all / len(steps)),
        ("analytic, fp32 downlink (before this change)", analytic_fp32_down),
    ]
    for label, b in rows:
        print("%-62s %10s  %6.0fx less than data parallel" % (label, mib(b), dp_step / b))


if __name__ == "__main__":
    main()
