"""Frontends: everything that lowers into the IR, one module each (``export``, ``fx``,
``torchscript``, ``mdf``), and the registry that picks one for an input.

:func:`register_frontend` is the one extension point: ``torchmdf.lower``, ``torchmdf.compile``
and the command line all find a frontend through :func:`select_frontend`.  A frontend is
chosen by name (``method="trace"``), by a path's suffix (``.json`` -> ``mdf``) or by the first
``accepts(obj)`` that says yes, newest registration first, so a user's frontend can claim a
type or suffix before the built-ins do.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph
from torchmdf.named_registry import NamedRegistry, normalize_suffixes

LowerFn = Callable[..., Graph]


@dataclasses.dataclass(frozen=True)
class Frontend:
    """One way into the IR.

    ``lower(obj, example_inputs, **options) -> Graph``: ``options`` holds only what the caller
    set (``dynamic_shapes``, ``dynamic_batch``, ``graph``, ...).  ``accepts(obj)`` claims
    objects; ``suffixes`` claims paths; a frontend with neither is chosen only by name.
    ``needs_example_inputs(obj)``: whether ``compile`` must be given example inputs for it.
    ``dynamic``: whether it can keep dims symbolic (``dynamic_shapes``/``dynamic_batch``).
    """

    name: str
    lower: LowerFn
    accepts: Callable[[Any], bool] | None = None
    suffixes: tuple[str, ...] = ()
    needs_example_inputs: Callable[[Any], bool] | None = None
    dynamic: bool = False
    doc: str = ""


_FRONTENDS: NamedRegistry[Frontend] = NamedRegistry("frontend", ConversionError)


def register_frontend(name: str, lower: LowerFn, *, accepts: Callable[[Any], bool] | None = None,
                      suffixes: Sequence[str] = (), needs_example_inputs: Callable[[Any], bool] | None = None,
                      dynamic: bool = False, doc: str = "", replace: bool = False) -> Frontend:
    """Make ``lower`` a frontend: ``torchmdf.lower(obj)``, ``compile`` and the CLI use it for
    objects it ``accepts``, for paths ending in one of ``suffixes`` (``".onnx"``), or when
    chosen by name (``method=name``).  A name registered twice is an error unless ``replace``."""
    if not name or not isinstance(name, str) or not callable(lower):
        raise ConversionError(f"register_frontend needs a name and a callable lower, not {name!r}, {lower!r}")
    return _FRONTENDS.add(Frontend(name, lower, accepts, normalize_suffixes(suffixes), needs_example_inputs,
                                   dynamic, doc or (lower.__doc__ or "").strip()), replace=replace)


def unregister_frontend(name: str) -> None:
    _FRONTENDS.remove(name)


def frontends() -> dict[str, Frontend]:
    """The registered frontends by name, in registration order."""
    return _FRONTENDS.all()


def select_frontend(obj: Any, method: str | None = None) -> Frontend:
    """The frontend for ``obj``: by ``method`` name, else by path suffix, else by ``accepts``."""
    if method is not None:
        fe = _FRONTENDS.get(method)
        if fe is None:
            raise ConversionError(f"unknown method {method!r}",
                                  hint=f"registered frontends: {', '.join(_FRONTENDS.all())}")
        return fe
    if isinstance(obj, (str, os.PathLike)):
        fe = _FRONTENDS.for_path(obj)
        if fe is None:
            raise ConversionError(f"{os.fspath(obj)}: no frontend reads files with this suffix",
                                  hint=f"known suffixes: {_FRONTENDS.known_suffixes()}; or "
                                  "register_frontend(..., suffixes=[...])")
        return fe
    for fe in _FRONTENDS.newest_first():
        if fe.accepts is not None and fe.accepts(obj):
            return fe
    raise ConversionError(f"cannot lower a {type(obj).__name__}",
                          hint="pass an nn.Module, ExportedProgram, ScriptModule, GraphModule, "
                          "torchmdf.mdf.Model, MDF file path or torchmdf.ir.Graph, or register a frontend "
                          "with torchmdf.register_frontend")


# ---------------------------------------------------------------------------------------------
# The built-in frontends
# ---------------------------------------------------------------------------------------------


def lower_pytorch(obj: Any, example_inputs: Sequence[Any] | None = None, *, method: str = "export",
                  dynamic_shapes: Any = None, dynamic_batch: bool = False) -> Graph:
    """ExportedProgram, ScriptModule or nn.Module -> IR.  ``method`` for an nn.Module:
    ``"export"`` (torch.export, the default), ``"trace"`` or ``"script"`` (TorchScript)."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(obj, torch.export.ExportedProgram):
        from .export import lower_exported_program

        return lower_exported_program(obj)
    if isinstance(obj, torch.jit.ScriptModule):
        from .torchscript import lower_script_module

        return lower_script_module(obj, example_inputs, dynamic_shapes=dynamic_shapes, dynamic_batch=dynamic_batch)
    if not isinstance(obj, torch.nn.Module):
        raise ConversionError(f"cannot lower a {type(obj).__name__}",
                              hint="pass an nn.Module, ExportedProgram, ScriptModule, GraphModule, "
                              "torchmdf.mdf.Model, MDF file path or torchmdf.ir.Graph")
    if method == "export":
        from .export import lower_module

        return lower_module(obj, example_inputs if example_inputs is not None else (),
                            dynamic_shapes=dynamic_shapes, dynamic_batch=dynamic_batch)
    if method == "trace":
        from .torchscript import lower_traced

        return lower_traced(obj, example_inputs, dynamic_shapes=dynamic_shapes, dynamic_batch=dynamic_batch)
    if method == "script":
        from .torchscript import lower_scripted

        return lower_scripted(obj, example_inputs, dynamic_shapes=dynamic_shapes, dynamic_batch=dynamic_batch)
    raise ConversionError(f"unknown method {method!r}", hint="use 'export', 'fx', 'trace' or 'script'")


