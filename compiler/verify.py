"""``torchmdf verify``: one model run through every path torchmdf has (native torch, the
converted FX module, the MDF file read back, onnxruntime, modeci_mdf) on the same inputs, a
table of the differences, and, on a mismatch, the first IR node whose value diverges.

How a divergence is located (per node, in the IR's order):

* between the IR and a backend's FX module: the reference interpreter
  (:func:`torchmdf.interpreter.run_graph`) gives every IR value by name; the FX module is run
  node by node (``torch.fx.Interpreter``) and each FX node is matched to the IR node it was
  emitted for through the location the FX backend records on it (``torchmdf_location``);
* between native torch and the IR: the ``torch.export`` program is run node by node and its
  nodes are matched by name (the export frontend keeps torch's node names as IR value names).

The first IR node (in topological order) whose two values differ beyond the tolerance is named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import TorchMDFError, UnsupportedOpError

_LOCATION = re.compile(r"^node %([^\s,=]+) =")


def _as_tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, dict):
        return [t for v in x.values() for t in _as_tensors(v)]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _as_tensors(v)]
    return [torch.as_tensor(x)]


def fx_node_values(gm: torch.fx.GraphModule, inputs: Sequence[Any]) -> list[tuple[torch.fx.Node, Any]]:
    """Every FX node's value (in graph order) for one run of ``gm`` on ``inputs``."""
    seen: list[tuple[torch.fx.Node, Any]] = []

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            r = super().run_node(n)
            seen.append((n, r))
            return r

    with torch.no_grad():
        _Recorder(gm).run(*inputs)
    return seen


def fx_values_by_ir_name(gm: torch.fx.GraphModule, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
    """The value of each IR node (by IR value name) as ``gm`` (emitted by torchmdf's FX
    backend) computed it: the last tensor of the FX nodes emitted for that IR node."""
    out: dict[str, torch.Tensor] = {}
    for n, value in fx_node_values(gm, inputs):
        m = _LOCATION.match(str(n.meta.get("torchmdf_location", "")))
        if m and isinstance(value, torch.Tensor):
            out[m.group(1)] = value
    return out


def exported_values(ep: torch.export.ExportedProgram, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Each node's value (by node name) of a torch.export program run on ``inputs``."""
    gm = ep.module()
    return {n.name: v for n, v in fx_node_values(gm, inputs) if isinstance(v, torch.Tensor)}


def ir_values(graph: Any, inputs: Sequence[Any]) -> dict[str, Any]:
    """Every IR value by name from the reference interpreter."""
    from .interpreter import run_graph

    values: dict[str, Any] = {}
    with torch.no_grad():
        run_graph(graph, list(inputs), values=values)
    return values


def close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    ta, tb = _as_tensors(a), _as_tensors(b)
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            return False
        if x.is_floating_point() or y.is_floating_point() or x.is_complex():
            x, y = x.double(), y.double()
            if not bool(((x - y).abs() <= atol + rtol * y.abs()).all() | (x.isnan() & y.isnan()).all()):
                return False
        elif not torch.equal(x, y):
            return False
    return True


def first_divergence(graph: Any, reference: dict[str, Any], other: dict[str, Any], atol: float,
                     rtol: float) -> tuple[Any, float] | None:
    """The first node of ``graph`` (IR order) whose output is in both value maps and differs
    between them, with its max abs difference; None when every shared value agrees."""
    for node in graph:
        for o in node.outputs:
            if o.name in reference and o.name in other and not close(other[o.name], reference[o.name], atol, rtol):
                return node, diff_abs(other[o.name], reference[o.name])[0]
    return None


def diff_abs(got: Any, expected: Any) -> tuple[float, float]:
    """(max abs difference, max relative difference) over every tensor of two outputs."""
    a, b = _as_tensors(got), _as_tensors(expected)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf"), float("inf")
    mabs = mrel = 0.0
    for x, y in zip(a, b):
        if not x.numel():
            continue
        d = (x.double() - y.double()).abs()
        d = torch.where(x.double().isnan() & y.double().isnan(), torch.zeros_like(d), d)
        mabs = max(mabs, float(d.max()))
        mrel = max(mrel, float((d / y.double().abs().clamp_min(1e-12)).max()))
    return mabs, mrel


@dataclasses.dataclass
class PathResult:
    """One path's outcome: its outputs, or why it did not run."""

    name: str
    outputs: Any = None
    skipped: str | None = None
    failed: str | None = None
    abs_diff: float = 0.0
    rel_diff: float = 0.0
    ok: bool = True


@dataclasses.dataclass
class Verification:
    reference: str
    paths: list[PathResult]
    divergence: str | None = None

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.paths)

    @property
    def differs(self) -> bool:
        """Whether some path ran and gave different outputs (a failed path is not located)."""
        return any(not p.ok and p.failed is None for p in self.paths)

    def table(self) -> str:
        rows = [f"{'path':<34} {'max abs diff':>13} {'max rel diff':>13}  result"]
        for p in self.paths:
            if p.skipped:
                rows.append(f"{p.name:<34} {'-':>13} {'-':>13}  skipped: {p.skipped}")
            elif p.failed:
                rows.append(f"{p.name:<34} {'-':>13} {'-':>13}  FAILED: {p.failed}")
            elif p.name == self.reference:
                rows.append(f"{p.name:<34} {'':>13} {'':>13}  reference")
            else:
                rows.append(f"{p.name:<34} {p.abs_diff:>13.3g} {p.rel_diff:>13.3g}  {'ok' if p.ok else 'MISMATCH'}")
        return "\n".join(rows)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:120]


