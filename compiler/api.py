"""The user-facing calls: :func:`compile`, :func:`lower`, :func:`emit`, :func:`simulate`,
:func:`simulation_graph`."""

from __future__ import annotations

import contextlib
import gc
import os
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .errors import TorchMDFError
from .ir import Graph


def lower(model: Any, example_inputs: Sequence[Any] | None = None, *, method: str | None = None,
          dynamic_shapes: Any = None, dynamic_batch: bool = False, graph: str | None = None) -> Graph:
    """Any supported input -> IR graph (no passes run).

    The frontend is found in the registry (:func:`torchmdf.register_frontend`): by ``method``
    (a frontend's name; for an ``nn.Module``: ``"export"``, the default, ``"fx"``
    (symbolic_trace), ``"trace"`` or ``"script"`` (TorchScript)), else by a path's suffix,
    else by the object's type.  ``dynamic_shapes`` (as ``torch.export`` takes it) keeps dims
    symbolic; ``dynamic_batch=True`` is the short form for dim 0 of every tensor input, one
    shared ``"batch"`` dim.  Dims not made dynamic are checked by the converted module.
    ``graph`` picks the graph of an MDF model with several.
    """
    from .frontends import select_frontend

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    fe = select_frontend(model, method)
    if dynamic_batch or dynamic_shapes is not None:
        _check_dynamic(model, fe, dynamic_shapes, dynamic_batch)
    options: dict[str, Any] = {}
    if dynamic_shapes is not None:
        options["dynamic_shapes"] = dynamic_shapes
    if dynamic_batch:
        options["dynamic_batch"] = True
    if graph is not None:
        options["graph"] = graph
    return fe.lower(model, example_inputs, **options)


def _check_dynamic(model: Any, frontend: Any, dynamic_shapes: Any, dynamic_batch: bool) -> None:
    if dynamic_batch and dynamic_shapes is not None:
        raise TorchMDFError("both dynamic_batch and dynamic_shapes were given",
                            hint="dynamic_batch=True is the short form of dynamic_shapes with dim 0 of each "
                            "input dynamic; give one of them")
    traced = isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule)
    if not traced or not frontend.dynamic:
        what = f"method={frontend.name!r}" if traced else f"a {type(model).__name__}"
        raise TorchMDFError(f"dynamic shapes need torch.export or TorchScript, not {what}",
                            hint="convert the nn.Module with method='export' (the default), 'trace' or 'script'; "
                            "FX graphs, ONNX and MDF files keep the shapes they have")


def emit(graph: Graph, target: str = "mdf", **options: Any) -> Any:
    """IR graph -> ``target``, a registered backend (:func:`torchmdf.register_backend`):
    "mdf": torchmdf.mdf.Model, "fx": GraphModule, "onnx": ModelProto, "ir": the graph."""
    from torchmdf.backends import get_backend

    return get_backend(target).emit(graph, **options)


def compile(model: Any, target: str = "mdf", example_inputs: Sequence[Any] | None = None, *,  # noqa: A001
            passes: Sequence[Any] | None = None, method: str | None = None,
            dynamic_shapes: Any = None, dynamic_batch: bool = False, verify_each: bool = True,
            instrument: Any = None, **emit_options: Any) -> Any:
    """Lower ``model``, run ``passes`` (None: the default pipeline; a list: exactly that list;
    an item is a Pass, a function, a name, ``"name{option=value}"`` or ``(name, {options})``),
    and emit ``target``.  See DESIGN.md for the accepted inputs."""
    from torchmdf.backends import get_backend
    from torchmdf.frontends import select_frontend
    from torchmdf.passes import run_passes

    backend = get_backend(target)
    frontend = select_frontend(model, method)
    if example_inputs is None and frontend.needs_example_inputs is not None and frontend.needs_example_inputs(model):
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
        return backend.emit(g, **emit_options)


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
             inputs: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
             device: Any = None, method: str = "euler", compile: bool = False,
             chunk: int = 64, progress: Any = None) -> dict[str, torch.Tensor]:
    """Run an MDF model ``steps`` times as modeci_mdf does (``evaluate()`` once, then
    ``evaluate(time_increment=dt)``); returns ``{"node.port": tensor[steps, ...]}`` for every
    output port.  ``params`` (``"node.parameter"``) and ``inputs`` (``"node.port"``) take
    values or batches (a leading dimension: trajectories ``[steps, B, ...]``); gradients flow
    to tensors given there; ``device`` runs it there; ``method``: ``"euler"`` (modeci_mdf's)
    or ``"rk4"``; ``compile=True`` compiles ``chunk`` steps at a time with ``torch.compile``
    (see :mod:`torchmdf.simulation`); ``progress(done, total)`` is called as steps complete."""
    from torchmdf.simulation import simulate as _simulate

    return _simulate(model, steps=steps, dt=dt, graph=graph, inputs=inputs, params=params, device=device,
                     method=method, compile=compile, chunk=chunk, progress=progress)


def simulation_graph(model: Any, steps: int, *, graph: str | None = None, params: Any = (), inputs: Any = (),
                     method: str = "euler") -> Any:
    """The simulation of ``steps`` evaluations as one IR graph whose time loop is an
    ``onnx::Loop`` region: inputs ``dt``, then the ``params`` named (``"node.parameter"``), then
    the free ``inputs`` named (``"node.port"``); outputs ``"node.port"`` -> ``[steps, ...]``,
    equal to :func:`simulate`'s trajectories.  Run it with :mod:`torchmdf.interpreter`, or
    ``compile`` it to FX, ONNX or MDF (see :mod:`torchmdf.simulation_program`)."""
    from torchmdf.simulation_program import simulation_graph as _simulation_graph

    return _simulation_graph(model, steps, graph=graph, params=params, inputs=inputs, method=method)
