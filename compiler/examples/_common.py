"""What every example shares: its command line (``--out DIR``), where its files go, and one
way to report a comparison (what was compared, the max abs difference, whether it is within
tolerance), so each example ends with the same verdict and exit status."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch


def example_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m torchmdf.examples.{name}", description=description)
    p.add_argument("--out", default=".", help="folder for the files the example writes (default: here)")
    return p


def out_dir(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def max_abs_diff(a: Any, b: Any) -> float:
    """Max |a - b| over every tensor of two outputs of the same structure (inf if they differ
    in count or shape)."""
    from torchmdf.verify import diff_abs

    return diff_abs(a, b)[0]


class Report:
    """Collects comparisons; :meth:`finish` prints the verdict and gives the exit status."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def compare(self, what: str, got: Any, expected: Any, tol: float) -> float:
        return self.verdict(what, max_abs_diff(got, expected), tol)

    def verdict(self, what: str, diff: float, tol: float) -> float:
        ok = diff <= tol
        print(f"  {what}: max abs diff {diff:.3g} (tolerance {tol:g}) {'ok' if ok else 'MISMATCH'}")
        if not ok:
            self.failed.append(what)
        return diff

    def require(self, what: str, ok: bool) -> None:
        print(f"  {what}: {'ok' if ok else 'FAILED'}")
        if not ok:
            self.failed.append(what)

    def finish(self) -> int:
        if self.failed:
            print(f"FAILED: {', '.join(self.failed)}")
            return 1
        print("all comparisons agree")
        return 0


def draw_picture(model: Any, path: Path, level: int) -> Path | None:
    """Draw with torchmdf's picture backend; None (and a note) where no renderer is installed."""
    from torchmdf.errors import TorchMDFError
    from torchmdf.mdf.picture import draw

    try:
        written = draw(model, path, level=level)
    except TorchMDFError as e:
        if "renderer" not in str(e):
            raise
        print(f"  picture skipped: {e}")
        return None
    print(f"  picture (level {level}): {written}")
    return written


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with at most ``n`` intra-op threads (small models train faster on a busy machine),
    then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
