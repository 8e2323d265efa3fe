"""What every benchmark family shares: statistics over repeats, interleaved A/B timing, time
budgets, running a case in a fresh subprocess, the environment record, and the markdown table.

A family is one function ``fn(ctx: Context) -> None`` that records figures on ``ctx``; see
``families.py`` (the table of families) and ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLES = REPO.parent / "shared" / "mdf-examples"

MODES = ("smoke", "quick", "full")
UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside ``ctx.case(...)``: the case's figures are recorded as skipped, with the
    message as the reason."""


class OverBudget(Skip):
    """A case ran past its time budget (see :meth:`Context.budget`)."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def summarize(samples: list[float]) -> dict:
    """min, median, max, n and spread = (max - min) / median of the repeats."""
    s = sorted(float(x) for x in samples)
    med = statistics.median(s)
    spread = (s[-1] - s[0]) / abs(med) if med else 0.0
    return {"min": s[0], "median": med, "max": s[-1], "spread": spread, "n": len(s)}


def sync(device: str) -> None:
    """Wait for queued device work, so a timer read after it sees the work done."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class _Timer:
    def __init__(self, device: str):
        self.device = device

    def calls(self, fn: Callable[[], Any], n: int) -> float:
        """Seconds per call of ``n`` back-to-back calls of ``fn``."""
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync(self.device)
        return (time.perf_counter() - t0) / n

    def calibrate(self, fn: Callable[[], Any], sample_s: float) -> tuple[int, float]:
        """How many back-to-back calls take about ``sample_s`` (1 for a slow ``fn``), so the
        timer's resolution and the per-sample overhead vanish; and the seconds per call."""
        n = 1
        while True:
            per_call = self.calls(fn, n)
            if per_call * n >= sample_s or n >= 1 << 16:
                return max(1, int(sample_s / max(per_call, 1e-9))), per_call
            n *= 2


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    from torchmdf.api import gc_paused

    gc.collect()
    with gc_paused():
        yield


