"""Conversion cost of zoo models to MDF, side by side with ``torch.export.export`` alone in
the same run, and the peak memory of a conversion.  Prints one JSON line per model.

    python benchmarks/bench_conversion.py [--models resnet18,tv_resnet18] [--repeats 3] [--no-memory]

Per model: ``export_s`` (``torch.export.export`` alone), ``compile_to_mdf_total_s`` (torch ->
MDF: export, lowering, the default passes, MDF emission), ``total_over_export`` (the ratio;
target <= 1.5 on the convolutional models), the split (``lower_s`` incl. export, ``passes_s``,
``mdf_emit_s``), whether the exported graph lowered without a re-trace (``direct``), and, from
a fresh subprocess, ``peak_rss_delta_bytes``: how far the peak resident set rose above the
resident set before one conversion (Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``;
elsewhere ``ru_maxrss``), after a warm-up conversion of another model so imports and caches are
not counted, next to ``param_bytes`` (target: under 2x) and next to the same figure for
``torch.export.export`` alone in the same process (``export_peak_rss_delta_bytes``; on small
models both are the fixed cost of tracing, not of the weights).

:func:`measure_conversion` and :func:`measure_peak_memory` return the same dicts for other
runners (``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CONV_MODELS = ("resnet18", "cnn", "inception", "depthwise", "tv_resnet18", "tv_squeezenet1_0",
               "tv_mobilenet_v3_small", "tv_resnet50")


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_conversion(name: str, repeats: int = 3) -> dict:
    """Seconds of ``torch.export.export`` alone and of torch -> MDF, interleaved, medians."""
    import torch

    import torchmdf
    from torchmdf.frontends.export import _lowers_directly, lower_module
    from torchmdf.passes import run_passes
    from zoo import get

    entry = get(name)
    model, inputs = entry.make_model(), entry.make_inputs()
    torchmdf.compile(model, target="mdf", example_inputs=inputs)  # warm: imports, op schemas
    exports, totals = [], []
    for _ in range(repeats):  # A/B interleaved: load changes hit both
        t0 = time.perf_counter()
        torch.export.export(model, inputs)
        exports.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torchmdf.compile(model, target="mdf", example_inputs=inputs)
        totals.append(time.perf_counter() - t0)
    t_export, t_total = statistics.median(exports), statistics.median(totals)
    t_lower = _median(lambda: lower_module(model, inputs), repeats)
    g = lower_module(model, inputs)
    t_passes = _median(lambda: run_passes(g.clone(), None), repeats)
    g2, _ = run_passes(g.clone(), None)
    t_emit = _median(lambda: torchmdf.emit(g2, target="mdf"), repeats)
    return {
        "benchmark": "conversion", "model": name, "ir_nodes": len(g),
        "params": sum(p.numel() for p in model.parameters()),
        "direct": _lowers_directly(torch.export.export(model, inputs)),
        "export_s": t_export, "compile_to_mdf_total_s": t_total, "total_over_export": t_total / t_export,
        "lower_s": t_lower, "passes_s": t_passes, "mdf_emit_s": t_emit,
    }


_MEMORY_CHILD = r"""
import json, resource, sys
sys.path.insert(0, {tests!r})
import torch, torchmdf
from zoo import get


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


warm = get("cnn")
torchmdf.compile(warm.make_model(), target="mdf", example_inputs=warm.make_inputs())
e = get({name!r})
model, inputs = e.make_model(), e.make_inputs()
with torch.no_grad():
    model(*inputs)


def reset():  # reset the peak (VmHWM) so what follows is measured on its own
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS"), "VmHWM after reset"
    except OSError:  # no /proc: ru_maxrss, an upper bound when an earlier peak was higher
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"


def peak(how):
    return status("VmHWM") if how != "ru_maxrss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


before, how = reset()
torch.export.export(model, inputs)
export_delta = max(peak(how) - before, 0)
before, how = reset()
m = torchmdf.compile(model, target="mdf", example_inputs=inputs)
after = peak(how)
params = sum(t.numel() * t.element_size() for t in model.state_dict().values())
print(json.dumps({{"peak_rss_delta_bytes": max(after - before, 0), "param_bytes": params, "peak_measure": how,
                  "export_peak_rss_delta_bytes": export_delta}}))
"""


def measure_peak_memory(name: str) -> dict:
    """Growth of the peak resident set (``ru_maxrss``) during one torch -> MDF conversion,
    in a fresh subprocess, and the model's parameter and buffer bytes."""
    code = _MEMORY_CHILD.format(tests=str(REPO / "tests"), name=name)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["peak_over_params"] = res["peak_rss_delta_bytes"] / max(res["param_bytes"], 1)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(CONV_MODELS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess")
    args = ap.parse_args(argv)
    for name in args.models.split(","):
        row = measure_conversion(name, args.repeats)
        if not args.no_memory:
            row.update(measure_peak_memory(name))
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
