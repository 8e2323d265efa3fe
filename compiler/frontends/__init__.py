"""Frontends: everything that lowers into the IR, one module each (``export``, ``fx``,
``torchscript``, ``mdf``).  :func:`lower_pytorch` picks the PyTorch one by type."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph


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

        return lower_script_module(obj, example_inputs)
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

        return lower_traced(obj, example_inputs)
    if method == "script":
        from .torchscript import lower_scripted

        return lower_scripted(obj, example_inputs)
    raise ConversionError(f"unknown method {method!r}", hint="use 'export', 'fx', 'trace' or 'script'")
