"""Lowering MDF expressions and function calls into IR nodes: the one place an MDF
expression gets its meaning on tensors (the MDF frontend lowers every value through it, and
:func:`torchmdf.mdf.expressions.evaluate_expression` is a thin use of it; ACT-R's chunks, which
are not tensors, are evaluated on Python values by :mod:`torchmdf.mdf.symbolic`).

:class:`ExpressionLowering` lowers an expression tree (:mod:`torchmdf.mdf.expressions`) over
an :class:`Env` of names; each call goes through the function table
(:data:`torchmdf.mdf.functions.FUNCTIONS`).  :class:`NodeLowering` adds what a node run
needs: ``function`` + ``args`` (MDF standard functions, ONNX, ATen and registered ops) with
modeci_mdf's conventions for taking arguments and attributes from the node's values.

Two modes.  The frontend lowers files with ``numpy_exact=False``: torch's types, except where
a file torchmdf did not write relies on numpy's promotion (integer arguments of the standard
functions computed in floats become float64; operands of one ONNX type constraint with
different dtypes are cast to numpy's result type).  With
``numpy_exact=True`` (and ``eager``, where every value is a constant and each op runs as it is
lowered) the numpy-compat notes of the function table are applied exactly: booleans count as
0/1 in arithmetic, integers go to float64 where numpy computes in floats, and an integer
power with a negative exponent is a float; that is the reference evaluator.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import torch

from torchmdf.errors import ConversionError, TorchMDFError, ValidationError
from torchmdf.ir import Graph, Provenance, Value
from torchmdf.ir.meta_keys import MAX_ITERATIONS, PYSCALAR
from torchmdf.limits import LIMITS
from torchmdf.ops import registry

from . import expressions as E
from .attributes import as_tensor, cast_attr, decode_attr, is_pyscalar, string_attr_types
from .functions import SYMBOLIC_HINT, expression_function, get_standard_function

_REGION_ATTRS = {"onnx::If": ("then_branch", "else_branch"), "onnx::Loop": ("body",),
                 "torchmdf::While": ("cond", "body")}

__all__ = ["NO_VALUE", "Env", "ordered_env", "warm", "ExpressionLowering", "NodeLowering", "MultiOutput",
           "ListValue"]

_BIN = {"+": "onnx::Add", "-": "onnx::Sub", "*": "onnx::Mul", "/": "aten::div.Tensor",
        "//": "aten::floor_divide", "%": "aten::remainder.Tensor", "**": "onnx::Pow", "@": "onnx::MatMul"}
_CMP = {"==": "onnx::Equal", "!=": "aten::ne.Tensor", "<": "onnx::Less", "<=": "onnx::LessOrEqual",
        ">": "onnx::Greater", ">=": "onnx::GreaterOrEqual"}
_PYSCALAR_BIN = {"+", "-", "*", "/", "//", "%", "**"}  # Python arithmetic keeps Python numbers

_QUOTED_LIST = re.compile(r"\[\s*'[^']*'(\s*,\s*'[^']*')*\s*\]")
_QUOTED_ITEM = re.compile(r"'([^']*)'")

# ---------------------------------------------------------------------------------------------
# Names visible to an expression
# ---------------------------------------------------------------------------------------------

NO_VALUE = None  # a name that has no value yet (a parameter modeci_mdf holds as None)


class Env:
    """Names visible to an expression, resolved lazily: a name bound to a thunk is lowered
    the first time an expression reads it, so values nobody reads emit no IR.

    ``view`` is ``(index, limit, get)``: the names of ``index`` whose position is below
    ``limit`` resolve to ``get(position)``.  That is how "each argument sees the arguments
    before it" is one environment per argument instead of a chain as long as the arguments
    (which made a node with many parameters or arguments quadratic)."""

    __slots__ = ("vals", "thunks", "parent", "view")

    def __init__(self, parent: Env | None = None,
                 view: tuple[dict[str, int], int, Callable[[int], Any]] | None = None):
        self.vals: dict[str, Any] = {}
        self.thunks: dict[str, Callable[[], Any]] = {}
        self.parent = parent
        self.view = view

    def set(self, k: str, v: Any) -> None:
        self.vals[k] = v
        self.thunks.pop(k, None)

    def lazy(self, k: str, fn: Callable[[], Any]) -> None:
        self.thunks[k] = fn
        self.vals.pop(k, None)

    def child(self) -> Env:
        return Env(self)

    def __contains__(self, k: object) -> bool:
        e: Env | None = self
        while e is not None:
            if k in e.vals or k in e.thunks:
                return True
            if e.view is not None:
                i = e.view[0].get(k)  # type: ignore[call-overload]
                if i is not None and i < e.view[1]:
                    return True
            e = e.parent
        return False

    def __getitem__(self, k: str) -> Any:
        e: Env | None = self
        while e is not None:
            if k in e.vals:
                return e.vals[k]
            fn = e.thunks.pop(k, None)
            if fn is not None:
                v = fn()
                e.vals[k] = v
                return v
            if e.view is not None:
                i = e.view[0].get(k)
                if i is not None and i < e.view[1]:
                    return e.view[2](i)
            e = e.parent
        raise KeyError(k)

    def names(self) -> list[str]:
        out: set[str] = set()
        e: Env | None = self
        while e is not None:
            out |= set(e.vals) | set(e.thunks)
            if e.view is not None:
                out |= {n for n, i in e.view[0].items() if i < e.view[1]}
            e = e.parent
        return sorted(out)


def ordered_env(parent: Env, items: list[tuple[str, Callable[[Env], Any]]]) -> Env:
    """An environment over ``parent`` holding ``items`` in order: item ``k`` is lowered
    lazily, by ``make(env)`` with an ``env`` that sees the items before it (and ``parent``)."""
    index = {name: k for k, (name, _) in enumerate(items)}
    cache: dict[int, Any] = {}

    def get(k: int) -> Any:
        if k not in cache:
            cache[k] = items[k][1](Env(parent, (index, k, get)))
        return cache[k]

    warm(len(items), get)
    return Env(parent, (index, len(items), get))


#: Above this many parameters or arguments, a node's values are lowered in order first.
_WARM_ABOVE = 64


def warm(n: int, get: Callable[[int], Any]) -> None:
    """Values that may each read the one before (``p_k = p_{k-1} + 1``) are lowered lazily,
    one level of recursion per link: for long lists, lower them in order first, so each read
    finds the one before it done and the depth stays constant.  A value that fails is left
    to fail again where it is read (modeci_mdf reads only what it uses)."""
    if n <= _WARM_ABOVE:
        return
    for k in range(n):
        try:
            get(k)
        except TorchMDFError:
            pass



# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------



class ExpressionLowering:
    """Lowers expression trees into ``g``.  ``where`` is the MDF path of what is lowered
    (provenance), ``loc`` makes a path a located one, ``numpy``: the file follows
    modeci_mdf's numpy semantics (false for files torchmdf wrote, whose ops stand for IR ops);
    ``numpy_exact``/``eager``: see the module docstring."""

    def __init__(self, g: Graph, consts: dict[tuple, Value], where: str, *,
                 loc: Callable[[str], str] | None = None, file: str | None = None, numpy: bool = True,
                 numpy_exact: bool = False, eager: bool = False):
        self.g, self.consts, self.where, self._loc, self.file = g, consts, where, loc, file
        self.numpy, self.numpy_exact, self.eager = numpy, numpy_exact, eager
        self.prov = Provenance(origin="mdf", mdf_path=where, file=file)
        self._provs: dict[str, Provenance] = {}

    def loc(self, where: str) -> str:
        return self._loc(where) if self._loc is not None else where

    # -- values ---------------------------------------------------------------------------------
    def const(self, v: Any, name: str = "const") -> Value:
        """A literal; Python numbers are shared within a graph and remember they were Python
        numbers (modeci_mdf hands those to ONNX ops as 1-element arrays)."""
        if is_pyscalar(v) or isinstance(v, bool):
            key = (type(v), repr(v))  # repr: -0.0 is not 0.0
            out = self.consts.get(key)
            if out is None:
                out = self.g.add_constant(as_tensor(v), "const")
                if is_pyscalar(v):
                    out.meta[PYSCALAR] = True
                self.consts[key] = out
            return out
        return self.g.add_constant(as_tensor(v), name)

    def provenance(self, where: str | None) -> Provenance:
        """The provenance of nodes lowered for ``where`` (a parameter, a function, a port)."""
        if where is None or where == self.where:
            return self.prov
        p = self._provs.get(where)
        if p is None:
            p = self._provs[where] = Provenance(origin="mdf", mdf_path=where, file=self.file)
        return p

    def op(self, op: str, inputs: list[Value | None], attrs: dict | None = None, n_out: int = 1,
           name: str = "", where: str | None = None) -> Value:
        if self.eager:  # every input is a constant: run the op now
            outs = registry.get(op).run([None if x is None else x.tensor for x in inputs], attrs or {})
            return self.g.add_constant(torch.as_tensor(outs[0]), "const")
        prov = self.provenance(where)
        node = self.g.create_node(op, inputs, attrs or {}, num_outputs=n_out, provenance=prov, name=name)
        return node.outputs[0]

    def value(self, v: Any, where: str, env: Env, name: str = "", items: bool = False) -> Value:
        """A parameter value / argument: number, array or expression string.  ``items``: a
        list literal stays a :class:`ListValue` (a function's value, indexed item by item as
        modeci_mdf indexes the Python list it makes)."""
        if isinstance(v, str):
            out = self.expr(E.parse_in_scope(v, env, location=self.loc(where)), env, where)
            return out.stack() if isinstance(out, ListValue) and not items else out
        if isinstance(v, (int, float, bool, torch.Tensor, np.ndarray, np.number, list)):
            return self.const(v, name or "const")
        raise ValidationError(f"a value must be a number, an array or an expression, not {type(v).__name__}",
                              location=self.loc(where))

    def lookup(self, name: str, env: Env, where: str) -> Any:
        if name in env:
            v = env[name]
            if v is NO_VALUE:
                raise ValidationError(f"{name!r} has no value here", location=self.loc(where),
                                      hint="a parameter with only a function, conditions or a time "
                                      "derivative has no value before its first evaluation")
            return v
        if name in E.CONSTANTS:
            return self.const(float(E.CONSTANTS[name]))
        raise ValidationError(f"unknown name {name!r} in expression", location=self.loc(where),
                              hint=f"names in scope: {', '.join(env.names()) or '(none)'}")

    # -- numpy-exact conversions (no-ops in the frontend's mode) --------------------------------
    def _cast(self, x: Value, dtype: torch.dtype) -> Value:
        from torchmdf.ops.onnx_ops import torch_to_onnx_dtype

        return self.op("onnx::Cast", [x], {"to": torch_to_onnx_dtype(dtype)})

    def _arith(self, x: Value) -> Value:
        """Booleans count as 0/1 in arithmetic, as in Python (torch keeps them boolean)."""
        if self.numpy_exact and x.tensor is not None and x.tensor.dtype == torch.bool:
            return self._cast(x, torch.int64)
        return x

    def _float(self, x: Value) -> Value:
        """numpy computes these functions in float64 for integer (and boolean) inputs, torch
        in float32: a file that follows numpy's semantics (not one torchmdf wrote) gets
        float64, as modeci_mdf computes it."""
        if not (self.numpy_exact or self.numpy):
            return x
        dt = x.tensor.dtype if x.tensor is not None else getattr(x.type, "dtype", None)
        if dt is not None and not (dt.is_floating_point or dt.is_complex):
            return self._cast(x, torch.float64)
        return x

    def _pow_base(self, a: Value, b: Value) -> Value:
        """The base of ``a ** b`` in the dtype Python/torch give the power (onnx::Pow keeps the
        base's): an integer to a negative integer power is a float."""
        if not self.numpy_exact or a.tensor is None or b.tensor is None:
            return a
        ta, tb = a.tensor, b.tensor
        if not ta.is_floating_point() and not tb.is_floating_point() and bool((tb < 0).any()):
            return self._cast(a, torch.float64)
        rt = torch.result_type(ta, tb)
        return a if rt == ta.dtype else self._cast(a, rt)

    # -- expressions ----------------------------------------------------------------------------
    def expr(self, e: Any, env: Env, where: str) -> Any:
        op = self.op
        if isinstance(e, E.Num):
            return self.const(e.value)
        if isinstance(e, E.Name):
            return self.lookup(e.id, env, where)
        if isinstance(e, E.BinOp):
            a = self._arith(self.one(self.expr(e.left, env, where), where))
            b = self._arith(self.one(self.expr(e.right, env, where), where))
            x = self._pow_base(a, b) if e.op == "**" else a
            if e.op == "/" and self.numpy and not any(
                    v.tensor is not None and v.tensor.is_floating_point() for v in (a, b)):
                # numpy divides ints into float64, torch into float32: make the dividend float64
                # (a float32 array stays float32: a 0-d float64 does not promote it)
                x = op("onnx::Mul", [a, self.g.add_constant(torch.tensor(1.0, dtype=torch.float64), "one")])
            out = op(_BIN[e.op], [x, b])
            if e.op in _PYSCALAR_BIN and a.meta.get(PYSCALAR) and b.meta.get(PYSCALAR):
                out.meta[PYSCALAR] = True
            return out
        if isinstance(e, E.UnaryOp):
            x = self.one(self.expr(e.operand, env, where), where)
            if e.op != "not":
                x = self._arith(x)
            if e.op == "+":
                return x
            out = op("onnx::Neg", [x]) if e.op == "-" else op("aten::logical_not", [x])
            if e.op == "-" and x.meta.get(PYSCALAR):
                out.meta[PYSCALAR] = True
            return out
        if isinstance(e, E.Compare):
            return op(_CMP[e.op], [self.one(self.expr(e.left, env, where), where),
                                   self.one(self.expr(e.right, env, where), where)])
        if isinstance(e, E.BoolOp):
            vals = [self.one(self.expr(x, env, where), where) for x in e.values]
            out = vals[0]
            for x in vals[1:]:
                out = op("aten::logical_and" if e.op == "and" else "aten::logical_or", [out, x])
            return out
        if isinstance(e, E.IfExp):
            return op("onnx::Where", [self.one(self.expr(x, env, where), where)
                                      for x in (e.test, e.body, e.orelse)])
        if isinstance(e, E.Call):
            return self.call(e.func, [self._arith(self.one(self.expr(a, env, where), where)) for a in e.args],
                             where)
        if isinstance(e, E.Subscript):
            base = self.expr(e.value, env, where)
            if isinstance(base, ListValue) and not (isinstance(e.index, E.Num) and isinstance(e.index.value, int)
                                                    and 0 <= e.index.value < len(base)):
                base = base.stack()
            if isinstance(base, list):  # one result of a multi-output op: "Split[1]"
                if not (isinstance(e.index, E.Num) and isinstance(e.index.value, int)
                        and 0 <= e.index.value < len(base)):
                    raise ValidationError("a multi-output function is indexed by a constant position",
                                          location=self.loc(where))
                return base[e.index.value]
            return self.subscript(base, e.index, env, where)
        if isinstance(e, E.List):
            if all(isinstance(x, E.Num) for x in e.elts) and not e.bare:
                return self.const([x.value for x in e.elts])
            vals = [self.one(self.expr(x, env, where), where) for x in e.elts]
            if not self.eager:  # stacked when used whole; "name[0]" takes an item as it is
                return ListValue(vals, lambda: op("aten::stack", vals, {"dim": 0}))
            # eager: numpy's array(): broadcast, promote, stack
            ts = torch.broadcast_tensors(*[v.tensor for v in vals])
            dtype = ts[0].dtype
            for t in ts[1:]:
                dtype = torch.promote_types(dtype, t.dtype)
            return self.g.add_constant(torch.stack([t.to(dtype) for t in ts]), "const")
        if isinstance(e, E.EmptyDict):
            raise ConversionError("'{}' (an empty ACT-R chunk) is not a tensor value", location=self.loc(where),
                                  hint=SYMBOLIC_HINT)
        raise ValidationError(f"unsupported expression {e!r}", location=self.loc(where))

    def one(self, v: Any, where: str) -> Value:
        """``v`` as one value: the first of an op's results where a file may use them whole;
        a list literal's items stacked (numpy's ``array()``)."""
        if isinstance(v, ListValue):
            return v.stack()
        if isinstance(v, MultiOutput) and v.whole_ok:
            return v[0]
        if isinstance(v, list):
            raise ValidationError("a function with several results is used as one value; index it "
                                  "(name[0])", location=self.loc(where))
        return v

    def call(self, f: str, args: list[Value], where: str) -> Value:
        """A call in an expression, through the function table (or a registered ``mdf::`` op)."""
        spec = expression_function(f)
        if spec is None:
            raise ValidationError(f"function {f!r} is not supported in expressions", location=self.loc(where))
        if spec.float_args:
            args = [self._float(a) for a in args]
        if spec.rule is not None:
            return spec.rule(self, args)
        return self.op(spec.op, args, dict(spec.attrs) if spec.attrs else None)

    def subscript(self, x: Value, index: Any, env: Env, where: str) -> Value:
        items = index if isinstance(index, tuple) else (index,)
        axis = 0
        out = x
        for it in items:
            if isinstance(it, E.Slice):
                lo = self._int_or_none(it.lower, env, where)
                hi = self._int_or_none(it.upper, env, where)
                st = self._int_or_none(it.step, env, where)
                big = 2**63 - 1
                out = self.op("onnx::Slice", [out, self.const([0 if lo is None else lo]),
                                              self.const([(big if (st or 1) > 0 else -big) if hi is None else hi]),
                                              self.const([axis]), self.const([1 if st is None else st])])
                axis += 1
            else:
                idx = self.one(self.expr(it, env, where), where)
                if idx.tensor is None or idx.tensor.dtype != torch.int64:
                    idx = self.op("onnx::Cast", [idx], {"to": 7})
                out = self.op("onnx::Gather", [out, idx], {"axis": axis})
        return out

    def _int_or_none(self, e: Any, env: Env, where: str) -> int | None:
        if e is None:
            return None
        if isinstance(e, E.Num) and isinstance(e.value, int):
            return int(e.value)
        if isinstance(e, E.UnaryOp) and e.op == "-" and isinstance(e.operand, E.Num):
            return -int(e.operand.value)
        if self.eager:  # every value is known: any integer expression
            return int(self.one(self.expr(e, env, where), where).tensor)
        raise ValidationError("slice bounds must be integer literals", location=self.loc(where))


# ---------------------------------------------------------------------------------------------
# Functions of one node run
# ---------------------------------------------------------------------------------------------

class NodeLowering(ExpressionLowering):
    """Lowers the expressions and functions of one node run into the segment's graph
    (``seg``: :class:`torchmdf.frontends.mdf.MDFProgram`'s segment being built)."""

    def __init__(self, seg: Any, node: Any, where: str):
        prog = seg.prog
        super().__init__(seg.g, seg.consts, where, loc=prog.loc, file=prog.file,
                         numpy=not prog.written_by_torchmdf)
        self.seg = seg
        self.prog = prog
        self.node = node

    # -- functions -----------------------------------------------------------------------------
    def function(self, fname: str, args: dict[str, Any] | None, where: str, env: Env) -> Any:
        """``function`` + ``args`` of a parameter or function: a standard function, an ONNX or
        ATen op, or (as modeci_mdf does for a name it does not know) an expression over the
        args.  Each argument sees the node's values and the arguments before it."""
        args = dict(args or {})
        scope = ordered_env(env, [(a, lambda prev, a=a, av=av: self.value(av, f"{where} > argument '{a}'", prev))
                               for a, av in args.items()])
        if fname.startswith("aten::"):  # the file allow-list decides
            d = registry.lookup_for_file(fname, self.loc(where))
        elif "::" in fname:
            d = registry.lookup(fname)  # any registered op (the allow-list admits them all)
            if d is None:
                raise ValidationError(f"unknown function {fname!r}", location=self.loc(where),
                                      hint="functions are the MDF standard functions, onnx::<Op> or aten::<op>")
        else:
            d = registry.lookup(f"mdf::{fname}")
        if d is None:
            return self.value(fname, where, scope)
        if d.regions is not None:
            return self._control_flow(d, args, scope, where)
        if d.domain == "onnx":
            return self._onnx(d, args, scope, env, where)
        if d.domain == "aten":
            return self._aten(d, args, scope, env, where)
        return self._registered(d, fname, args, scope, env, where)

    def _registered(self, d: Any, fname: str, args: dict[str, Any], scope: Env, env: Env, where: str) -> Any:
        """An MDF standard function or an op registered in another domain: its tensor inputs
        by ``input_names`` (from args or node values of those names), its attributes (the
        entry's attribute schema) from args or node values, as constants."""
        names = tuple(d.input_names or ())
        attr_names = [a.name for a in d.attr_schema]
        required = len(names) if d.domain == "mdf" else d.num_required_inputs  # the rest: optional
        missing = [n for n in names[:required] if n not in scope]
        extra = [n for n in args if n not in names and n not in attr_names]
        if missing or extra:
            raise ValidationError(f"function {fname!r} takes arguments {', '.join(names)}"
                                  + (f"; missing {', '.join(missing)}" if missing else "")
                                  + (f"; unknown {', '.join(extra)}" if extra else ""),
                                  location=self.loc(where))
        ins = [self.one(self.lookup(n, scope, where), where) if n in scope else None for n in names]
        while ins and ins[-1] is None:
            ins.pop()
        std = get_standard_function(fname) if d.domain == "mdf" else None
        if std is not None and std.float_args:
            ins = [self._float(x) if x is not None else None for x in ins]
        attrs: dict[str, Any] = {}
        for a in attr_names:
            if a in args:
                raw = args[a]
                attrs[a] = self._constant_attr(a, self.value(raw, f"{where} > argument '{a}'", env)
                                               if isinstance(raw, str) else raw, where)
            else:
                found, v = self._attr_from_node(a, env, where)
                if found:
                    attrs[a] = v
        n_out = d.outputs_for(attrs, len(ins))
        outs = self.g.create_node(d.name, ins, attrs, num_outputs=n_out, provenance=self.provenance(where),
                                  name=self.node.id).outputs
        if d.name == "mdf::linear" and all(x.meta.get(PYSCALAR) for x in ins):
            outs[0].meta[PYSCALAR] = True
        return outs[0] if n_out == 1 else list(outs)

    def _constant_attr(self, name: str, v: Any, where: str) -> Any:
        if isinstance(v, Value):
            if v.tensor is None:
                raise ConversionError(f"attribute {name!r} must be a constant, but its value is computed",
                                      location=self.loc(where))
            return v.tensor.tolist()
        return v.tolist() if isinstance(v, (torch.Tensor, np.ndarray)) else v

    def _attr_from_node(self, a: str, env: Env, where: str) -> tuple[bool, Any]:
        """An attribute modeci_mdf takes from a node value of the same name: a parameter's
        literal (a number, an array, a string attribute), else a constant value."""
        p = self.prog.params_by_id(self.node).get(a)
        if p is not None and p.value is not None and (not isinstance(p.value, str)
                                                      or self.prog.is_literal_attr(self.node, p)):
            return True, self._constant_attr(a, p.value, where)
        if a in env:
            v = env[a]
            if v is not NO_VALUE:
                return True, self._constant_attr(a, v, where)
        return False, None

    def _onnx(self, d: Any, args: dict[str, Any], scope: Env, env: Env, where: str) -> Any:
        schema = d.onnx_schema()
        attr_types = {k: a.type for k, a in schema.attributes.items()} if schema is not None else {}
        string_types = string_attr_types()
        names = list(d.input_names or ())
        inputs: list[Value | None] = []
        if d.variadic and names and names[0] in args:
            v = args[names[0]]
            items = v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
            if isinstance(v, str) and _QUOTED_LIST.fullmatch(v):  # "['_122', '_123']" (modeci writes it)
                items = _QUOTED_ITEM.findall(v)
            if items is not None:
                inputs = [self.one(self.value(x, f"{where} > argument '{names[0]}'", env), where) for x in items]
            else:
                inputs = [self.one(scope[names[0]], where)]
        else:
            for n in names:  # from args, or from a node value of that name (modeci_mdf passes them)
                inputs.append(self.one(self.lookup(n, scope, where), where) if n in scope
                              and scope[n] is not NO_VALUE else None)
            while inputs and inputs[-1] is None:
                inputs.pop()
        if self.numpy and schema is not None:
            inputs = self._numpy_promoted(schema, inputs, d.variadic)
        inputs = [self._as_onnx_input(x) for x in inputs]
        attrs: dict[str, Any] = {}
        for a, typ in attr_types.items():
            if a in args:
                raw = args[a]
                if isinstance(raw, str) and not (typ in string_types and raw not in scope):
                    raw = self.value(raw, f"{where} > argument '{a}'", env)
                attrs[a] = self._constant_attr(a, raw, where)
            else:
                found, v = self._attr_from_node(a, env, where)
                if found:
                    attrs[a] = v
            if a in attrs:
                attrs[a] = cast_attr(attrs[a], typ)
        unknown = [a for a in args if a not in names and a not in attr_types]
        if unknown:
            raise ValidationError(f"{d.name} has no input or attribute {', '.join(map(repr, unknown))}",
                                  location=self.loc(where))
        if d.name == "onnx::Constant" and not self.prog.written_by_torchmdf:
            # modeci_mdf's Constant returns its value as written: a Python int stays one (and
            # becomes a 1-element array where an ONNX op receives it, even over an edge: a
            # Gather index of 0 keeps a dimension).  Floats keep the 0-d form, whose dtype
            # follows the other operand (Clip bounds of a float32 input)
            raw = args.get("value", NO_VALUE)
            if raw is NO_VALUE:
                p = self.prog.params_by_id(self.node).get("value")
                raw = p.value if p is not None else NO_VALUE
            if type(raw) is int:
                return self.const(raw)
        n_out = d.outputs_for(attrs, len(inputs))
        if n_out < 0:  # known from an input: Split's ``split`` sizes
            sizes = inputs[1].tensor if d.name == "onnx::Split" and len(inputs) > 1 and inputs[1] is not None else None
            if sizes is None:
                raise ConversionError(f"{d.name}: how many results it has must be known when the file is read",
                                      location=self.loc(where),
                                      hint="give the attribute num_outputs, or the split sizes as a constant")
            n_out = int(sizes.numel())
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=n_out, provenance=self.provenance(where),
                                  name=self.node.id).outputs
        if schema is not None and len(schema.outputs) > 1:
            # modeci_mdf returns every output the schema declares (optional ones too) as a
            # sequence, so files pick the first with [0]: MaxPool, BatchNormalization, Dropout...
            # torchmdf computes the outputs the op's attributes ask for, the first always.
            # Files torchmdf wrote before it indexed them may use a one-output sequence whole.
            return MultiOutput(outs, whole_ok=self.prog.written_by_torchmdf and len(outs) == 1)
        return outs[0] if n_out == 1 else list(outs)

    def _control_flow(self, d: Any, args: dict[str, Any], scope: Env, where: str) -> Any:
        """``onnx::If``/``onnx::Loop`` (and ``torchmdf::While``, regions ``cond`` and ``body``):
        each region is the nested graph held by the parameter named as the ONNX attribute (``{"graph_<id>": graph}``, as modeci_mdf's ONNX importer
        and torchmdf write it), lowered on its own (its free input ports, in file order, are
        the region's inputs, then the values named by its ``captures``) and attached."""
        from torchmdf.frontends.mdf import lower_region_graph

        names = list(d.input_names or ())
        inputs: list[Value | None] = []
        for i, n in enumerate(names):
            raw = args.get(n)
            if d.variadic and i == len(names) - 1:
                items = raw if isinstance(raw, list) else _QUOTED_ITEM.findall(raw) if isinstance(raw, str) and \
                    _QUOTED_LIST.fullmatch(raw) else [raw] if raw is not None else []
                inputs += [self.one(self.value(x, f"{where} > argument '{n}'", scope), where) for x in items]
            else:
                inputs.append(None if raw is None else self.one(self.value(raw, f"{where} > argument '{n}'", scope),
                                                                where))
        unknown = [a for a in args if a not in names]
        if unknown:
            raise ValidationError(f"{d.name} has no input {', '.join(map(repr, unknown))}", location=self.loc(where))
        params = self.prog.params_by_id(self.node)
        regions = []
        for aname in _REGION_ATTRS.get(d.name, ()):
            pwhere = f"{self.prog.node_where(self.node)} > parameter '{aname}'"
            p = params.get(aname)
            body = p.value if p is not None else None
            if not (isinstance(body, dict) and len(body) == 1 and isinstance(next(iter(body.values())), dict)):
                raise ValidationError(f"{d.name} needs a parameter {aname!r} whose value is "
                                      "{\"graph_<id>\": <graph>}", location=self.loc(pwhere))
            key, gd = next(iter(body.items()))
            gid = key[6:] if isinstance(key, str) and key.startswith("graph_") and len(key) > 6 else str(key)
            region, captures = lower_region_graph(self.prog, gd, gid, pwhere)
            for arg, port in zip(region.inputs[len(region.inputs) - len(captures):], captures):
                if port not in scope or scope[port] is NO_VALUE:
                    raise ValidationError(f"graph {gid!r} captures {port!r}, which the node does not have",
                                          location=self.loc(pwhere))
                arg.replace_all_uses_with(self.one(self.lookup(port, scope, where), where))
            if captures:
                del region.inputs[len(region.inputs) - len(captures):]
            regions.append(region)
        n_out = len(regions[-1].outputs) - (1 if d.name == "onnx::Loop" else 0)
        node = self.g.create_node(d.name, inputs, {}, num_outputs=max(n_out, 0), provenance=self.provenance(where),
                                  name=self.node.id, regions=regions)
        if d.name == "onnx::Loop":  # a loop from a file is bounded
            node.meta[MAX_ITERATIONS] = LIMITS.max_loop_iterations
        outs = node.outputs
        return outs[0] if len(outs) == 1 else list(outs)

    def _numpy_promoted(self, schema: Any, inputs: list[Value | None], variadic: bool) -> list[Value | None]:
        """numpy's promotion within each ONNX type constraint (``T`` of Gemm's A, B and C):
        operands of different known dtypes are cast to ``np.result_type`` of them (an int64
        and a float32 array make float64), where torch would refuse (MatMul, Gemm, Conv) or
        promote otherwise.  A Python number is weak, as in numpy (``x + 1`` keeps x's type).
        modeci_mdf hands such operands to onnxruntime, which refuses mixed types."""
        from .functions import numpy_result_type

        constraints = {c.type_param_str for c in schema.type_constraints}
        groups: dict[str, list[int]] = {}
        for i, x in enumerate(inputs):
            formal = schema.inputs[min(i, len(schema.inputs) - 1)] if schema.inputs else None
            if x is None or formal is None or formal.type_str not in constraints:
                continue
            if i >= len(schema.inputs) and not variadic:
                continue
            groups.setdefault(formal.type_str, []).append(i)
        out = list(inputs)
        for idx in groups.values():
            arrays = [i for i in idx if not inputs[i].meta.get(PYSCALAR)]
            dts = [getattr(inputs[i].type, "dtype", None) for i in arrays]
            if len(arrays) < 2 or None in dts or all(d == dts[0] for d in dts):
                continue
            target = numpy_result_type(*(torch.empty((), dtype=d) for d in dts))
            for i, d in zip(arrays, dts):
                if d != target:
                    out[i] = self._cast(inputs[i], target)
        return out

    def _as_onnx_input(self, x: Value | None) -> Value | None:
        """modeci_mdf's ``convert_type``: a Python number becomes ``np.atleast_1d``.  Not in
        files torchmdf wrote: their ONNX ops stand for IR ops whose 0-d operands stay 0-d."""
        if x is None or not x.meta.get(PYSCALAR) or self.prog.written_by_torchmdf:
            return x
        if x.tensor is not None:
            return self.g.add_constant(x.tensor.reshape(1), "const")
        return self.op("onnx::Unsqueeze", [x, self.const([0])])

    def _aten(self, d: Any, args: dict[str, Any], scope: Env, env: Env, where: str) -> Any:
        sig = registry.aten_signature(d.fx_target)
        inputs: list[Value | None] = []
        attrs: dict[str, Any] = {}
        for name, kind in zip(sig.arg_names, sig.kinds):
            if kind in ("tensor", "tensor?"):
                if name in scope and scope[name] is not NO_VALUE:
                    inputs.append(self.one(self.lookup(name, scope, where), where))
                elif kind == "tensor?":
                    inputs.append(None)
            elif kind == "tensors":
                if name in args:
                    v = args[name]
                    v = v.tolist() if isinstance(v, torch.Tensor) else v
                    inputs.extend(self.one(self.value(x, where, env), where)
                                  for x in (v if isinstance(v, list) else [v]))
            elif name in registry.FILE_FORBIDDEN_ATTRS:
                continue  # never from a file: the module's device and defaults decide
            elif name in args:
                attrs[name] = decode_attr(self._constant_attr(name, args[name], where), self.loc(where))
            else:
                found, v = self._attr_from_node(name, env, where)
                if found:
                    attrs[name] = decode_attr(v, self.loc(where))
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=max(sig.num_returns, 1),
                                  provenance=self.provenance(where), name=self.node.id).outputs
        return outs[0] if len(outs) == 1 else list(outs)


class ListValue(list):
    """A list literal's items (``[a, b]``, or a bare ``a, b``), before stacking: ``name[i]``
    (constant ``i``) is item ``i`` as it is, the way modeci_mdf indexes the Python list or tuple
    it builds (items may differ in shape: ``[v, t]`` with ``v`` ``[1, 1]`` and ``t`` a scalar);
    used whole it is ``stack()``-ed, as numpy's ``array()`` stacks it."""

    def __init__(self, items: Any, stack: Any):
        super().__init__(items)
        self._stack = stack
        self._stacked: Value | None = None

    def stack(self) -> Value:
        if self._stacked is None:
            self._stacked = self._stack()
        return self._stacked


class MultiOutput(list):
    """The outputs of an ONNX op whose schema declares several (modeci_mdf's tuple)."""

    def __init__(self, outs: Any, whole_ok: bool = False):
        super().__init__(outs)
        self.whole_ok = whole_ok

