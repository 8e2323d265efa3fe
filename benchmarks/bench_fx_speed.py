"""Benchmark: the GraphModule torchmdf emits (torch -> IR -> default passes -> FX) against the
original model, in the same run, on the same inputs.

For each model of ``tests/zoo.py``'s ZOO (``--models`` picks; the stateful ``running_stats``
updates its buffers on both sides alike) it times ``native(x)`` and ``converted(x)`` under ``torch.no_grad()``:
warmup, then many rounds that alternate A/B (and swap which goes first every round) so clock
and thermal drift hit both equally; each round times a batch of calls sized to take a few
milliseconds; the reported time is the median per call.  ``ratio`` = converted / native
(the target is <= 1.03).

It also times building the GraphModule from an MDF file
(``torchmdf.compile("PyTorch/inception.json", target="fx")``, median of several builds; the
target is < 100 ms).

Prints a table and, with ``--json out.json``, writes
``{"device", "threads", "torch", "load_average", "models": [{"model", "native_ms",
"converted_ms", "ratio"}], "mdf_build": {"file", "build_ms"}}``.  Multi-threaded CPU timings
need otherwise idle cores (OpenMP threads that wait for a busy core stall whole ops); on a
shared machine use ``--threads 1``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

MODELS = ("mlp", "mlp_bn_prelu", "cnn", "resnet18", "inception", "depthwise", "lstm", "gru", "transformer_layer",
          "buffer_inplace", "running_stats", "bert", "gpt2", "bert_sdpa", "gpt2_sdpa", "llama_sdpa", "llama_eager",
          "bart_sdpa", "vit_sdpa", "t5_sdpa")  # every model of tests/zoo.py's ZOO


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _calls_per_sample(fn, device: str, target_s: float) -> int:
    """How many back-to-back calls take about ``target_s`` (so timer resolution and the
    per-sample Python cost vanish)."""
    n = 1
    while True:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        dt = time.perf_counter() - t0
        if dt >= target_s or n >= 1 << 16:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 2


def _time_batch(fn, n: int, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / n


def compare(native, converted, device: str, *, rounds: int, warmup_s: float, sample_s: float):
    """Median seconds per call of ``native()`` and ``converted()``, interleaved A/B/B/A, with
    the garbage collector off while timing (its pauses would land on one side at random)."""
    t_end = time.perf_counter() + warmup_s
    while time.perf_counter() < t_end:
        native()
        converted()
    n = max(_calls_per_sample(native, device, sample_s), 1)
    a, b = [], []
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            if r % 2 == 0:
                a.append(_time_batch(native, n, device))
                b.append(_time_batch(converted, n, device))
            else:
                b.append(_time_batch(converted, n, device))
                a.append(_time_batch(native, n, device))
    finally:
        gc.enable()
    return statistics.median(a), statistics.median(b)


def _flat(out):
    import torch
    from torch.utils import _pytree as pytree

    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def bench_model(name: str, device: str, args) -> dict:
    import torch

    import torchmdf
    import zoo

    entry = zoo.get(name)
    model = entry.make_model().eval()
    inputs = entry.make_inputs()
    if getattr(args, "via_mdf", False):  # torch -> MDF -> FX: what a file's user runs
        m = torchmdf.compile(model, target="mdf", example_inputs=inputs)
        gm = torchmdf.compile(m, target="fx").eval()
    else:
        gm = torchmdf.compile(model, target="fx", example_inputs=inputs).eval()
    model.to(device)
    gm.to(device)
    inputs = tuple(x.to(device) for x in inputs)
    with torch.no_grad():
        for a, b in zip(_flat(model(*inputs)), _flat(gm(*inputs))):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
        tn, tc = compare(lambda: model(*inputs), lambda: gm(*inputs), device,
                         rounds=args.rounds, warmup_s=args.warmup, sample_s=args.sample)
    return {"model": name, "native_ms": tn * 1e3, "converted_ms": tc * 1e3, "ratio": tc / tn}


def bench_mdf_build(path: Path, repeats: int) -> dict:
    import torchmdf

    if not path.is_file():
        return {"file": str(path), "error": "file not found"}
    torchmdf.compile(path, target="fx")  # warm caches (imports, op schemas)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torchmdf.compile(path, target="fx")
        times.append(time.perf_counter() - t0)
    return {"file": str(path.relative_to(path.parents[1])), "build_ms": statistics.median(times) * 1e3,
            "repeats": repeats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    ap.add_argument("--rounds", type=int, default=41, help="A/B rounds per model (odd: a true median)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warmup seconds per model")
    ap.add_argument("--sample", type=float, default=0.01, help="seconds per timed batch")
    ap.add_argument("--mdf-repeats", type=int, default=15)
    ap.add_argument("--examples", type=Path, default=REPO.parent / "shared" / "mdf-examples")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the cores this process may use)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--via-mdf", action="store_true",
                    help="convert through an MDF model (torch -> MDF -> FX) instead of torch -> FX")
    args = ap.parse_args(argv)

    import torch

    threads = args.threads or _cores()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2

    rows = [bench_model(m, args.device, args) for m in args.models.split(",") if m]
    build = bench_mdf_build(args.examples / "PyTorch" / "inception.json", args.mdf_repeats)

    print(f"device={args.device} threads={threads} torch={torch.__version__}")
    print(f"{'model':<18} {'native ms':>10} {'converted ms':>13} {'ratio':>7}")
    for r in rows:
        print(f"{r['model']:<18} {r['native_ms']:>10.4f} {r['converted_ms']:>13.4f} {r['ratio']:>7.3f}")
    if "build_ms" in build:
        print(f"MDF -> GraphModule build ({build['file']}): {build['build_ms']:.1f} ms (median of {build['repeats']})")
    else:
        print(f"MDF -> GraphModule build: {build['error']} ({build['file']})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None and load > max(_cores() - threads, 0) + 0.5:
        print(f"note: load average {load:.2f} on {_cores()} cores: other processes compete for the "
              "cores, multi-threaded timings are unreliable (try --threads 1)")
    result = {"benchmark": "fx_speed", "via_mdf": args.via_mdf, "device": args.device, "threads": threads, "torch": torch.__version__,
              "load_average": load, "models": rows, "mdf_build": build}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
