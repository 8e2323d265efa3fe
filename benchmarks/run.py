"""torchmdf's benchmark suite: one runner for every family, every figure as statistics over
repeats after warm-up, every comparison as a ratio timed interleaved A/B in the same run.

    python benchmarks/run.py [--quick | --smoke] [--device cpu|cuda] [--json out.json] [--only NAME,...]
    python benchmarks/run.py --compare old.json new.json
    python benchmarks/report.py out.json [gpu.json]      # rewrites README.md's Performance section

Progress goes to stderr, the markdown table to stdout, everything (environment included) to
``--json``.  ``--quick`` takes under 3 minutes on 2 cores; ``--smoke`` (the CI test) a few
seconds per family and checks that every figure is produced, not what it is; the default is
the full run.  Families and how to add one: ``families.py`` (the table ``FAMILIES``) and
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402
from _harness import Context  # noqa: E402

SCHEMA = 1


class Progress:
    """A live line per family on a terminal (rich when installed), plain lines otherwise."""

    def __init__(self, total: int, enabled: bool = True):
        self.enabled = enabled
        self.live = None
        if enabled and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress

                self.live = RichProgress(TextColumn("[bold]{task.fields[family]}"), BarColumn(),
                                         TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                         TextColumn("{task.description}"), console=Console(stderr=True))
                self.task = self.live.add_task("", total=total, family="")
                self.live.start()
            except ImportError:
                self.live = None
        self.family = ""
        self.t0 = time.perf_counter()

    def start(self, family: str) -> None:
        self.family = family
        if self.live is not None:
            self.live.update(self.task, family=family, description="")
        elif self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {family}", file=sys.stderr, flush=True)

    def step(self, msg: str) -> None:
        if self.live is not None:
            self.live.update(self.task, description=msg)
        elif self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {self.family}: {msg}", file=sys.stderr, flush=True)

    def done(self, seconds: float) -> None:
        if self.live is not None:
            self.live.advance(self.task)
            self.live.console.print(f"{self.family}: {seconds:.1f} s")
        elif self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {self.family} done in {seconds:.1f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def run(mode: str, device: str, only: list[str] | None = None, progress: bool = True) -> dict:
    """Run the families (all, or ``only``) and return the result dict written as JSON."""
    import torch

    from families import FAMILIES

    names = list(FAMILIES) if not only else only
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown family {', '.join(unknown)}; the families are {', '.join(FAMILIES)}")
    torch.manual_seed(0)
    result: dict = {"schema": SCHEMA, "mode": mode, "device": device, "environment": _harness.environment(device),
                    "families": {}}
    bar = Progress(len(names), enabled=progress)
    t_all = time.perf_counter()
    try:
        for name in names:
            bar.start(name)
            ctx = Context(name, mode, device, progress=bar.step)
            t0 = time.perf_counter()
            try:
                FAMILIES[name](ctx)
                result["families"][name] = ctx.result(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - one family's failure must not lose the others
                fam = ctx.result(time.perf_counter() - t0)
                fam["error"] = f"{type(e).__name__}: {e}"
                result["families"][name] = fam
            bar.done(time.perf_counter() - t0)
    finally:
        bar.close()
    result["environment"]["load_average_end"] = _harness.load_average()
    result["total_seconds"] = round(time.perf_counter() - t_all, 1)
    return result


def _worker(name: str, args: str) -> int:
    """``--worker NAME ARGS``: run ``families.WORKERS[NAME](**json.loads(ARGS))`` and print its
    result as one JSON line (the child side of ``Context.isolated``)."""
    from families import WORKERS

    print(json.dumps(WORKERS[name](**json.loads(args))), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the short run (under 3 minutes on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="seconds per family: checks the suite runs (CI)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--json", type=Path, help="write the results (and the environment) here")
    ap.add_argument("--only", help="comma-separated family names")
    ap.add_argument("--threads", type=int, help="torch threads (default: the cores this process may use)")
    ap.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"),
                    help="print the change of every figure between two JSON results, and exit")
    ap.add_argument("--worker", nargs=2, metavar=("NAME", "ARGS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return _worker(*args.worker)
    if args.compare:
        old, new = (json.loads(p.read_text()) for p in args.compare)
        print(f"old: {args.compare[0]} ({old.get('mode')}, {old['environment'].get('date')}, "
              f"commit {old['environment'].get('torchmdf_commit')})")
        print(f"new: {args.compare[1]} ({new.get('mode')}, {new['environment'].get('date')}, "
              f"commit {new['environment'].get('torchmdf_commit')})\n")
        print(_harness.compare(old, new))
        return 0

    import torch

    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        ap.error("--device is cpu or cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}, built "
              f"for CUDA {torch.version.cuda}); nothing was measured. Run it on a machine with a GPU.",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads or _harness.cores())
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = [s for s in args.only.split(",") if s] if args.only else None
    result = run(mode, args.device, only, progress=not args.no_progress)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, args.json)
    env = result["environment"]
    print(f"## torchmdf benchmarks (--{mode}, {args.device}, {result['total_seconds']} s)\n")
    print(_harness.machine_line(env) + "\n")
    print(_harness.markdown(result))
    bad = [f"{fam}/{k}" for fam, r in result["families"].items() for k, f in r["figures"].items() if "error" in f]
    bad += [fam for fam, r in result["families"].items() if "error" in r]
    if bad:
        print(f"{len(bad)} figure(s) failed: {', '.join(bad[:10])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
