"""File size and peak memory of saving and loading a large model, inline and with external
weights (issue 17).  Prints one JSON line per case and a summary line against the targets:

* file size (MDF file + sidecar) with external weights within 1.1x the parameter bytes, inline
  within 4x;
* peak extra memory of ``torchmdf.mdf.save`` and of ``torchmdf.compile(path, target="fx")``
  (load + compile) under 2x the parameter bytes with external weights, under 10x inline.

    python benchmarks/bench_large_model.py [--quick] [--width-div 1]

The model is the zoo's ResNet-18 layout at full width (11.2 M float32 parameters, 44.7 MB;
``--quick``: half width, 11 MB).  Each measurement runs in a fresh child process: the child
imports torch and torchmdf and warms the code paths up on the same layout at 1/32 width, prepares what the
operation needs (for ``save``: the MDF model, converted from torch in the child), resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``), notes its RSS, runs the operation once and
reports ``VmHWM - RSS before``: everything the operation made resident, torch allocations and
touched memory-mapped pages included.  After load+compile it also calls the module once and
reports the peak including that call (external weights are memory-mapped and only become
resident, file-backed, when first read).  ``run(quick)`` returns the same figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {"size_external": 1.1, "size_inline": 4.0, "memory_external": 2.0, "memory_inline": 10.0}


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _make(width_div: int):
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from zoo import ResNet18

    torch.manual_seed(0)
    model = ResNet18(classes=10, width_div=width_div).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, x


def _warm_up(tmp: str) -> None:
    """Run save and load+compile once on the same layout at 1/32 of the width (a few KB of
    weights), so the code the operation runs is imported and resident before the baseline."""
    import torchmdf

    tiny, x = _make(32)
    m = torchmdf.compile(tiny, target="mdf", example_inputs=(x,))
    for w in ("inline", "external"):
        p = os.path.join(tmp, f"warm_{w}.json")
        torchmdf.mdf.save(m, p, weights=w)
        torchmdf.compile(p, target="fx")(x)


def child(case: str, weights: str, width_div: int, tmp: str) -> None:
    """One measurement (runs in a fresh process); prints one JSON line."""
    import torch

    import torchmdf
    from torchmdf.mdf.weights import read_safetensors

    _warm_up(tmp)
    path = os.path.join(tmp, f"model_{weights}.json")
    if case == "save":
        model, x = _make(width_div)
        m = torchmdf.compile(model, target="mdf", example_inputs=(x,))
        del model
    reset = _reset_peak()
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    if case == "save":
        torchmdf.mdf.save(m, path, weights=weights)
        out = {}
    else:
        gm = torchmdf.compile(path, target="fx")
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    if case != "save":
        ref = read_safetensors(os.path.join(tmp, "reference.safetensors"))
        with torch.no_grad():
            y = gm(ref["x"])
        # the first call reads every weight: memory-mapped ones become resident (file-backed)
        out = {"output_equal": bool(torch.equal(y, ref["y"])),
               "peak_extra_bytes_incl_first_call": (_status_kb("VmHWM") - before) * 1024}
    print(json.dumps({"case": case, "weights": weights, "seconds": seconds,
                      "peak_extra_bytes": (peak - before) * 1024, "peak_reset": reset, **out}))


def _run_child(case: str, weights: str, width_div: int, tmp: str) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--weights", weights, "--width-div", str(width_div),
           "--tmp", tmp]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child {case}/{weights} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(quick: bool = False, width_div: int | None = None, emit=None) -> dict:
    """Measure every case; returns {"param_bytes": ..., "cases": [...], "summary": {...}}.
    ``emit(dict)`` is called with each case's figures as they come."""
    import torch

    from torchmdf.mdf.weights import write_safetensors

    wd = width_div if width_div is not None else (2 if quick else 1)
    model, x = _make(wd)
    param_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with torch.no_grad():
        y = model(x)
    del model
    cases: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_large_") as tmp:
        with open(os.path.join(tmp, "reference.safetensors"), "wb") as f:
            write_safetensors(f, [("x", x), ("y", y)])
        for weights in ("inline", "external"):
            r = _run_child("save", weights, wd, tmp)
            p = os.path.join(tmp, f"model_{weights}.json")
            side = os.path.join(tmp, f"model_{weights}.safetensors")
            size = os.path.getsize(p) + (os.path.getsize(side) if os.path.exists(side) else 0)
            r.update(file_bytes=size, size_ratio=size / param_bytes,
                     memory_ratio=r["peak_extra_bytes"] / param_bytes)
            cases.append(r)
            if emit:
                emit(r)
            r = _run_child("load_compile", weights, wd, tmp)
            r.update(memory_ratio=r["peak_extra_bytes"] / param_bytes,
                     memory_ratio_incl_first_call=r["peak_extra_bytes_incl_first_call"] / param_bytes)
            cases.append(r)
            if emit:
                emit(r)
    summary: dict = {"param_bytes": param_bytes, "width_div": wd}
    for c in cases:
        key = f"{c['case']}_{c['weights']}"
        summary[f"{key}_memory_ratio"] = round(c["memory_ratio"], 3)
        summary[f"{key}_seconds"] = round(c["seconds"], 3)
        if "memory_ratio_incl_first_call" in c:
            summary[f"{key}_then_first_call_memory_ratio"] = round(c["memory_ratio_incl_first_call"], 3)
        if "size_ratio" in c:
            summary[f"size_{c['weights']}_ratio"] = round(c["size_ratio"], 3)
            summary[f"size_{c['weights']}_bytes"] = c["file_bytes"]
    summary["targets_met"] = all([
        summary["size_external_ratio"] <= TARGETS["size_external"],
        summary["size_inline_ratio"] <= TARGETS["size_inline"],
        summary["save_external_memory_ratio"] < TARGETS["memory_external"],
        summary["load_compile_external_memory_ratio"] < TARGETS["memory_external"],
        summary["save_inline_memory_ratio"] < TARGETS["memory_inline"],
        summary["load_compile_inline_memory_ratio"] < TARGETS["memory_inline"],
        all(c.get("output_equal", True) for c in cases),
    ])
    summary["targets"] = TARGETS
    try:
        import orjson  # noqa: F401

        summary["orjson"] = True
    except ImportError:
        summary["orjson"] = False
    return {"param_bytes": param_bytes, "cases": cases, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="half-width model (11 MB of parameters)")
    ap.add_argument("--width-div", type=int, default=None)
    ap.add_argument("--child", choices=["save", "load_compile"], help=argparse.SUPPRESS)
    ap.add_argument("--weights", default="inline", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.weights, args.width_div or 1, args.tmp)
        return

    def emit(r: dict) -> None:
        print(json.dumps({"benchmark": "large_model", **r}), flush=True)

    res = run(args.quick, args.width_div, emit=emit)
    print(json.dumps({"benchmark": "large_model", "summary": res["summary"]}), flush=True)


if __name__ == "__main__":
    main()
