"""IR scaling: build, verify and eliminate_dead_code on chain graphs of 1k, 10k, 100k nodes,
and (with ``--pipeline``) the default pass pipeline plus MDF emission.  Prints one JSON line
per size with the cost per node in microseconds; flat per-node cost = linear time.

    python benchmarks/bench_ir_scaling.py [--sizes 1000,10000,100000] [--pipeline] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import torch

from torchmdf.ir import Graph, TensorType
from torchmdf.passes import EliminateDeadCode


def chain(n: int) -> Graph:
    """A chain of n nodes alternating Relu/Add-with-constant/Tanh, with a dead Neg hanging off
    every tenth node (so DCE has real work)."""
    g = Graph("chain")
    v = g.add_input("x", TensorType(torch.float32, (8,)))
    c = g.add_constant(torch.tensor(0.5))
    built = 0
    while built < n:
        k = built % 3
        if k == 0:
            v = g.create_node("onnx::Relu", [v]).output
        elif k == 1:
            v = g.create_node("onnx::Add", [v, c]).output
        else:
            v = g.create_node("onnx::Tanh", [v]).output
        built += 1
        if built % 10 == 0 and built < n:
            g.create_node("onnx::Neg", [v])
            built += 1
    g.outputs = [v]
    return g


def timed(fn):
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--pipeline", action="store_true", help="also time the default pipeline + MDF emission")
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        g, t_build = timed(lambda: chain(n))
        nodes = len(g)
        _, t_verify = timed(g.verify)
        _, t_dce = timed(lambda: EliminateDeadCode()(g))
        r = {"benchmark": "ir_scaling", "nodes": nodes, "build_us_per_node": t_build / nodes * 1e6,
             "verify_us_per_node": t_verify / nodes * 1e6, "dce_us_per_node": t_dce / nodes * 1e6,
             "dce_removed": nodes - len(g)}
        if args.pipeline:
            from torchmdf.backends.mdf import emit_mdf
            from torchmdf.passes import DEFAULT_PIPELINE, Instrumentation, PassManager

            g2 = chain(n)
            inst = Instrumentation()
            _, t_passes = timed(lambda: PassManager(DEFAULT_PIPELINE, verify_each=False, instrument=inst).run(g2))
            _, t_emit = timed(lambda: emit_mdf(g2))
            r.update({"pipeline_us_per_node": t_passes / nodes * 1e6, "mdf_emit_us_per_node": t_emit / nodes * 1e6,
                      "pipeline_plus_emit_us_per_node": (t_passes + t_emit) / nodes * 1e6,
                      "per_pass_us_per_node": {k: v / nodes * 1e6 for k, v in inst.totals().items()}})
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
