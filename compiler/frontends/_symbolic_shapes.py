"""Symbolic (dynamic) dims in the IR, shared by the ``torch.export`` and TorchScript frontends.

A frontend that keeps dims symbolic traces with fake tensors whose sizes are SymInts of a
``ShapeEnv``.  The SymInt arithmetic a model does on sizes never becomes IR nodes: each SymInt
is carried as its sympy expression and resolved where an op uses it (the rules are in
:meth:`SymbolicShapes.symbolic_attr`): in a shape list, one symbolic entry becomes ``-1``; an
``expand`` entry equal to the input's own dim becomes ``-1``; a slice end equal to the input's
size becomes "to the end"; anything else is computed in the IR from the graph inputs' shapes
(``_shape_as_tensor`` -> ``select`` -> arithmetic -> ``stack``) and the op is rewritten to
take it as a tensor (:meth:`SymbolicShapes.shape_tensor_op`).

IR dims are ints or names: a symbol's name is the user's (``Dim("batch")``), else ``str`` of
the symbol; a derived dim is the printed expression (``"batch*7"``).
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ..ir import Graph, Provenance, TensorType, Value
from ._fx_walk import Unsupported

RESHAPES = frozenset({"aten::view", "aten::_unsafe_view", "aten::reshape"})
INT64_MAX = sys.maxsize
# ops that make a new tensor of a given size, and the value they fill it with (None: their
# ``fill_value`` argument); an empty tensor is filled with zeros
FILLS: dict[str, Any] = {"aten::full": None, "aten::new_full": None, "aten::zeros": 0, "aten::new_zeros": 0,
                         "aten::ones": 1, "aten::new_ones": 1, "aten::empty": 0, "aten::new_empty": 0}


class NeedsShapeTensor(Exception):
    """The op's size argument has entries that must be computed in the IR (``exprs``)."""

    def __init__(self, exprs: list[Any]):
        super().__init__("symbolic shape")
        self.exprs = exprs


class Sym:
    """A symbolic int argument (its sympy expression), while an op's attrs are resolved."""

    __slots__ = ("expr",)

    def __init__(self, expr: Any):
        self.expr = expr

    def __repr__(self) -> str:
        return str(self.expr)


def has_sym(v: Any) -> bool:
    if isinstance(v, Sym):
        return True
    if isinstance(v, list):
        return any(has_sym(x) for x in v)
    return False


def expr_of(x: Any) -> Any:
    """The sympy expression of a SymInt/SymFloat/SymBool (or int), else None."""
    if isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return x.node.expr
    if isinstance(x, bool):
        import sympy

        return sympy.true if x else sympy.false
    if isinstance(x, int):
        import sympy

        return sympy.Integer(x)
    if type(x).__module__.startswith("sympy"):
        return x
    return None


def is_symbolic(x: Any) -> bool:
    """A SymInt/SymFloat/SymBool whose value is not a known number."""
    e = expr_of(x) if isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool)) else None
    return e is not None and not e.is_number


def concrete_sym(x: Any) -> Any:
    """A Sym-typed scalar as a Python number when torch knows its value, else :class:`Sym`."""
    e = expr_of(x)
    if e is not None and e.is_number:
        return bool(e) if isinstance(x, torch.SymBool) else (int(e) if e.is_integer else float(e))
    return Sym(e)