def _run_path(name: str, fn: Callable[[], Any], optional: tuple[type[BaseException], ...] = ()) -> PathResult:
    """Run one path: its outputs; skipped when a tool is missing or the path does not apply
    (``optional`` errors); failed (a mismatch) when it breaks otherwise."""
    try:
        with torch.no_grad():
            return PathResult(name, outputs=fn())
    except ImportError as e:
        return PathResult(name, skipped=f"{e.name or e} is not installed")
    except optional as e:
        return PathResult(name, skipped=_first_line(e))
    except Exception as e:  # noqa: BLE001 - a path that breaks is reported in the table, not raised
        return PathResult(name, failed=f"{type(e).__name__}: {_first_line(e)}", ok=False)


def _compare(result: Verification, atol: float, rtol: float) -> None:
    ref = next(p for p in result.paths if p.name == result.reference)
    if ref.outputs is None:
        raise TorchMDFError(f"the reference ({ref.name}) did not run: {ref.failed or ref.skipped}")
    for p in result.paths:
        if p.skipped or p.failed or p is ref:
            continue
        p.abs_diff, p.rel_diff = diff_abs(p.outputs, ref.outputs)
        p.ok = close(p.outputs, ref.outputs, atol, rtol)


class _NotApplicable(Exception):
    """A path that does not apply to this model (skipped, not failed)."""


def _onnx_outputs(graph: Any, inputs: Sequence[Any]) -> list[torch.Tensor]:
    """onnxruntime on the graph's ONNX form; not applicable where it has none (an op without an
    ONNX form, or state).  Every other failure (the checker, onnxruntime refusing the model)
    is a failure of the path."""
    import onnxruntime  # noqa: F401 - the path is skipped where it is not installed

    import torchmdf

    if graph.state:
        raise _NotApplicable("a stateful graph has no ONNX form")
    if not graph.outputs:
        raise _NotApplicable("the graph has no outputs")
    try:
        model = torchmdf.emit(graph.clone(), "onnx")
    except UnsupportedOpError as e:
        raise _NotApplicable(f"{len(e.ops) if hasattr(e, 'ops') else 'some'} op(s) have no ONNX form") from e
    from torchmdf.backends.onnx import ATEN_DOMAIN

    if any(o.domain == ATEN_DOMAIN for o in model.opset_import):  # onnxruntime has no kernels for them
        raise _NotApplicable("ops with no ONNX form are written as aten:: fallbacks")
    return _onnx_run(model, inputs)


def _onnx_run(onnx_model: Any, inputs: Sequence[Any]) -> list[torch.Tensor]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # its error comes back as the exception; no log line besides
    sess = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {n: torch.as_tensor(x).numpy() for n, x in zip(names, inputs)}
    return [torch.from_numpy(r) for r in sess.run(None, feed)]


def emit_fx(graph: Any) -> torch.fx.GraphModule:
    """The FX module verified (a function of its own so a test can stand in a faulty backend)."""
    from torchmdf.backends import get_backend

    return get_backend("fx").emit(graph)


def verify_module(model: torch.nn.Module | torch.export.ExportedProgram, inputs: Sequence[Any], *,
                  atol: float = 1e-5, rtol: float = 1e-4) -> Verification:
    """Native torch (the reference), the converted FX module, the MDF file written and read back,
    and onnxruntime, on ``inputs``.  ``model``: an nn.Module or an ExportedProgram."""
    import torchmdf

    inputs = tuple(inputs)
    native = model.module() if isinstance(model, torch.export.ExportedProgram) else model
    paths = [_run_path("native torch", lambda: native(*inputs))]
    graph = torchmdf.lower(model, inputs)
    optimized = graph.clone()
    from torchmdf.passes import run_passes

    optimized, _ = run_passes(optimized, None)
    from torchmdf.backends import get_backend

    gm = emit_fx(optimized)
    paths.append(_run_path("torchmdf FX module", lambda: gm(*inputs)))

    def from_file() -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "model.json"
            torchmdf.mdf.save(get_backend("mdf").emit(optimized.clone()), f)
            return torchmdf.compile(f, target="fx")(*inputs)

    paths.append(_run_path("MDF file -> FX", from_file))
    paths.append(_run_path("onnxruntime", lambda: _onnx_outputs(optimized, inputs), optional=(_NotApplicable,)))
    result = Verification("native torch", paths)
    _compare(result, atol, rtol)
    if result.differs:
        result.divergence = _locating(lambda: _locate_module(model, inputs, graph, optimized, gm, atol, rtol))
    return result