def _torch_frontend(method: str) -> LowerFn:
    def lower(obj: Any, example_inputs: Sequence[Any] | None = None, **options: Any) -> Graph:
        return lower_pytorch(obj, example_inputs, method=method, **options)

    lower.__name__ = f"lower_{method}"
    return lower


def _lower_graph(obj: Graph, example_inputs: Any = None, **options: Any) -> Graph:
    return obj


def _lower_mdf(obj: Any, example_inputs: Any = None, *, graph: str | None = None) -> Graph:
    from .mdf import lower_mdf

    return lower_mdf(obj, graph=graph)


def _is_mdf_model(obj: Any) -> bool:
    from torchmdf.mdf import Model

    return isinstance(obj, Model)


def _lower_fx(obj: Any, example_inputs: Sequence[Any] | None = None) -> Graph:
    from .fx import lower_fx

    return lower_fx(obj, example_inputs)


def _plain_module(obj: Any) -> bool:
    """An nn.Module that torch.export (or tracing) needs example inputs for."""
    return isinstance(obj, torch.nn.Module) and not isinstance(obj, (torch.fx.GraphModule, torch.jit.ScriptModule))


def _lower_onnx(obj: Any, example_inputs: Any = None, **options: Any) -> Graph:
    from .onnx import lower_onnx

    return lower_onnx(obj)


def _is_onnx_model(obj: Any) -> bool:
    if not (type(obj).__module__ or "").startswith("onnx"):  # no onnx import for other objects
        return False
    from .onnx import is_onnx_model

    return is_onnx_model(obj)


register_frontend("ir", _lower_graph, accepts=lambda o: isinstance(o, Graph), doc="a torchmdf.ir.Graph, as it is")
register_frontend("mdf", _lower_mdf, accepts=_is_mdf_model, suffixes=(".json", ".yaml", ".yml"),
                  doc="an MDF model or file (JSON/YAML)")
register_frontend("trace", _torch_frontend("trace"), needs_example_inputs=_plain_module, dynamic=True,
                  doc="an nn.Module through torch.jit.trace")
register_frontend("script", _torch_frontend("script"), needs_example_inputs=_plain_module, dynamic=True,
                  doc="an nn.Module through torch.jit.script")
register_frontend("export", _torch_frontend("export"),
                  accepts=lambda o: isinstance(o, (torch.nn.Module, torch.export.ExportedProgram)),
                  needs_example_inputs=_plain_module, dynamic=True,
                  doc="an nn.Module through torch.export, an ExportedProgram, a ScriptModule")
register_frontend("fx", _lower_fx, accepts=lambda o: isinstance(o, torch.fx.GraphModule),
                  doc="a torch.fx GraphModule (an nn.Module: symbolic_trace)")
register_frontend("onnx", _lower_onnx, accepts=_is_onnx_model, suffixes=(".onnx",),
                  doc="an ONNX model or file (onnx.ModelProto, onnx_ir.Model), opset 13 or newer")

__all__ = ["Frontend", "register_frontend", "unregister_frontend", "frontends", "select_frontend", "lower_pytorch"]
