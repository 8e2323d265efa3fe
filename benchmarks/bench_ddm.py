"""Benchmark: the seed's DDM as a batch of trials (issue 12.6) against a Python loop of single
runs of the original function, in the same run.

The function is converted to an MDF file, read back, batched by ``torchmdf.passes.batch_trials``
and compiled to FX (``torchmdf.examples.ddm.trials_program``): one call runs N trials, each to
its own decision.  The reference is the original function called once per trial.  Rounds
alternate the two (swapping which goes first) and each figure is the median over rounds of
trials per second; ``speedup`` is the median per-round ratio batched / loop.

    python benchmarks/bench_ddm.py [--trials N] [--loop-runs R] [--rounds K] [--threads T] [--json out.json]

Prints a table and, with ``--json``, writes ``{"torch", "threads", "load_average", "trials",
"loop_runs", "batched_trials_per_s": {...}, "loop_trials_per_s": {...}, "speedup": {...}}`` (each
figure as min/median/max/spread/n).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import load_average, summarize  # noqa: E402 - the harness sits next to this script


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5000, help="trials per batched call (default 5000)")
    p.add_argument("--loop-runs", type=int, default=100, help="single runs per loop sample (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from torchmdf.examples import ddm

    params = ddm.ddm_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ddm.json"
        ddm.convert(path)
        program = ddm.trials_program(path)

    def batched() -> float:
        start = time.perf_counter()
        ddm.run_trials(program, args.trials, params)
        return args.trials / (time.perf_counter() - start)

    def loop() -> float:
        start = time.perf_counter()
        ddm.run_original(args.loop_runs, params)
        return args.loop_runs / (time.perf_counter() - start)

    torch.manual_seed(0)
    batched()  # warm-up
    loop()
    fast, slow, ratio = [], [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            b, single = batched(), loop()
        else:
            single, b = loop(), batched()
        fast.append(b)
        slow.append(single)
        ratio.append(b / single)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": load_average(),
              "trials": args.trials, "loop_runs": args.loop_runs,
              "batched_trials_per_s": summarize(fast), "loop_trials_per_s": summarize(slow),
              "speedup": summarize(ratio)}
    print("| figure | median | min | max |\n|---|---|---|---|")
    for key in ("batched_trials_per_s", "loop_trials_per_s", "speedup"):
        s = result[key]
        print(f"| {key} | {s['median']:,.1f} | {s['min']:,.1f} | {s['max']:,.1f} |")
    print(f"({args.trials} trials per batched call, {args.loop_runs} runs per loop sample, "
          f"{args.rounds} rounds, {result['threads']} thread(s), load average {result['load_average']})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
