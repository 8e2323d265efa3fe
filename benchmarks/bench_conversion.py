"""Conversion time of zoo models (default ResNet-18-shaped) to MDF, next to the time of
``torch.export.export`` alone in the same run.  Prints one JSON line per model.

    python benchmarks/bench_conversion.py [--models resnet18,bert] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torchmdf  # noqa: E402
from torchmdf.frontends.export import lower_module  # noqa: E402
from torchmdf.passes import Instrumentation, run_passes  # noqa: E402
from zoo import get  # noqa: E402


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for name in args.models.split(","):
        entry = get(name)
        model, inputs = entry.make_model(), entry.make_inputs()
        t_export = _median(lambda: torch.export.export(model, inputs), args.repeats)
        t_export_dec = _median(lambda: torch.export.export(model, inputs).run_decompositions(), args.repeats)
        t_lower = _median(lambda: lower_module(model, inputs), args.repeats)
        g = lower_module(model, inputs)
        inst = Instrumentation()
        t_passes = _median(lambda: run_passes(g.clone(), None, instrument=inst), args.repeats)
        g2, _ = run_passes(g.clone(), None)
        t_emit = _median(lambda: torchmdf.emit(g2, target="mdf"), args.repeats)
        t_total = _median(lambda: torchmdf.compile(model, target="mdf", example_inputs=inputs), args.repeats)
        print(json.dumps({
            "benchmark": "conversion", "model": name, "ir_nodes": len(g), "export_s": t_export,
            "export_plus_decompositions_s": t_export_dec, "lower_s (incl. export)": t_lower,
            "passes_s": t_passes, "mdf_emit_s": t_emit, "compile_to_mdf_total_s": t_total,
            "total_over_export": t_total / t_export,
        }), flush=True)


if __name__ == "__main__":
    main()
