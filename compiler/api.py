"""The user-facing calls: :func:`compile`, :func:`lower`, :func:`emit`, :func:`simulate`."""

from __future__ import annotations

import contextlib
import gc
import os
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .errors import TorchMDFError
from .ir import Graph

TARGETS = ("mdf", "fx", "onnx", "ir")


def _is_mdf_model(obj: Any) -> bool:
    try:
        from .mdf import Model
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Model)


def lower(model: Any, example_inputs: Sequence[Any] | None = None, *, method: str | None = None,
          dynamic_shapes: Any = None, dynamic_batch: bool = False, graph: str | None = None) -> Graph:
    """Any supported input -> IR graph (no passes run).

    ``method`` picks the PyTorch frontend for an ``nn.Module``: ``"export"`` (default),
    ``"fx"`` (symbolic_trace), ``"trace"`` or ``"script"`` (TorchScript).
    ``dynamic_shapes`` (as ``torch.export`` takes it) keeps dims symbolic; ``dynamic_batch=True``
    is the short form for dim 0 of every tensor input, one shared ``"batch"`` dim.  Dims not
    made dynamic are checked by the converted module.
    """
    if dynamic_batch or dynamic_shapes is not None:
        _check_dynamic(model, method, dynamic_shapes, dynamic_batch)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)) or _is_mdf_model(model):
        from .frontends.mdf import lower_mdf

        return lower_mdf(model, graph=graph)
    if isinstance(model, torch.fx.GraphModule) and method in (None, "fx"):
        from .frontends.fx import lower_fx

        return lower_fx(model, example_inputs)
    if method == "fx":
        from .frontends.fx import lower_fx

        return lower_fx(model, example_inputs)
    from .frontends import lower_pytorch

    return lower_pytorch(model, example_inputs, method=method or "export", dynamic_shapes=dynamic_shapes,
                         dynamic_batch=dynamic_batch)


def _check_dynamic(model: Any, method: str | None, dynamic_shapes: Any, dynamic_batch: bool) -> None:
    if dynamic_batch and dynamic_shapes is not None:
        raise TorchMDFError("both dynamic_batch and dynamic_shapes were given",
                            hint="dynamic_batch=True is the short form of dynamic_shapes with dim 0 of each "
                            "input dynamic; give one of them")
    exported = isinstance(model, nn.Module) and not isinstance(model, (torch.fx.GraphModule, torch.jit.ScriptModule))
    if not exported or method not in (None, "export"):
        what = f"method={method!r}" if exported else f"a {type(model).__name__}"
        raise TorchMDFError(f"dynamic shapes need torch.export, not {what}",
                            hint="convert the nn.Module with method='export' (the default); TorchScript and FX "
                            "graphs are specialized to the example inputs' shapes")


def emit(graph: Graph, target: str = "mdf", **options: Any) -> Any:
    """IR graph -> ``target`` ("mdf": torchmdf.mdf.Model, "fx": GraphModule, "onnx": ModelProto)."""
    if target == "fx":
        from torchmdf.backends.fx import emit_fx

        if graph.metadata.get("mdf_source") and "input_defaults" not in options:
            options["input_defaults"] = True
        return emit_fx(graph, **options)
    if target == "mdf":
        from torchmdf.backends.mdf import emit_mdf

        return emit_mdf(graph, **options)
    if target == "onnx":
        from torchmdf.backends.onnx import emit_onnx

        return emit_onnx(graph, **options)
    if target == "ir":
        return graph
    raise TorchMDFError(f"unknown target {target!r}", hint=f"choose one of {', '.join(TARGETS)}")


def compile(model: Any, target: str = "mdf", example_inputs: Sequence[Any] | None = None, *,  # noqa: A001
            passes: Sequence[str | Callable[[Graph], Any] | Any] | None = None, method: str | None = None,
            dynamic_shapes: Any = None, dynamic_batch: bool = False, verify_each: bool = True,
            instrument: Any = None, **emit_options: Any) -> Any:
    """Lower ``model``, run ``passes`` (None: the default pipeline; a list: exactly that list),
    and emit ``target``.  See DESIGN.md for the accepted inputs."""
    from torchmdf.passes import run_passes

    if target not in TARGETS:
        raise TorchMDFError(f"unknown target {target!r}", hint=f"choose one of {', '.join(TARGETS)}")
    if isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule) \
            and not isinstance(model, torch.jit.ScriptModule) and example_inputs is None and method != "fx":
        raise TorchMDFError(f"compiling a {type(model).__name__} needs example_inputs",
                            hint="torchmdf.compile(model, example_inputs=(x,))")
    with gc_paused():
        g = lower(model, example_inputs, method=method, dynamic_shapes=dynamic_shapes,
                  dynamic_batch=dynamic_batch)
        if isinstance(model, Graph):
            g = g.clone()
        g, _ = run_passes(g, passes, verify_each=verify_each, instrument=instrument)
        if g.metadata.get("mdf_source"):  # read from a file: nothing over the size limit runs
            from .limits import check_graph_sizes

            check_graph_sizes(g)
        if target == "fx" and isinstance(model, (str, os.PathLike)):
            # the file's tensors were made for this call: the module takes them without a copy
            # (memory-mapped external weights stay mapped, see torchmdf.mdf.weights)
            emit_options.setdefault("copy_weights", False)
        return emit(g, target, **emit_options)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic GC paused while a big graph is built: its collections scan every live
    object, so building 100k nodes with it on costs a third more (measured); the graph holds
    no garbage cycles to reclaim meanwhile.  The previous state is restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def simulate(model: Any, steps: int = 1, dt: float = 0.01, *, graph: str | None = None,
             inputs: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Run an MDF model ``steps`` times as modeci_mdf does (``evaluate()`` once, then
    ``evaluate(time_increment=dt)``); returns ``{"node.port": tensor[steps, ...]}`` for every
    output port."""
    from torchmdf.simulation import simulate as _simulate

    return _simulate(model, steps=steps, dt=dt, graph=graph, inputs=inputs)