def _describe(node: Any, diff: float, between: str) -> str:
    return f"first diverging IR node ({between}): %{', %'.join(o.name for o in node.outputs)} = {node.op} " \
           f"[{node.location()}], max abs diff {diff:.3g}"


def _locate_module(model: Any, inputs: tuple, graph: Any, optimized: Any, gm: Any, atol: float,
                   rtol: float) -> str:
    ir_raw = ir_values(graph, inputs)
    try:
        ep = model if isinstance(model, torch.export.ExportedProgram) else torch.export.export(model, inputs)
        found = first_divergence(graph, exported_values(ep, inputs), ir_raw, atol, rtol)
        if found:
            return _describe(*found, "torch.export program vs IR interpreter")
    except Exception:  # noqa: BLE001 - the model may not export; the other comparisons still run
        pass
    ir_opt = ir_values(optimized, inputs)
    found = first_divergence(optimized, ir_raw, ir_opt, atol, rtol)
    if found:
        return _describe(*found, "IR before vs after the passes")
    found = first_divergence(optimized, ir_opt, fx_values_by_ir_name(gm, inputs), atol, rtol)
    if found:
        return _describe(*found, "IR interpreter vs FX module")
    return "no single IR node diverges: the difference appears at the outputs (or in a path run outside the IR)"


def _modeci_outputs(path: str, port_names: list[str]) -> dict[str, Any]:
    from modeci_mdf.execution_engine import EvaluableGraph
    from modeci_mdf.utils import load_mdf

    m = load_mdf(path)
    with contextlib.redirect_stdout(io.StringIO()):  # modeci_mdf prints its progress
        eg = EvaluableGraph(m.graphs[0], verbose=False)
        eg.evaluate()
    out = {}
    for key in port_names:
        node, port = key.split(".", 1)
        out[key] = torch.as_tensor(eg.enodes[node].evaluable_outputs[port].curr_value)
    return out


def verify_mdf_file(path: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> Verification:
    """The reference interpreter on the file's IR (the reference), the FX module compiled from
    the file, modeci_mdf's EvaluableGraph, and onnxruntime where the model converts to ONNX."""
    import torchmdf
    from torchmdf.passes import run_passes


    graph = torchmdf.lower(path)
    defaults = [v.meta.get("default") for v in graph.inputs]

    def interpreted() -> dict[str, Any]:
        from .interpreter import run_graph

        with torch.no_grad():
            outs, _ = run_graph(graph, defaults)
        return dict(zip(graph.output_names or [v.name for v in graph.outputs], outs))

    paths = [_run_path("IR interpreter (no passes)", interpreted)]
    optimized, _ = run_passes(graph.clone(), None)
    gm = emit_fx(optimized)
    paths.append(_run_path("MDF file -> FX module", lambda: dict(gm())))
    names = list(paths[0].outputs or {})
    # modeci_mdf failing on a model is modeci_mdf's limit, not a torchmdf mismatch
    paths.append(_run_path("modeci_mdf EvaluableGraph", lambda: _modeci_outputs(path, names),
                           optional=(Exception,)))
    paths.append(_run_path("onnxruntime", lambda: dict(zip(names, _onnx_outputs(optimized, defaults))),
                           optional=(_NotApplicable,)))
    result = Verification("IR interpreter (no passes)", paths)
    _compare(result, atol, rtol)
    if result.differs:
        result.divergence = _locating(lambda: _locate_file(graph, optimized, gm, defaults, atol, rtol))
    return result


def _locating(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the table is still worth printing
        return f"could not locate the divergence: {type(e).__name__}: {_first_line(e)}"


def _locate_file(graph: Any, optimized: Any, gm: Any, defaults: list, atol: float, rtol: float) -> str:
    ir_raw = ir_values(graph, defaults)
    ir_opt = ir_values(optimized, defaults)
    found = first_divergence(optimized, ir_raw, ir_opt, atol, rtol)
    if found:
        return _describe(*found, "IR before vs after the passes")
    found = first_divergence(optimized, ir_opt, fx_values_by_ir_name(gm, ()), atol, rtol)
    if found:
        return _describe(*found, "IR interpreter vs FX module")
    return "no IR node diverges inside torchmdf (interpreter, passes, FX agree): the difference is " \
           "in modeci_mdf's or onnxruntime's evaluation"