class Context:
    """Handed to a family function: the mode and device, the repeat settings, and the figure
    record.  ``pick(smoke, quick, full)`` chooses a setting by mode."""

    def __init__(self, family: str, mode: str, device: str, progress: Callable[[str], None] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.family = family
        self.mode = mode
        self.device = device
        self.figures: dict[str, dict] = {}
        self.notes: list[str] = []
        self._progress = progress or (lambda msg: None)
        self._timer = _Timer(device)
        # many short samples, and the median: robust to a neighbour taking the core now and then
        self.rounds = self.pick(3, 21, 41)     # A/B rounds (or repeats) for fast functions
        self.slow_rounds = self.pick(1, 3, 5)  # ... for functions that take a second or more
        self.warmup_s = self.pick(0.05, 0.3, 1.0)
        self.sample_s = self.pick(0.002, 0.005, 0.01)
        self.figure_s = self.pick(0.5, 3.0, 30.0)  # timing time one A/B figure may take (not below 3 rounds)

    # -- settings -------------------------------------------------------------------------------

    def pick(self, smoke: Any, quick: Any, full: Any) -> Any:
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]

    def progress(self, msg: str) -> None:
        self._progress(msg)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- recording ------------------------------------------------------------------------------

    def record(self, key: str, samples: list[float], unit: str, *, target: str | None = None,
               higher_is_better: bool = False, params: dict | None = None,
               parts: dict[str, dict] | None = None, parts_unit: str | None = None) -> dict:
        """One figure: statistics of ``samples`` (already in ``unit``).  ``target`` reads like
        ``"<= 1.03"`` or ``"< 2"`` and is checked against the median."""
        fig: dict[str, Any] = {"unit": unit, **summarize(samples)}
        if higher_is_better:
            fig["higher_is_better"] = True
        if target is not None:
            fig["target"] = target
            fig["meets_target"] = meets(fig["median"], target)
        if params:
            fig["params"] = params
        if parts:
            fig["parts"] = parts
            fig["parts_unit"] = parts_unit
        self.figures[key] = fig
        return fig

    def skip(self, key: str, reason: str) -> None:
        self.figures[key] = {"skipped": reason}

    @contextlib.contextmanager
    def case(self, *keys: str) -> Iterator[None]:
        """Run a case that records ``keys``: on :class:`Skip` each key not yet recorded is
        marked skipped with the reason; on any other exception, marked with the error (the
        run goes on with the next case)."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - a failing case must not end the run
            skip = _skip_in_chain(e)
            if skip is not None:
                for k in keys:
                    if k not in self.figures:
                        self.skip(k, str(skip))
                return
            msg = f"{type(e).__name__}: {e}".strip()
            msg = msg if len(msg) < 400 else msg[:400] + "..."
            tb = traceback.format_exc(limit=-3)
            tb = tb if len(tb) < 3000 else tb[:1500] + "\n...\n" + tb[-1500:]
            for k in keys:
                if k not in self.figures:
                    self.figures[k] = {"error": msg, "traceback": tb}

    @contextlib.contextmanager
    def budget(self, seconds: float, what: str) -> Iterator[None]:
        """Raise :class:`OverBudget` (a Skip) in the block once it runs past ``seconds``
        (SIGALRM: interrupts Python code, not a single long C call; without SIGALRM, on a
        non-main thread, there is no guard)."""
        if not hasattr(signal, "setitimer") or not _main_thread():
            yield
            return

        def handler(signum, frame):
            raise OverBudget(f"{what}: over the time budget of {seconds:g} s")

        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    # -- timing ---------------------------------------------------------------------------------

    def time(self, fn: Callable[[], Any], *, repeats: int | None = None, slow: bool = False,
             warmup: bool = True) -> list[float]:
        """Seconds per call of ``fn``: one warm-up call (unless ``warmup=False``), then
        ``repeats`` samples, each of enough calls to take ``sample_s``."""
        repeats = repeats or (self.slow_rounds if slow else self.rounds)
        if warmup:
            fn()
        n = 1 if slow else self._timer.calibrate(fn, self.sample_s)[0]
        with _gc_off():
            return [self._timer.calls(fn, n) for _ in range(repeats)]

    def ab(self, key: str, a: Callable[[], Any], b: Callable[[], Any], *, names: tuple[str, str],
           unit: str = "ms", slow: bool = False, rounds: int | None = None, target: str | None = None,
           params: dict | None = None, warmup: bool = True) -> dict:
        """Interleaved A/B timing: warm-up, then rounds that time ``a`` and ``b`` back to back,
        swapping which goes first every round (drift and neighbours' load hit both alike).
        ``warmup=False`` skips the warm-up call of a slow pair (when a smaller case warmed up).
        Records ``key`` as the ratio time(a) / time(b) per round, with each side's times per
        call (in ``unit``) as its parts."""
        rounds = rounds or (self.slow_rounds if slow else self.rounds)
        t_end = time.perf_counter() + (0 if slow else self.warmup_s)
        if warmup:
            a()
            b()
        while time.perf_counter() < t_end:
            a()
            b()
        if not slow:
            (na, ca), (nb, cb) = self._timer.calibrate(a, self.sample_s), self._timer.calibrate(b, self.sample_s)
            n = min(na, nb)
            # calls of a second or so: fewer rounds, at least 3, within the figure's time cap
            fit = int(self.figure_s / max(n * (ca + cb), 1e-9))
            rounds = max(3, min(rounds, fit - (fit % 2 == 0)))
        else:
            n = 1
        ta, tb = [], []
        with _gc_off():
            for r in range(rounds):
                if r % 2 == 0:
                    ta.append(self._timer.calls(a, n))
                    tb.append(self._timer.calls(b, n))
                else:
                    tb.append(self._timer.calls(b, n))
                    ta.append(self._timer.calls(a, n))
        scale = UNIT_SCALE[unit]
        parts = {names[0]: summarize([t * scale for t in ta]), names[1]: summarize([t * scale for t in tb])}
        return self.record(key, [x / y for x, y in zip(ta, tb)], "ratio", target=target, params=params,
                           parts=parts, parts_unit=unit)

    # -- isolation ------------------------------------------------------------------------------

    def isolated(self, worker: str, args: dict, timeout: float) -> dict:
        """Run ``families.WORKERS[worker](**args)`` in a fresh Python process (so its peak RSS
        is its own) and return the dict it prints.  Raises :class:`OverBudget` past
        ``timeout`` seconds and RuntimeError when the process fails."""
        cmd = [sys.executable, str(BENCH / "run.py"), "--worker", worker, json.dumps(args)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
        except subprocess.TimeoutExpired as e:
            raise OverBudget(f"{worker}: over the time budget of {timeout:g} s") from e
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{worker} exited with {p.returncode}: {' | '.join(tail)}")
        out = json.loads(lines[-1])
        if "skip" in out:
            raise Skip(out["skip"])
        return out

    def result(self, seconds: float) -> dict:
        return {"seconds": round(seconds, 2), "notes": self.notes, "figures": self.figures}


def _skip_in_chain(e: BaseException | None) -> Skip | None:
    """The Skip that ``e`` is or wraps (a pass manager re-raises what a pass raised, such as
    an OverBudget from the SIGALRM handler, as its own error)."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, Skip):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def meets(value: float, target: str) -> bool:
    op, _, num = target.strip().partition(" ")
    x = float(num)
    return {"<=": value <= x, "<": value < x, ">=": value >= x, ">": value > x}[op]


# -------------------------------------------------------------------------------------------
# the environment
# -------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(REPO), capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=str(REPO),
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict:
    import torch

    env = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "torchmdf": _version("torchmdf"),
        "torchmdf_commit": _git_commit(),
        "modeci_mdf": _version("modeci_mdf"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "cores": cores(),
        "threads": torch.get_num_threads(),
        "load_average_start": load_average(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else _cpu_model(),
    }
    if device.startswith("cuda"):
        env["cuda"] = torch.version.cuda
    return env


def machine_line(env: dict) -> str:
    dev = env["device_name"] if env["device"] != "cpu" else "no GPU"
    loads = f"load average {env.get('load_average_start')} at start, {env.get('load_average_end')} at end"
    return (f"{env['cpu']}, {env['cores']} cores, torch {env['threads']} threads, {dev}; "
            f"torch {env['torch']}, Python {env['python']}, {env['os']}; {loads}")


# -------------------------------------------------------------------------------------------
# the markdown table
# -------------------------------------------------------------------------------------------


def fmt(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax >= 1e5:
        return f"{x:.3g}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


def _detail(fig: dict) -> str:
    bits = []
    if "parts" in fig:
        bits.append(" / ".join(f"{k} {fmt(v['median'])} {fig['parts_unit']}" for k, v in fig["parts"].items()))
    if fig.get("params"):
        bits.append(", ".join(f"{k}={v}" for k, v in fig["params"].items()))
    return "; ".join(bits)


def family_table(fam: dict) -> list[str]:
    rows = ["| figure | median | min | spread | unit | target | detail |", "|---|---|---|---|---|---|---|"]
    for key, fig in fam["figures"].items():
        if "skipped" in fig:
            rows.append(f"| {key} | skipped | | | | | {fig['skipped']} |")
        elif "error" in fig:
            rows.append(f"| {key} | **error** | | | | | {fig['error'].splitlines()[0]} |")
        else:
            tgt = ""
            if "target" in fig:
                tgt = f"{fig['target']} {'yes' if fig['meets_target'] else '**no**'}"
            rows.append(f"| {key} | {fmt(fig['median'])} | {fmt(fig['min'])} | {fig['spread'] * 100:.0f}% "
                        f"| {fig['unit']} | {tgt} | {_detail(fig)} |")
    return rows


def markdown(result: dict, *, heading: str = "###") -> str:
    out = []
    for name, fam in result["families"].items():
        out.append(f"{heading} {name}")
        out.append("")
        if "error" in fam:
            out.append(f"family failed: {fam['error']}")
            out.append("")
            continue
        out.extend(family_table(fam))
        for n in fam.get("notes", []):
            out.append("")
            out.append(f"- {n}")
        out.append("")
    return "\n".join(out)


def compare(old: dict, new: dict) -> str:
    """A markdown table of every figure in either run: old and new median and the change;
    flagged when the change is larger than both runs' spread and 5% (25% for a figure of
    fewer than 3 repeats)."""
    rows = ["| family | figure | old | new | change | |", "|---|---|---|---|---|---|"]
    fams = list(dict.fromkeys([*old.get("families", {}), *new.get("families", {})]))
    for fam in fams:
        fo = old.get("families", {}).get(fam, {}).get("figures", {})
        fn = new.get("families", {}).get(fam, {}).get("figures", {})
        for key in dict.fromkeys([*fo, *fn]):
            a, b = fo.get(key), fn.get(key)
            sa = "-" if a is None else fmt(a["median"]) if "median" in a else "skipped" if "skipped" in a else "error"
            sb = "-" if b is None else fmt(b["median"]) if "median" in b else "skipped" if "skipped" in b else "error"
            change, flag = "", ""
            if a and b and "median" in a and "median" in b and a["median"]:
                rel = b["median"] / a["median"] - 1
                change = f"{rel * 100:+.1f}%"
                # the spread of under 3 repeats says little about the noise: ask for more then
                noise = max(a["spread"], b["spread"], 0.05 if min(a["n"], b["n"]) >= 3 else 0.25)
                if abs(rel) > noise:
                    better = (rel > 0) == bool(b.get("higher_is_better"))
                    flag = "better" if better else "**worse**"
                if a.get("params") != b.get("params"):
                    flag = (flag + " (settings differ)").strip()
            unit = (b or a or {}).get("unit", "")
            rows.append(f"| {fam} | {key} ({unit}) | {sa} | {sb} | {change} | {flag} |")
    return "\n".join(rows)
