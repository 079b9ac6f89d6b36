#!/usr/bin/env python3
"""Reproduction bench for DiLoCo and DiPaCo on the Brown corpus (issue #5).

Trains a set of small grids with `dipaco run`, all from the same short dense base model and
all evaluated the same way (every validation document scored by its routed path), and prints
one table: routed validation perplexity, training tokens, bytes on the wire, and the data
parallel equivalent.

    /usr/bin/python3 bench/dipaco/reproduce.py --build build [--work bench-runs] [--scale 1.0]

--scale multiplies every run's inner-step budget (0.1 for a smoke run). Needs the Brown token
files of `bash tools/bootstrap.sh main` (data/brown/tokens). The model is deliberately small
(d_model 64, 4 blocks, 8192-token vocabulary, ~1.3M parameters per path) so that the whole
table fits in well under an hour on 2 cores. Results also go to WORK/results.json and WORK/results.md.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

MODEL = """[model]
d_model = 64
n_layers = 4
n_heads = 4
d_ff = 176
max_seq_len = 64
"""

INNER = """[inner]
batch_size = 8
seq_len = 64
lr = 3e-3
min_lr = 3e-4
warmup_steps = 10
grad_accum = {accum}
"""


def level(blocks, modules=None, path_specific=False):
    text = "[[grid.level]]\nblocks = [%d, %d]\n" % blocks
    if path_specific:
        return text + "path_specific = true\n"
    return text + "modules = %d\n" % modules


TWO_BY_TWO = level((0, 1), 2) + level((2, 3), 2)
FOUR_BY_FOUR = level((0, 1), 4) + level((2, 3), 4)
DENSE = level((0, 3), 1)
# Level 0 shared by pairs, level 1 shared, level 2 (the last block and the head) per path.
TWO_BY_TWO_PATH_SPECIFIC = level((0, 1), 2) + level((2, 2), 2) + level((3, 3), path_specific=True)


def grid(name, work, base, steps, h, levels, outer="nesterov", lr=None, momentum=None,
         dtype="int8", routing="kmeans", shards=1, accum=1, extra_routing="", rescale=False, drop=0.0,
         downlink="int8"):
    outer_steps = max(1, round(steps / h))
    o = '[outer]\noptimizer = "%s"\nrescale_by_sqrt_paths = %s\n' % (outer, "true" if rescale else "false")
    if drop:
        o += "drop_fraction = %g\n" % drop
    if lr is not None:
        o += "lr = %g\n" % lr
    if momentum is not None:
        o += "momentum = %g\n" % momentum
    return "\n".join([
        '[run]\nname = "%s"\ndir = "%s"\nouter_steps = %d\ninner_steps = %d\nworkers = 2\n'
        % (name, os.path.join(work, name), outer_steps, h),
        MODEL, INNER.format(accum=accum), o,
        '[compression]\ndtype = "%s"\ndownlink = "%s"\n' % (dtype, downlink),
        "[grid]\nshards_per_path = %d\n" % shards, levels,
        '[routing]\nmethod = "%s"\nbalanced = true\nbase_checkpoint = "%s"\n%s'
        % (routing, base, extra_routing),
        '[data]\ntrain = "data/brown/tokens/train.tok"\nval = "data/brown/tokens/val.tok"\n',
        "[eval]\nevery = 0\nkeep_best = false\n"])


def run(dipaco, work, name, text, log):
    path = os.path.join(work, name + ".toml")
    with open(path, "w") as f:
        f.write(text)
    start = time.time()
    with open(os.path.join(work, name + ".log"), "w") as out:
        rc = subprocess.call([dipaco, "run", path], stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit("%s failed (exit %d); see %s" % (name, rc, os.path.join(work, name + ".log")))
    with open(os.path.join(work, name, "run.json")) as f:
        result = json.load(f)
    result["seconds"] = time.time() - start
    log("%-28s done in %6.0f s: routed val loss %.4f" % (name, result["seconds"], result["routed_val_loss"]))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", default="bench-runs")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    dipaco = os.path.abspath(os.path.join(args.build, "app/cli/dipaco"))
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    log = lambda m: print(m, flush=True)
    steps = max(10, int(300 * args.scale))  # inner steps per path (per replica)
    h = 30 if args.scale >= 0.5 else max(2, steps // 5)

    # The shared base: a short dense run (plain training: one replica, outer SGD at lr 1).
    base_steps = max(10, int(150 * args.scale))
    base_run = run(dipaco, work, "base", grid("base", work, "", base_steps, base_steps, DENSE,
                                              outer="sgd", dtype="fp32", routing="random")
                   .replace('base_checkpoint = ""\n', "").replace("[routing]", "[routing]\nbase_steps = 1")
                   .replace("[run]", "[run]\nwarm_start = false"), log)
    base = os.path.join(work, "base", "paths", "path-0.safetensors")

    rows = [
        # (label, name, grid text, workers' share of the data-parallel comparison)
        ("dense, one path's size", "dense", grid("dense", work, base, steps, h, DENSE, outer="sgd", dtype="fp32", routing="random")),
        ("data parallel x4 (same tokens)", "dp4", grid("dp4", work, base, steps, h, DENSE, outer="sgd", dtype="fp32", routing="random", accum=4)),
        ("DiLoCo k=4 H=10", "diloco-h10", grid("diloco-h10", work, base, steps, 10, DENSE, routing="random", shards=4),
        ("DiLoCo k=4 H=50", "diloco-h50", grid("diloco-h50", work, base, steps, 50, DENSE, routing="random", shards=4),
        ("DiLoCo k=4 H=50, 50% outer grads dropped", "diloco-h50-drop", grid("diloco-h50-drop", work, base, steps, 50, DENSE, routing="random", shards=4, rescale=False, drop=0.5)),
        ("DiLoCo k=4 H=50, outer SGD (averaging)", "diloco-h50-sgd", grid("diloco-h50-sgd", work, base, steps, 50, DENSE, outer="sgd", routing="random", shards=4),
        ("DiPaCo 2x2 k-means int8", "dipaco-2x2", grid("dipaco-2x2", work, base, steps, h, TWO_BY_TWO)),
        ("DiPaCo 2x2 k-means int8, fp32 downlink", "dipaco-2x2-fp32-down", grid("dipaco-2x2-fp32-down", work, base, steps, h, TWO_BY_TWO, downlink="fp32")),
        ("DiPaCo 2x2 k-means int8, sqrt(P) rescale", "dipaco-2x2-rescale", grid("dipaco-2x2-rescale", work, base, steps, h, TWO_BY_TWO, rescale=True)),
        ("DiPaCo 2x2, last level per path", "dipaco-2x2-ps", grid("dipaco-2x2-ps", work, base, steps, h, TWO_BY_TWO_PATH_SPECIFIC)),
        ("DiPaCo 4x4 k-means int8", "dipaco-4x4", grid("dipaco-4x4", work, base, steps, h, FOUR_BY_FOUR)),
        ("DiPaCo 2x2 product k-means", "dipaco-2x2-product", grid("dipaco-2x2-product", work, base, steps, h, TWO_BY_TWO, routing="product_kmeans")),
        ("DiPaCo 2x2 discriminative", "dipaco-2x2-disc", grid("dipaco-2x2-disc", work, base, steps, h, TWO_BY_TWO, routing="discriminative",
                                                               extra_routing='paths_from = "%s"\n' % os.path.join(work, "dipaco-2x2"))),
        ("DiPaCo 2x2 random routing", "dipaco-2x2-random", grid("dipaco-2x2-random", work, base, steps, h, TWO_BY_TWO, routing="random")),
        ("DiPaCo 2x2 k-means fp32", "dipaco-2x2-fp32", grid("dipaco-2x2-fp32", work, base, steps, h, TWO_BY_TWO, dtype="fp32")),
        ("DiPaCo 2x2 k-means int4", "dipaco-2x2-int4", grid("dipaco-2x2-int4", work, base, steps, h, TWO_BY_TWO, dtype="int4")),
    ]
    results = []
    for label, name, text in rows:
        r = run(dipaco, work, name, text, log)
        r["label"] = label
        r["row"] = name
        results.append(r)

    base_loss = base_run["routed_val_loss"]
    lines = ["| run | paths | train tokens | routed val ppl | bytes on the wire | data parallel bytes, same tokens | ratio | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["traffic"]
        wire = t["bytes_up"] + t["bytes_down"]
        dp = t["data_parallel_bytes"]
        if r["row"] == "dp4":
            dp = dp * 4  # four workers, each exchanging its gradient every step
            wire = dp
        ratio = "%.0fx" % (dp / wire) if wire and r["row"] not in ("dp4", "dense") else "-"
        if r["row"] == "dense":
            wire, ratio = 0, "-"
        lines.append("| %s | %d | %.2fM | %.2f | %s | %s | %s | %.0f |" % (
            r["label"], len(r["paths"]), r["tokens"] / 1e6, math.exp(r["routed_val_loss"]),
            "%.1f MiB" % (wire / 2**20), "%.1f MiB" % (dp / 2**20), ratio, r["seconds"]))
    table = "\n".join(lines)
    header = ("base model: %d dense steps, val ppl %.2f; %d inner steps per path (H=%d unless "
              "named); model d_model 64, 4 blocks, seq 64, batch 8\n" % (base_steps, math.exp(base_loss), steps, h))
    print("\n" + header + "\n" + table)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"base": base_run, "rows": results, "scale": args.scale}, f, indent=1)
    with open(os.path.join(work, "results.md"), "w") as f:
        f.write(header + "\n" + table + "\n")


if __name__ == "__main__":
    main()
