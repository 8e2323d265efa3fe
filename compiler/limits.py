"""What reading a model file may cost: the limits, their defaults, and how to change them.

A model file is untrusted input (DESIGN.md, "What a model file may do").  Loading,
validation, scheduling and lowering are linear in the file's size; on top of that, these
caps bound what a small file can make the machine do.  Each is checked *before* the work
or the allocation it bounds, and exceeding one raises a located
:class:`~torchmdf.errors.TorchMDFError` that names the limit and how to raise it.

Change them for the whole process, or for a block::

    import torchmdf
    torchmdf.limits.LIMITS.max_file_bytes = 8 << 30
    with torchmdf.limits.override(max_elements=1 << 31):
        gm = torchmdf.compile("big.json", target="fx")

Expression length and nesting have fixed caps of their own
(``torchmdf.mdf.expressions.MAX_EXPRESSION_LENGTH``, ``MAX_EXPRESSION_DEPTH``).  Or set them with environment variables ``TORCHMDF_MAX_FILE_BYTES``, ``TORCHMDF_MAX_ELEMENTS``,
``TORCHMDF_MAX_SCHEDULE_WORK`` (read once, at import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Iterator


@dataclasses.dataclass
class Limits:
    max_file_bytes: int = 2 << 30
    """Largest model file ``torchmdf.mdf.load`` reads (bytes); only regular files are read."""
    max_elements: int = 1 << 28
    """Most elements one tensor made from file data may have (a constant, a folded value, an
    op output of static shape in a graph lowered from a file): 2**28 (1 GiB of float32)."""
    max_schedule_work: int = 50_000_000
    """Most condition checks the MDF scheduler may make in one evaluation (graph_scheduler
    re-checks a consideration set until nothing more runs; this bounds a file whose
    conditions make that quadratic or endless)."""
    max_loop_iterations: int = 1_000_000
    """Most iterations one run of an ``onnx::Loop`` read from a file may make (a loop whose
    condition never turns false would otherwise run forever)."""

    def check_elements(self, n: int, what: str, location: str | None = None) -> None:
        """Raise a located error if a tensor of ``n`` elements exceeds ``max_elements``."""
        if n > self.max_elements:
            from .errors import ConversionError

            raise ConversionError(
                f"{what} would have {n:,} elements, more than the limit of {self.max_elements:,}",
                location=location,
                hint="raise torchmdf.limits.LIMITS.max_elements (or TORCHMDF_MAX_ELEMENTS) if the file "
                "is trusted")


def _from_env(lim: Limits) -> Limits:
    for f in dataclasses.fields(lim):
        raw = os.environ.get("TORCHMDF_" + f.name.upper())
        if raw:
            try:
                setattr(lim, f.name, int(raw))
            except ValueError:
                pass
    return lim


LIMITS = _from_env(Limits())


@contextlib.contextmanager
def override(**changes: int) -> Iterator[Limits]:
    """Change some limits inside a ``with`` block (restored afterwards)."""
    names = {f.name for f in dataclasses.fields(LIMITS)}
    unknown = sorted(set(changes) - names)
    if unknown:
        from .errors import TorchMDFError

        raise TorchMDFError(f"unknown limit(s) {', '.join(unknown)}; the limits are {', '.join(sorted(names))}")
    saved = {k: getattr(LIMITS, k) for k in changes}
    for k, v in changes.items():
        setattr(LIMITS, k, v)
    try:
        yield LIMITS
    finally:
        for k, v in saved.items():
            setattr(LIMITS, k, v)




def static_numel(shape: Any) -> int | None:
    """Elements of a shape whose dims are all ints; None when one is symbolic or unknown."""
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def check_graph_sizes(graph: Any) -> None:
    """Refuse a graph read from a file in which a tensor of static shape (a constant, a
    weight, an op's output) would exceed ``LIMITS.max_elements``: checked after shape
    inference, before any code runs, so ``aten::zeros([7e8])`` never allocates."""
    cap = LIMITS.max_elements
    for v in graph.parameters.values():
        if v.tensor is not None and v.tensor.numel() > cap:
            LIMITS.check_elements(v.tensor.numel(), f"the tensor %{v.name}")
    for node in graph:
        for o in node.outputs:
            shape = o.type.shape
            if shape is not None:
                n = static_numel(shape)
                if n is not None and n > cap:
                    LIMITS.check_elements(n, f"the output %{o.name} of {node.op}", node.location())


__all__ = ["Limits", "LIMITS", "override", "check_graph_sizes", "static_numel"]
