"""A graph's calling convention: how the original PyTorch callable took and returned values.

The IR itself is a flat function of tensors; what a graph converted from a torch model needs to
be called as that model (its pytree structures, the non-tensor leaves, the buffers and inputs
it mutates) is one typed object, :class:`GraphSignature`, held as ``graph.signature``.  The
frontends write it, the FX backend reads it, and the MDF backend stores part of it in the file
(``metadata: {"torchmdf": {"pytorch_in_spec": ...}}``, read back through
:mod:`torchmdf.mdf.torchmdf_metadata`).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class InputMutation:
    """A user input the original call writes in place: graph output ``output`` holds its new
    value (such outputs follow the user outputs), ``input`` names the graph input."""

    input: str
    output: int


@dataclasses.dataclass(slots=True)
class GraphSignature:
    """The original calling convention of a graph converted from PyTorch (empty otherwise).

    ``in_spec``/``out_spec`` are ``torch.utils._pytree.treespec_dumps`` text (load them with
    :func:`torchmdf.mdf.torchmdf_metadata.load_treespec`, which refuses specs naming types).
    Output indices count the flattened output leaves of the original call.
    """

    #: names of the graph inputs that are the user's tensor inputs, in order; None: not from torch
    input_names: list[str] | None = None
    #: pytree structure of ``(args, kwargs)`` of the original call
    in_spec: str | None = None
    #: pytree structure of the original call's result
    out_spec: str | None = None
    #: positional order of the user inputs, constant ones included, when it differs from the inputs'
    input_order: list[str] | None = None
    #: user inputs specialized to a constant (not graph inputs): name -> ``repr`` of the value
    constant_inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    #: user inputs the call mutates, each with the graph output holding its new value
    input_mutations: list[InputMutation] = dataclasses.field(default_factory=list)
    #: names of the module buffers the call mutates (they are the graph's state variables)
    mutated_buffers: list[str] = dataclasses.field(default_factory=list)
    #: output leaves that are Python numbers computed from tensors (0-d tensor outputs here)
    scalar_outputs: list[int] = dataclasses.field(default_factory=list)
    #: output leaves that are constants (None, a number, a string): ``(leaf index, value)``
    constant_outputs: list[tuple[int, Any]] = dataclasses.field(default_factory=list)

    @property
    def from_torch(self) -> bool:
        """Whether the graph was converted from a torch callable (its inputs are known)."""
        return self.input_names is not None

    def copy(self) -> GraphSignature:
        return GraphSignature(
            input_names=None if self.input_names is None else list(self.input_names),
            in_spec=self.in_spec, out_spec=self.out_spec,
            input_order=None if self.input_order is None else list(self.input_order),
            constant_inputs=dict(self.constant_inputs), input_mutations=list(self.input_mutations),
            mutated_buffers=list(self.mutated_buffers), scalar_outputs=list(self.scalar_outputs),
            constant_outputs=list(self.constant_outputs))

    def __bool__(self) -> bool:
        return self != GraphSignature()

    def describe(self) -> str:
        """One line for the printer: the fields that are set."""
        parts = []
        if self.input_names is not None:
            parts.append(f"inputs=[{', '.join(self.input_names)}]")
        if self.input_order is not None:
            parts.append(f"input_order=[{', '.join(self.input_order)}]")
        if self.constant_inputs:
            parts.append("constant_inputs={" + ", ".join(f"{k}={v}" for k, v in self.constant_inputs.items()) + "}")
        if self.input_mutations:
            parts.append("input_mutations=[" + ", ".join(f"{m.input}->out{m.output}" for m in self.input_mutations)
                         + "]")
        if self.mutated_buffers:
            parts.append(f"mutated_buffers=[{', '.join(self.mutated_buffers)}]")
        if self.scalar_outputs:
            parts.append(f"scalar_outputs={list(self.scalar_outputs)}")
        if self.constant_outputs:
            parts.append("constant_outputs={" + ", ".join(f"{i}: {v!r}" for i, v in self.constant_outputs) + "}")
        parts += [name for name in ("in_spec", "out_spec") if getattr(self, name) is not None]
        return ", ".join(parts)


__all__ = ["GraphSignature", "InputMutation"]


def dumps_spec(spec: Any) -> str:
    """``treespec_dumps(spec)``, with named tuples (``torch.return_types.sort``...) written as
    plain tuples: torch cannot serialize those, and a loaded file could not name their type."""
    from torch.utils import _pytree as pytree

    try:
        return pytree.treespec_dumps(spec)
    except NotImplementedError:  # a structseq or named tuple somewhere in the structure
        pass

    def plain(x: Any) -> Any:
        if isinstance(x, tuple):
            return tuple(plain(c) for c in x)
        if isinstance(x, list):
            return [plain(c) for c in x]
        if isinstance(x, dict):
            return type(x)((k, plain(c)) for k, c in x.items())
        return x

    tree = pytree.tree_unflatten([0] * spec.num_leaves, spec)
    return pytree.treespec_dumps(pytree.tree_flatten(plain(tree))[1])