class SymbolicShapes:
    """Mixin of a frontend's lowering: needs ``graph`` (where nodes go), ``sym_names``
    (symbol -> user's name), ``sym_source`` (symbol -> (graph input, dim)), the caches
    ``_sym_cache``/``_shape_cache`` (scoped with ``graph`` in regions) and ``origin``."""

    graph: Graph
    origin: str
    sym_names: dict[str, str]
    sym_source: dict[str, tuple[Value, int]]
    _sym_cache: dict[Any, Value]
    _shape_cache: dict[Value, Value]
    unsupported_error: type[Exception] = Unsupported

    def dim(self, d: Any) -> Any:
        """An IR dim (int, or the name of a symbolic expression)."""
        if isinstance(d, int):
            return d
        expr = expr_of(d)
        if expr is None:
            return None
        if expr.is_number:
            return int(expr)
        if expr.is_Symbol:
            return self.sym_names.get(str(expr), str(expr))
        if not self.sym_names:
            return str(expr)
        import sympy

        subs = {s: sympy.Symbol(self.sym_names[str(s)], integer=True)
                for s in expr.free_symbols if str(s) in self.sym_names}
        return str(expr.xreplace(subs))

    def symbolic_attr(self, v: Any, op: str, arg: str, in_shape: list[Any] | None, slice_dim: Any) -> Any:
        """An attr value ``v`` (ints and :class:`Sym` entries) with its symbolic entries
        resolved, or :class:`NeedsShapeTensor`.  ``in_shape``: the sympy dims of the op's
        ``self`` input (None if unknown); ``slice_dim``: a slice's ``dim`` argument."""
        base = op.split(".", 1)[0]
        entries = [x.expr if isinstance(x, Sym) else x for x in v] if isinstance(v, list) else None
        if entries is not None and base in RESHAPES and arg in ("size", "shape"):
            syms = [i for i, x in enumerate(v) if isinstance(x, Sym)]
            if len(syms) == 1 and -1 not in v:
                return [-1 if isinstance(x, Sym) else x for x in v]
            raise NeedsShapeTensor(entries)
        if entries is not None and base in FILLS and arg == "size":
            raise NeedsShapeTensor(entries)
        if isinstance(v, list) and base in ("aten::expand", "aten::expand_copy") and in_shape is not None:
            out = []
            off = len(v) - len(in_shape)
            for i, x in enumerate(v):
                if isinstance(x, Sym):
                    j = i - off
                    if j < 0 or in_shape[j] != x.expr:  # a new size: computed in the IR
                        raise NeedsShapeTensor(entries)
                    out.append(-1)
                else:
                    out.append(x)
            return out
        if isinstance(v, Sym) and base == "aten::slice" and arg in ("end", "start") and in_shape is not None:
            d = slice_dim
            if isinstance(d, int) and -len(in_shape) <= d < len(in_shape) and in_shape[d] == v.expr:
                return INT64_MAX if arg == "end" else None
            raise NeedsShapeTensor([v.expr])
        shown = v.expr if isinstance(v, Sym) else [x.expr if isinstance(x, Sym) else x for x in v]
        raise self.unsupported_error(f"{op}: symbolic value {shown} in argument '{arg}' "
                               f"(convert with this dimension static)")

    def sym_to_ir(self, expr: Any, prov: Provenance) -> Value:
        """A 0-d int64 tensor holding ``expr``, computed from the graph inputs' shapes."""
        if expr in self._sym_cache:
            return self._sym_cache[expr]
        import sympy

        g = self.graph
        p = Provenance(origin=self.origin, module_path=prov.module_path, source=prov.source)
        if expr.is_Integer:
            v = g.add_constant(int(expr))
        elif expr.is_Symbol:
            src = self.sym_source.get(str(expr))
            if src is None:
                raise self.unsupported_error(f"symbolic size {expr} that no graph input carries")
            x, d = src
            shape = self._shape_cache.get(x)
            if shape is None:
                shape = g.create_node("aten::_shape_as_tensor", [x], provenance=p).output
                shape.type = TensorType(torch.int64, (len(x.type.shape or ()),))
                self._shape_cache[x] = shape
            n = g.create_node("aten::select.int", [shape], {"dim": 0, "index": d}, provenance=p)
            n.output.type = TensorType(torch.int64, ())
            v = n.output
        elif isinstance(expr, (sympy.Add, sympy.Mul)):
            op = "aten::add.Tensor" if isinstance(expr, sympy.Add) else "aten::mul.Tensor"
            args = [self.sym_to_ir(a, prov) for a in expr.args]
            v = args[0]
            for a in args[1:]:
                n = g.create_node(op, [v, a], provenance=p)
                n.output.type = TensorType(torch.int64, ())
                v = n.output
        elif type(expr).__name__ == "FloorDiv":
            a, b = (self.sym_to_ir(x, prov) for x in expr.args)
            n = g.create_node("aten::div.Tensor_mode", [a, b], {"rounding_mode": "floor"}, provenance=p)
            n.output.type = TensorType(torch.int64, ())
            v = n.output
        else:
            raise self.unsupported_error(f"symbolic size expression {expr}")
        self._sym_cache[expr] = v
        return v

    def shape_tensor(self, entries: list[Any], prov: Provenance) -> Value:
        """A 1-d int64 tensor of ``entries`` (ints and sympy expressions)."""
        parts = [self.sym_to_ir(e, prov) if not isinstance(e, int) else self.graph.add_constant(e)
                 for e in entries]
        n = self.graph.create_node("aten::stack", parts, {"dim": 0}, provenance=prov)
        n.output.type = TensorType(torch.int64, (len(parts),))
        return n.output

    def shape_tensor_op(self, name: str, entries: list[Any], inputs: list[Value | None],
                        attrs: dict[str, Any], dtype: torch.dtype | None, prov: Provenance,
                        slice_args: dict[str, Any]) -> tuple[str, list[Value | None], dict[str, Any]]:
        """Rewrite an op whose size list has symbolic entries into one that takes the size as a
        tensor computed in the IR: ``aten::_reshape_from_tensor``, ``onnx::Expand``,
        ``onnx::ConstantOfShape``, ``onnx::Slice``.  ``dtype``: the op's result dtype;
        ``slice_args``: a slice's start/end/dim/step (ints, SymInts or None)."""
        base = name.split(".", 1)[0]
        if base == "aten::slice":
            def one(key: str, default: Any) -> Value:
                a = slice_args.get(key, default)
                a = INT64_MAX if a is None else a
                return self.shape_tensor([expr_of(a) if not isinstance(a, int) else a], prov)
            starts, ends = one("start", 0), one("end", None)
            axes, steps = one("dim", 0), one("step", 1)
            return "onnx::Slice", [inputs[0], starts, ends, axes, steps], {}
        if base in RESHAPES:
            return "aten::_reshape_from_tensor", [inputs[0], self.shape_tensor(entries, prov)], {}
        if base in ("aten::expand", "aten::expand_copy"):
            # aten's -1 (keep) is ONNX's 1 (Expand broadcasts both ways)
            entries = [1 if isinstance(e, int) and e == -1 else e for e in entries]
            return "onnx::Expand", [inputs[0], self.shape_tensor(entries, prov)], {}
        if base in FILLS and dtype is not None:
            fill = attrs.get("fill_value", 0) if FILLS[base] is None else FILLS[base]
            if not isinstance(fill, (bool, int, float)):
                raise self.unsupported_error(f"{name}: symbolic fill value")
            value = torch.tensor([fill], dtype=dtype)
            return "onnx::ConstantOfShape", [self.shape_tensor(entries, prov)], {"value": value}
        raise self.unsupported_error(f"{name}: symbolic sizes {entries}")


__all__ = ["SymbolicShapes", "Sym", "NeedsShapeTensor", "has_sym", "expr_of", "is_symbolic", "concrete_sym",
           "RESHAPES", "INT64_MAX"]
