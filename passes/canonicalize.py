"""Canonicalization: ONNX-preferred, ATen fallback.

Every node whose registry entry has a ``canonicalize`` rule (the ATen -> ONNX table of
:mod:`torchmdf.ops.aten_to_onnx`, or a user's rule) is offered to it.  The rule builds the
replacement through a :class:`Rewriter`; if it returns None, or fails, everything it built is
rolled back and the node stays as it was, so an op with no exact ONNX form stays ``aten::``
and still runs.

``use_onnx_ops=False`` keeps ATen spellings: a rule that would create an ``onnx::`` node is
rejected, so only the harmless cleanups happen (``clone``/``alias``/``detach``/no-op
``_to_copy``, eval-mode dropout, identity views/slices/permutes, constant creation ops).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from torchmdf.errors import PassError, ShapeError
from torchmdf.ir import UNKNOWN, Graph, Node, TensorType, Value, ValueRole
from torchmdf.ops import aten_to_onnx as _rules  # noqa: F401 - registers the ATen -> ONNX rules
from torchmdf.ops import registry

from ._infra import Pass, PassResult, register_pass
from .infer_shapes import infer_node, known_shape, merge_types

ORIGIN = "canonicalize"


class _Reject(Exception):
    """Raised inside a rule to give up on this node (e.g. an onnx op in ATen-only mode)."""


class Rewriter:
    """What a canonicalization rule builds with (see :mod:`torchmdf.ops.aten_to_onnx`).

    New nodes go right before the node being rewritten, with its provenance marked as
    derived by this pass; their output types are inferred as they are made.  Everything made
    is recorded so a rule that gives up leaves no trace.
    """

    def __init__(self, graph: Graph, use_onnx_ops: bool = True):
        self.graph = graph
        self.use_onnx_ops = use_onnx_ops
        self.node: Node | None = None
        self._nodes: list[Node] = []
        self._consts: list[Value] = []
        self._prov: dict[Any, Any] = {}
        self.live_out: set[int] = set()
        self.refresh_live_outputs()

    # -- state ---------------------------------------------------------------------------
    def refresh_live_outputs(self) -> None:
        """ids of the values the graph returns or carries as next state."""
        g = self.graph
        self.live_out = set(g.live_roots())

    def begin(self, node: Node) -> None:
        self.node = node
        self._nodes = []
        self._consts = []
        p = node.provenance
        d = self._prov.get(p)
        if d is None:
            d = self._prov[p] = p.derived(ORIGIN)
        self.provenance = d

    def rollback(self) -> None:
        for n in reversed(self._nodes):
            if n.graph is self.graph:
                self.graph.remove(n, safe=False)
        for c in self._consts:
            if not self.graph.is_live(c) and c.name in self.graph.parameters:
                self.graph.remove_parameter(c)
        self._nodes = []
        self._consts = []

    def is_new(self, v: Value) -> bool:
        return v.producer is not None and v.producer in self._nodes

    @property
    def created(self) -> list[Node]:
        return list(self._nodes)

    # -- reading the node ------------------------------------------------------------------
    def input(self, i: int) -> Value | None:
        ins = self.node.inputs
        return ins[i] if i < len(ins) else None

    def arg(self, name: str) -> Any:
        """A non-tensor argument; the schema default when the node does not carry it."""
        attrs = self.node.attrs
        if name in attrs:
            return attrs[name]
        d = registry.lookup(self.node.op)
        return None if d is None else d.attr_default(name)

    def used(self, i: int) -> bool:
        o = self.node.outputs[i]
        return o.is_used or id(o) in self.live_out

    @staticmethod
    def type(v: Value | None) -> TensorType:
        return UNKNOWN if v is None else v.type

    @staticmethod
    def dtype(v: Value | None) -> torch.dtype | None:
        if v is None:
            return None
        if v.tensor is not None:
            return v.tensor.dtype
        return v.type.dtype

    shape = staticmethod(known_shape)

    def rank(self, v: Value | None) -> int | None:
        s = self.shape(v)
        return None if s is None else len(s)

    def out_dtype(self, i: int = 0) -> torch.dtype | None:
        return self.node.outputs[i].type.dtype

    def out_shape(self, i: int = 0) -> tuple | None:
        return self.node.outputs[i].type.shape

    # -- building ----------------------------------------------------------------------------
    def op(self, op: str, inputs: Sequence[Value | None], attrs: dict[str, Any] | None = None, *,
           num_outputs: int = 1) -> Value | list[Value]:
        if not self.use_onnx_ops and op.startswith("onnx::"):
            raise _Reject(op)
        ins = list(inputs)
        while ins and ins[-1] is None:  # trailing absent optional inputs
            ins.pop()
        n = self.graph.create_node(op, ins, attrs or {}, num_outputs=num_outputs,
                                   provenance=self.provenance, before=self.node)
        self._nodes.append(n)
        infer_node(n, strict=False)
        return n.outputs[0] if num_outputs == 1 else list(n.outputs)

    def const(self, value: Any, dtype: torch.dtype | None = None, name: str = "const") -> Value:
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if dtype is not None and t.dtype != dtype:
                t = t.to(dtype)
        else:
            t = torch.tensor(value, dtype=dtype)
        v = self.graph.add_constant(t, name=name)
        v.meta["provenance"] = self.provenance
        self._consts.append(v)
        return v

    def cast(self, v: Value | None, dtype: torch.dtype) -> Value | None:
        """``v`` as ``dtype``: itself, a converted copy of a literal constant, or a Cast node."""
        if v is None:
            return None
        src = self.dtype(v)
        if src == dtype:
            return v
        if v.role == ValueRole.CONSTANT and v.tensor is not None and v.producer is None:
            return self.const(v.tensor.to(dtype), name=v.name)
        from torchmdf.ops.onnx_ops import torch_to_onnx_dtype

        try:
            code = torch_to_onnx_dtype(dtype)
        except KeyError:
            raise _Reject(f"no ONNX dtype for {dtype}") from None
        return self.op("onnx::Cast", [v], {"to": code})


@register_pass("canonicalize")
class Canonicalize(Pass):
    """Rewrite ops into their canonical (ONNX) form where an exact one exists.

    ``use_onnx_ops=False``: keep ATen spellings, only do the harmless cleanups.
    ``strict``: a rule that raises is a bug: report it (default); else keep the node.
    """

    def __init__(self, use_onnx_ops: bool = True, strict: bool = True):
        self.use_onnx_ops = use_onnx_ops
        self.strict = strict

    regions = "outer_first"  # rewrites inside regions too
    def call(self, graph: Graph) -> PassResult:
        # rules read input dtypes/ranks: fill what the frontend left unknown
        for node in graph:
            if any(o.type.dtype is None or o.type.shape is None for o in node.outputs):
                infer_node(node, strict=False)
        rw = Rewriter(graph, self.use_onnx_ops)
        modified = False
        rules: dict[str, Any] = {}
        for node in graph:
            op = node.op
            rule = rules.get(op, _MISSING)
            if rule is _MISSING:
                d = registry.lookup(op)
                rule = rules[op] = d.canonicalize if d is not None else None
            if rule is None:
                continue
            if self._apply(graph, node, rule, rw):
                modified = True
        return PassResult(graph, modified)

    def _apply(self, graph: Graph, node: Node, rule: Any, rw: Rewriter) -> bool:
        rw.begin(node)
        try:
            res = rule(node, rw)
        except _Reject:
            res = None
        except Exception as e:
            rw.rollback()
            if self.strict:
                raise PassError(f"canonicalization rule for {node.op} failed: {type(e).__name__}: {e}",
                                hint=f"at {node.location()}") from e
            return False
        if res is None or len(res) != len(node.outputs):
            rw.rollback()
            return False
        for i, v in enumerate(res):
            if v is None and rw.used(i):
                rw.rollback()
                return False
        # a graph output replaced by a graph input or by another graph output: keep it a
        # distinct value (an Identity), as backends name outputs and inputs apart
        out_ids = rw.live_out
        final: list[Value | None] = []
        for o, v in zip(node.outputs, res):
            if v is None or rw.is_new(v) or id(o) not in out_ids:
                final.append(v)
                continue
            if v.role in (ValueRole.INPUT, ValueRole.STATE) or id(v) in out_ids:
                if not self.use_onnx_ops:
                    rw.rollback()
                    return False
                try:
                    v = rw.op("onnx::Identity", [v])
                except _Reject:
                    rw.rollback()
                    return False
            final.append(v)
        for o, v in zip(node.outputs, final):
            if v is None:
                continue
            if o.type is not UNKNOWN:
                try:
                    v.type = merge_types(o.type, v.type) if rw.is_new(v) else v.type
                except ShapeError as e:
                    rw.rollback()
                    raise PassError(f"canonicalization of {node.op} changed the type of %{o.name}: "
                                    f"{e.raw_message}", hint=f"at {node.location()}") from e
        renames = []
        for o, v in zip(node.outputs, final):
            if v is not None:
                o.replace_all_uses_with(v)
                if id(o) in out_ids:
                    out_ids.discard(id(o))
                    out_ids.add(id(v))
                if rw.is_new(v):
                    renames.append((v, o.name))
        graph.remove(node)
        for v, name in renames:
            v.name = graph.unique_name(name)
        return True


_MISSING = object()

__all__ = ["Canonicalize", "Rewriter"]
