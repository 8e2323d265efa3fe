"""Drop-in versions of ``modeci_mdf.interfaces.pytorch``: :func:`pytorch_to_mdf` and
:func:`mdf_to_pytorch`, same names and arguments, built on :func:`torchmdf.compile`.

Differences from modeci_mdf (kept small, and only where the original's behaviour is an
artefact of how it is built):

* ``pytorch_to_mdf`` scripts a plain function with ``torch.jit.script`` (as modeci_mdf does;
  ``torch.export`` when it cannot be scripted), so its control flow on tensor data becomes
  If/Loop regions.  A module is lowered through ``torch.export`` by default (modeci_mdf scripts the model
  with TorchScript and goes through the ONNX exporter); ``trace=True`` uses ``torch.jit.trace``
  as there.  It returns ``(model, params_dict)`` like modeci_mdf: the model's inputs are
  ``input1``, ``input2``, ... and ``params_dict`` holds the weights keyed as modeci_mdf keys
  them (``"fc1_weight"``); the model is a :class:`torchmdf.mdf.Model` that already holds the
  weights (its metadata keeps the PyTorch names, so the way back gives the same ``state_dict``).
* ``mdf_to_pytorch`` generates no Python source and writes nothing to disk (modeci_mdf writes
  ``<model>_pytorch.py`` next to the input file and imports it): each graph becomes a
  ``torch.fx.GraphModule``.  ``model_input`` may be the file the model came from (as in
  modeci_mdf; it is loaded when ``mdf_model`` is None) or a dict of input values that replace
  the defaults of the graphs' free input ports.  ``version`` is accepted for compatibility
  ("mdf.s" or "mdf.0") and changes nothing.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import torch
from torch import nn

from torchmdf.errors import ConversionError, TorchMDFError
from torchmdf.ir import ValueRole
from torchmdf.ir.meta_keys import MDF_PORT

_VERSIONS = ("mdf.s", "mdf.0")


class _FunctionModule(nn.Module):
    """A plain function (modeci_mdf accepts those and scripts them) as a module."""

    def __init__(self, fn: Callable[..., Any]):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _lower_function(fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> Any:
    """A plain function scripted with ``torch.jit.script``, as modeci_mdf does, so its
    control flow on tensor data (``if``/``while``/``for``) becomes If/Loop regions; None
    when it cannot be scripted (then it is exported like a module)."""
    from torchmdf.frontends.torchscript import lower_script_module

    try:
        sf = fn if isinstance(fn, torch.jit.ScriptFunction) else torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - not scriptable: torch.export instead
        return None
    g = lower_script_module(sf, args)
    g.name = name
    return g


def _pipeline(use_onnx_ops: bool) -> list[Any]:
    from torchmdf.passes import DEFAULT_PIPELINE, Canonicalize

    return [Canonicalize(use_onnx_ops=use_onnx_ops) if p == "canonicalize" else p for p in DEFAULT_PIPELINE]


def pytorch_to_mdf(model: nn.Module | Callable[..., Any] | torch.jit.ScriptModule,
                   args: torch.Tensor | tuple[Any, ...] | None = None, trace: bool = False,
                   use_onnx_ops: bool = True) -> tuple[Any, dict[str, torch.Tensor]]:
    """Convert a PyTorch model (module, ScriptModule or plain function) to MDF.

    ``args``: the example inputs (a tensor or a tuple).  ``trace``: lower a ``torch.jit.trace``
    of the model instead of a ``torch.export`` program.  ``use_onnx_ops``: write ONNX ops where
    an exact one exists (ATen otherwise); False keeps every op in its ATen spelling.

    Returns ``(model, params_dict)``: the :class:`torchmdf.mdf.Model`, whose inputs are named
    ``input1``, ``input2``, ... as modeci_mdf names them, and the model's parameters and
    buffers keyed by their modeci_mdf port names (``"fc1.weight"`` -> ``"fc1_weight"``).
    """
    import torchmdf
    from torchmdf.api import emit, lower
    from torchmdf.passes import run_passes

    if isinstance(args, (torch.Tensor, int, float, bool)):
        args = (args,)
    if args is None and not isinstance(model, torch.jit.ScriptModule):
        raise TorchMDFError(f"converting a {type(model).__name__} needs example inputs",
                            hint="pytorch_to_mdf(model, args=(x,))")
    g = None
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ConversionError(f"cannot convert a {type(model).__name__}",
                                  hint="pass an nn.Module, a ScriptModule or a function")
        name = _ident(getattr(model, "__name__", "function"))
        if not trace:
            g = _lower_function(model, args, name)
        if g is None:
            cls = type(name, (_FunctionModule,), {})
            model = cls(model)  # the class name becomes the MDF model id
    if g is None:
        method = None if isinstance(model, torch.jit.ScriptModule) else "trace" if trace else "export"
        g = lower(model, args, method=method)
    g, _ = run_passes(g, _pipeline(use_onnx_ops))
    _reference_input_names(g)
    params = {_port_id(name): v.tensor for name, v in g.parameters.items() if v.role.is_named_tensor}
    for sv in g.state:
        if sv.init is not None:
            params[_port_id(sv.name)] = sv.init
    mdf_model = emit(g, target="mdf")
    if not isinstance(mdf_model, torchmdf.mdf.Model):  # pragma: no cover - guarded by the backend
        raise ConversionError("the MDF backend did not return a model")
    return mdf_model, params


def mdf_to_pytorch(mdf_model: Any = None, model_input: str | os.PathLike | Mapping[str, Any] | None = None,
                   eval_models: bool = True, version: str = "mdf.s") -> dict[str, torch.fx.GraphModule]:
    """Build one PyTorch module per graph of an MDF model: ``{graph id: GraphModule}``.

    ``mdf_model``: a :class:`torchmdf.mdf.Model`, a modeci_mdf ``Model``, or a path to an MDF
    file.  ``model_input``: the file it came from (loaded when ``mdf_model`` is None), or a
    dict ``{input: value}`` (the input port id, or ``"node.port"``) of values to use instead
    of the defaults in the file.  ``eval_models``: put the modules in eval mode (else train
    mode).  ``version``: "mdf.s" or "mdf.0", accepted for compatibility.

    Each module takes the graph's free input ports as optional arguments and returns what
    ``torchmdf.compile(..., target="fx")`` returns for that graph.  Nothing is written to disk.
    """
    from torchmdf.api import emit
    from torchmdf.frontends.mdf import lower_mdf
    from torchmdf.passes import run_passes

    if version not in _VERSIONS:
        raise TorchMDFError(f"unknown MDF version {version!r}", hint=f"use one of {', '.join(_VERSIONS)}")
    inputs: Mapping[str, Any] | None = None
    if isinstance(model_input, Mapping):
        inputs = model_input
    elif model_input is not None and mdf_model is None:
        mdf_model = model_input
    if mdf_model is None:
        raise TorchMDFError("no MDF model given", hint="mdf_to_pytorch(model) or mdf_to_pytorch(None, 'file.json')")
    model = _as_model(mdf_model)
    modules: dict[str, torch.fx.GraphModule] = {}
    for mg in model.graphs:
        # what torchmdf.compile(model, target="fx") does, for each graph
        g, _ = run_passes(lower_mdf(model, graph=mg.id), None)
        gm = emit(g, target="fx")
        if inputs:
            _set_defaults(gm, g, inputs)
        gm.train(not eval_models)
        modules[mg.id] = gm
    return modules


def _as_model(obj: Any) -> Any:
    """A torchmdf.mdf.Model from one, from a path, or from a modeci_mdf Model."""
    from torchmdf import mdf

    if isinstance(obj, mdf.Model):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return mdf.load(obj)
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):  # a modeci_mdf Model
        return mdf.loads(to_json())
    raise ConversionError(f"expected an MDF model or a path, got {type(obj).__name__}")


def _set_defaults(gm: torch.fx.GraphModule, g: Any, values: Mapping[str, Any]) -> None:
    """Replace the default values of free input ports (buffers ``_defaults.<input>``)."""
    from torchmdf.frontends.mdf import as_tensor

    names = {}
    for v in g.inputs:
        names[v.name] = v
        port = v.meta.get(MDF_PORT)
        if port:
            names[port] = v
            names[port.replace(".", "_")] = v
    unknown = [k for k in values if k not in names]
    if unknown:
        raise TorchMDFError(f"unknown input(s) {', '.join(map(repr, unknown))}",
                            hint=f"inputs of graph '{g.name}': {', '.join(v.name for v in g.inputs)}")
    targets = gm.meta.get("torchmdf_input_defaults", {})
    for key, val in values.items():
        target = targets.get(names[key].name)
        if target is None:
            raise TorchMDFError(f"input {key!r} of graph '{g.name}' has no default to replace")
        old = gm.get_buffer(target)
        t = val if isinstance(val, torch.Tensor) else as_tensor(val)
        mod, leaf = gm.get_submodule(target.rpartition(".")[0]), target.rpartition(".")[2]
        mod.register_buffer(leaf, t.to(dtype=old.dtype, device=old.device), persistent=False)


def _reference_input_names(g: Any) -> None:
    """The model's inputs named as modeci_mdf names them: ``input1``, ``input2``, ..."""
    ins = [v for v in g.inputs if v.role == ValueRole.INPUT]
    targets = [f"input{i + 1}" for i in range(len(ins))]
    taken = {v.name for v in g.inputs} | {v.name for v in g.parameters.values()}
    for v in ins:  # free the target names first (an input may already be called input2)
        g._names.discard(v.name)
        taken.discard(v.name)
    for v, new in zip(ins, targets):
        if new in taken:  # a weight called input1: keep torchmdf's name
            new = g.unique_name(v.name)
        g._names.add(new)
        v.name = new
    if g.signature.input_names is not None and len(g.signature.input_names) == len(ins):
        g.signature.input_names = [v.name for v in ins]


def _port_id(name: str) -> str:
    """A PyTorch name as modeci_mdf's exporter names its port (``fc1.weight`` -> ``fc1_weight``)."""
    new = str(name).replace(".", "_").replace("::", "_").replace("-", "_")
    return "_" + new if new[:1].isdigit() else new


def _ident(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "function"
    return s if not s[0].isdigit() else "_" + s


__all__ = ["pytorch_to_mdf", "mdf_to_pytorch"]
