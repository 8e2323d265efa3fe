"""MDF frontend: a ``torchmdf.mdf.Model`` (or a file) -> IR, with modeci_mdf's semantics.

What one evaluation means (modeci_mdf 0.4's ``EvaluableGraph.evaluate``, which this module
reproduces and which ``tests/test_mdf_frontend.py`` checks against modeci_mdf itself):

**Scheduling.**  graph_scheduler orders the nodes: the *consideration queue* is the
topological levels of the edges, leaving out every edge into an input port that has a
``default_value`` (that is what lets a cycle run; a cycle without such a port is an error).
Each evaluation is one ``Scheduler.run()``: passes over the queue until the
``environment_state_update`` termination condition holds (default ``AllHaveRun()``); in each
consideration set a node runs when its condition holds (default: ``Always`` without
dependencies, ``EveryNCalls(dep, 1)`` with one, ``All`` of those with several), re-checking
the set until nothing more is added; a pass where nothing runs counts as one empty
consideration set.  Counters follow graph_scheduler: call counts per time scale (those at
``environment_state_update`` and finer reset at each run, ``pass`` and finer at each pass),
"useable" counts for ``EveryNCalls`` (reset at each run), the clock (passes and consideration
sets in this run, in total, runs so far), and the last consideration set (``JustRan``, which
crosses runs).  Supported: Always, Never, All/And, Any/Or, Not, NWhen, EveryNCalls,
BeforeNCalls, AtNCalls, AfterCall, AfterNCalls, AfterNCallsCombined, JustRan, AllHaveRun,
Before/At/After(N)Pass(es), EveryNPasses, the ConsiderationSetExecution,
EnvironmentStateUpdate and EnvironmentSequence families (including the ``...Start`` forms) and
Threshold; absolute-time conditions (TimeInterval, TimeTermination), WhenFinished* and
While/WhileNot are refused with a located :class:`ConversionError`.  Differences, all where
modeci_mdf is not deterministic or fails: nodes of one consideration set are considered and
run in file order (graph_scheduler iterates a ``set``); edges into one port are applied in file
order (modeci_mdf iterates a ``set`` of edges); ``JustRan`` before anything ran is false
(graph_scheduler raises ``IndexError``).

The schedule is data compiled into the lowering: the scheduler here is plain Python over node
ids and counters.  Without ``Threshold`` it never looks at values, so the executions of an
evaluation are known before lowering and become one IR graph, a node that runs several times
being emitted once per execution (each execution sees the previous one's values).  A
``Threshold`` makes the schedule depend on computed values: :func:`lower_mdf` refuses it,
:mod:`torchmdf.backends.simulate` runs the scheduler between compiled per-node executions.

**Edges.**  Just before a node runs, each edge into it whose sender has run at some point
(this evaluation or an earlier one) delivers the sender's latest output times the edge's
``weight`` (skipped when the weight is the number 1); the port's ``reduce`` combines several
(``overwrite``: the last wins, ``add``, ``multiply``; modeci_mdf adds and multiplies in place,
so with weight 1 it also changes the first sender's output array -- torchmdf does not).  A port
nothing delivered to reads its ``default_value``, else zeros of its ``shape`` (float64; int64
when the type says int; modeci_mdf uses an int 0 on a node's very first run, numerically the
same).  A port that no edge feeds is a graph input defaulting to that value.  A self-edge
delivers from the node's second run on.

**A node's run.**  (1) input ports; (2) the *current* value of every parameter, in declaration
order: the value from its previous run, else -- stateful (``default_initial_value``,
``time_derivative`` or a value naming itself) -- the ``default_initial_value`` (seeing the
inputs and the current values of earlier parameters) or 0.0, else its value expression with
its own name bound to 0.0; (3) functions, ordered by the function ids they use, seeing inputs,
current parameter values and earlier functions; (4) parameters in declaration order, each
seeing the new values of earlier parameters and the current values of itself and later ones:
``value`` > ``function`` + ``args`` > ``time_derivative`` (first evaluation: the initial
value; later: forward Euler ``old + td * dt``) > the previous value; then ``conditions`` in
order, ``where(test, value, v)``; (5) output ports.  Current values are lowered lazily, so
those nobody reads cost nothing (modeci_mdf computes them all and fails where one cannot be
computed; torchmdf only fails where one is read).

ONNX functions take their inputs and attributes from ``args`` or, as modeci_mdf passes every
node value to the op, from any input port, parameter or function of the same name;
attributes must be constants and are cast to their schema type.  A Python number given to an
ONNX op becomes a 1-element array (modeci_mdf's ``np.atleast_1d``; not in files torchmdf wrote,
whose ONNX ops stand for IR ops on 0-d tensors).  modeci_mdf runs ONNX ops
in float32; torchmdf keeps the inputs' dtype.  Expressions are parsed by the whitelisted
parser of :mod:`torchmdf.mdf.expressions` and lowered into IR nodes; nothing from a file is
ever evaluated with ``eval``.

**State across evaluations.**  A graph lowered for a later evaluation (``first=False``) reads
what earlier evaluations left -- parameter values, output ports, for the edges and ports of
nodes that ran -- as IR state variables; ``g.meta["state_after"]`` maps the same keys to the
values this evaluation leaves.  ``first=True`` is modeci_mdf's first ``evaluate()`` (time
derivatives take their initial values, at every run of the node in that evaluation),
``first=False`` its second, ``evaluate(time_increment=dt)``.

**Several graphs.**  A model may hold several graphs: ``graph=`` picks one by id; without it
the first graph is lowered (as modeci_mdf's ``execution_engine.main`` does) and
``g.metadata["mdf_graph"]`` names it.  A graph nested inside a graph (modeci_mdf's PyTorch
importer writes the body of an ``onnx::Loop`` that way) is refused with a located error.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any, Callable, Iterator

import numpy as np
import torch

from torchmdf.errors import ConversionError, TorchMDFError, ValidationError
from torchmdf.ir import Graph, Provenance, TensorType, Value, ValueRole
from torchmdf.ir.meta_keys import DEFAULT, MDF_PORT, PYSCALAR
from torchmdf.limits import LIMITS
from torchmdf.ops import registry

_UNARY_ONNX = {"exp": "Exp", "sqrt": "Sqrt", "abs": "Abs", "sin": "Sin", "cos": "Cos", "tan": "Tan",
               "sinh": "Sinh", "cosh": "Cosh", "tanh": "Tanh", "arcsin": "Asin", "arccos": "Acos",
               "arctan": "Atan", "arcsinh": "Asinh", "arccosh": "Acosh", "arctanh": "Atanh",
               "floor": "Floor", "ceil": "Ceil", "sign": "Sign", "erf": "Erf"}
_UNARY_ATEN = {"log10": "aten::log10", "log2": "aten::log2", "log1p": "aten::log1p", "expm1": "aten::expm1",
               "trunc": "aten::trunc", "round": "aten::round"}
_BIN = {"+": "onnx::Add", "-": "onnx::Sub", "*": "onnx::Mul", "/": "aten::div.Tensor",
        "//": "aten::floor_divide", "%": "aten::remainder.Tensor", "**": "onnx::Pow", "@": "onnx::MatMul"}
_CMP = {"==": "onnx::Equal", "!=": "aten::ne.Tensor", "<": "onnx::Less", "<=": "onnx::LessOrEqual",
        ">": "onnx::Greater", ">=": "onnx::GreaterOrEqual"}
_STANDARD = {"linear", "logistic", "exponential", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin",
             "arccos", "arctan", "MatMul", "Relu"}
_PYSCALAR_BIN = {"+", "-", "*", "/", "//", "%", "**"}  # Python arithmetic keeps Python numbers

_QUOTED_LIST = re.compile(r"\[\s*'[^']*'(\s*,\s*'[^']*')*\s*\]")
_QUOTED_ITEM = re.compile(r"'([^']*)'")

#: Passes one evaluation may take before it is declared non-terminating.
MAX_PASSES = 10_000


def as_tensor(v: Any) -> torch.Tensor:
    """A literal MDF value as a tensor (float64 for floats, as modeci_mdf's numpy computes);
    anything that is not a number or an array is a located ConversionError upstream."""
    from torchmdf.mdf.expressions import literal_tensor

    try:
        return literal_tensor(v)
    except (TypeError, ValueError, RuntimeError) as e:
        text = repr(v)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise ConversionError(f"value {text} is not a number or array ({e})"[:300]) from e


def _is_pyscalar(v: Any) -> bool:
    return type(v) in (int, float)


_PORT_TYPES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64,
               "double": torch.float64, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool,
               "float16": torch.float16}


def _symbolic_port_shape(node_id: str, p: Any) -> tuple | None:
    """A shape with symbolic dims torchmdf wrote in the port's metadata (``{"torchmdf":
    {"shape": ["batch", 16]}}``, see :mod:`torchmdf.backends.mdf`), else None."""
    from torchmdf.mdf.torchmdf_metadata import PortMetadata

    shape = PortMetadata.read(p.metadata, f"node '{node_id}', input port '{p.id}'").shape
    return None if shape is None else tuple(shape)


def _port_default(p: Any) -> torch.Tensor:
    """What a port nothing delivered to reads: ``default_value``, else zeros of its shape."""
    if p.default_value is not None:
        t = as_tensor(p.default_value)
        dt = _PORT_TYPES.get(str(p.type)) if p.type else None
        return t.to(dt) if dt is not None and t.dtype != dt else t
    shape = tuple(p.shape) if p.shape else ()
    dtype = torch.float32 if (p.type and "float32" in str(p.type)) else torch.float64
    if p.type and "int" in str(p.type):
        dtype = torch.int64
    # a stride-0 view of one zero: no memory and no fill for large ports (inception.json's
    # 97 free ports hold 56M elements); nothing writes into graph inputs or constants
    return torch.zeros((), dtype=dtype).expand(shape)


# ---------------------------------------------------------------------------------------------
# Names visible to an expression
# ---------------------------------------------------------------------------------------------

_NO_VALUE = None  # a name that has no value yet (a parameter modeci_mdf holds as None)


class _Env:
    """Names visible to an expression, resolved lazily: a name bound to a thunk is lowered
    the first time an expression reads it, so values nobody reads emit no IR.

    ``view`` is ``(index, limit, get)``: the names of ``index`` whose position is below
    ``limit`` resolve to ``get(position)``.  That is how "each argument sees the arguments
    before it" is one environment per argument instead of a chain as long as the arguments
    (which made a node with many parameters or arguments quadratic)."""

    __slots__ = ("vals", "thunks", "parent", "view")

    def __init__(self, parent: _Env | None = None,
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

    def child(self) -> _Env:
        return _Env(self)

    def __contains__(self, k: object) -> bool:
        e: _Env | None = self
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
        e: _Env | None = self
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
        e: _Env | None = self
        while e is not None:
            out |= set(e.vals) | set(e.thunks)
            if e.view is not None:
                out |= {n for n, i in e.view[0].items() if i < e.view[1]}
            e = e.parent
        return sorted(out)


def _ordered(parent: _Env, items: list[tuple[str, Callable[[_Env], Any]]]) -> _Env:
    """An environment over ``parent`` holding ``items`` in order: item ``k`` is lowered
    lazily, by ``make(env)`` with an ``env`` that sees the items before it (and ``parent``)."""
    index = {name: k for k, (name, _) in enumerate(items)}
    cache: dict[int, Any] = {}

    def get(k: int) -> Any:
        if k not in cache:
            cache[k] = items[k][1](_Env(parent, (index, k, get)))
        return cache[k]

    _warm(len(items), get)
    return _Env(parent, (index, len(items), get))


#: Above this many parameters or arguments, a node's values are lowered in order first.
_WARM_ABOVE = 64


def _warm(n: int, get: Callable[[int], Any]) -> None:
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
# Expressions and functions of one node run
# ---------------------------------------------------------------------------------------------

class _Lower:
    """Lowers the expressions and functions of one node run into the segment's graph."""

    def __init__(self, seg: _Segment, node: Any, where: str):
        self.seg = seg
        self.prog = seg.prog
        self.g = seg.g
        self.node = node
        self.where = where
        self.prov = Provenance(origin="mdf", mdf_path=where, file=self.prog.file)
        self._provs: dict[str, Provenance] = {}

    def loc(self, where: str) -> str:
        return self.prog.loc(where)

    # -- values and expressions ---------------------------------------------------------------
    def const(self, v: Any, name: str = "const") -> Value:
        """A literal; Python numbers are shared within a graph and remember they were Python
        numbers (modeci_mdf hands those to ONNX ops as 1-element arrays)."""
        if _is_pyscalar(v) or isinstance(v, bool):
            key = (type(v), repr(v))  # repr: -0.0 is not 0.0
            out = self.seg.consts.get(key)
            if out is None:
                out = self.g.add_constant(as_tensor(v), "const")
                if _is_pyscalar(v):
                    out.meta[PYSCALAR] = True
                self.seg.consts[key] = out
            return out
        return self.g.add_constant(as_tensor(v), name)

    def provenance(self, where: str | None) -> Provenance:
        """The provenance of nodes lowered for ``where`` (a parameter, a function, a port)."""
        if where is None or where == self.where:
            return self.prov
        p = self._provs.get(where)
        if p is None:
            p = self._provs[where] = Provenance(origin="mdf", mdf_path=where, file=self.prog.file)
        return p

    def op(self, op: str, inputs: list[Value | None], attrs: dict | None = None, n_out: int = 1,
           name: str = "", where: str | None = None) -> Value:
        prov = self.provenance(where)
        node = self.g.create_node(op, inputs, attrs or {}, num_outputs=n_out, provenance=prov, name=name)
        return node.outputs[0]

    def value(self, v: Any, where: str, env: _Env, name: str = "") -> Value:
        """A parameter value / argument: number, array or expression string."""
        if isinstance(v, str):
            from torchmdf.mdf.expressions import parse_in_scope

            return self.expr(parse_in_scope(v, env, location=self.loc(where)), env, where)
        if isinstance(v, (int, float, bool, torch.Tensor, np.ndarray, np.number, list)):
            return self.const(v, name or "const")
        raise ValidationError(f"a value must be a number, an array or an expression, not {type(v).__name__}",
                              location=self.loc(where))

    def lookup(self, name: str, env: _Env, where: str) -> Any:
        from torchmdf.mdf import expressions as E

        if name in env:
            v = env[name]
            if v is _NO_VALUE:
                raise ValidationError(f"{name!r} has no value here", location=self.loc(where),
                                      hint="a parameter with only a function, conditions or a time "
                                      "derivative has no value before its first evaluation")
            return v
        if name in E._CONSTANTS:
            return self.const(float(E._CONSTANTS[name]))
        raise ValidationError(f"unknown name {name!r} in expression", location=self.loc(where),
                              hint=f"names in scope: {', '.join(env.names()) or '(none)'}")

    def expr(self, e: Any, env: _Env, where: str) -> Any:
        from torchmdf.mdf import expressions as E

        op = self.op
        if isinstance(e, E.Num):
            return self.const(e.value)
        if isinstance(e, E.Name):
            return self.lookup(e.id, env, where)
        if isinstance(e, E.BinOp):
            a, b = self._one(self.expr(e.left, env, where), where), self._one(self.expr(e.right, env, where), where)
            x = a
            if e.op == "/" and not self.prog.written_by_torchmdf and not any(
                    v.tensor is not None and v.tensor.is_floating_point() for v in (a, b)):
                # numpy divides ints into float64, torch into float32: make the dividend float64
                # (a float32 array stays float32: a 0-d float64 does not promote it)
                x = op("onnx::Mul", [a, self.g.add_constant(torch.tensor(1.0, dtype=torch.float64), "one")])
            out = op(_BIN[e.op], [x, b])
            if e.op in _PYSCALAR_BIN and a.meta.get(PYSCALAR) and b.meta.get(PYSCALAR):
                out.meta[PYSCALAR] = True
            return out
        if isinstance(e, E.UnaryOp):
            x = self._one(self.expr(e.operand, env, where), where)
            if e.op == "+":
                return x
            out = op("onnx::Neg", [x]) if e.op == "-" else op("aten::logical_not", [x])
            if e.op == "-" and x.meta.get(PYSCALAR):
                out.meta[PYSCALAR] = True
            return out
        if isinstance(e, E.Compare):
            return op(_CMP[e.op], [self._one(self.expr(e.left, env, where), where),
                                   self._one(self.expr(e.right, env, where), where)])
        if isinstance(e, E.BoolOp):
            vals = [self._one(self.expr(x, env, where), where) for x in e.values]
            out = vals[0]
            for x in vals[1:]:
                out = op("aten::logical_and" if e.op == "and" else "aten::logical_or", [out, x])
            return out
        if isinstance(e, E.IfExp):
            return op("onnx::Where", [self._one(self.expr(x, env, where), where)
                                      for x in (e.test, e.body, e.orelse)])
        if isinstance(e, E.Call):
            return self.call(e.func, [self._one(self.expr(a, env, where), where) for a in e.args], where)
        if isinstance(e, E.Subscript):
            base = self.expr(e.value, env, where)
            if isinstance(base, list):  # one result of a multi-output op: "Split[1]"
                if not (isinstance(e.index, E.Num) and isinstance(e.index.value, int)
                        and 0 <= e.index.value < len(base)):
                    raise ValidationError("a multi-output function is indexed by a constant position",
                                          location=self.loc(where))
                return base[e.index.value]
            return self.subscript(base, e.index, env, where)
        if isinstance(e, E.List):
            if all(isinstance(x, E.Num) for x in e.elts):
                return self.const([x.value for x in e.elts])
            return op("aten::stack", [self._one(self.expr(x, env, where), where) for x in e.elts], {"dim": 0})
        raise ValidationError(f"unsupported expression {e!r}", location=self.loc(where))

    def _one(self, v: Any, where: str) -> Value:
        if isinstance(v, _Outputs) and v.whole_ok:
            return v[0]
        if isinstance(v, list):
            raise ValidationError("a function with several results is used as one value; index it "
                                  "(name[0])", location=self.loc(where))
        return v

    def call(self, f: str, args: list[Value], where: str) -> Value:
        op = self.op
        if f in _STANDARD and f not in _UNARY_ONNX:
            out = op(f"mdf::{f}", args)
            if f == "linear" and all(a.meta.get(PYSCALAR) for a in args):
                out.meta[PYSCALAR] = True
            return out
        if f in _UNARY_ONNX:
            return op(f"onnx::{_UNARY_ONNX[f]}", args)
        if f in _UNARY_ATEN:
            return op(_UNARY_ATEN[f], args)
        if f == "log":
            y = op("onnx::Log", [args[0]])
            return y if len(args) == 1 else op("aten::div.Tensor", [y, op("onnx::Log", [args[1]])])
        if f == "square":
            return op("onnx::Mul", [args[0], args[0]])
        if f in ("float", "int"):
            return op("onnx::Cast", [args[0]], {"to": 11 if f == "float" else 7})
        if f in ("sum", "mean", "amax", "amin") or (f in ("min", "max") and len(args) == 1):
            red = {"sum": "ReduceSum", "mean": "ReduceMean", "amax": "ReduceMax", "amin": "ReduceMin",
                   "max": "ReduceMax", "min": "ReduceMin"}[f]
            return op(f"onnx::{red}", [args[0]], {"keepdims": 0})
        if f in ("max", "min", "maximum", "minimum"):
            return op("onnx::Max" if f in ("max", "maximum") else "onnx::Min", args)
        if f == "pow":
            return op("onnx::Pow", args)
        if f in ("matmul", "dot"):  # mdf::MatMul promotes mixed dtypes as numpy does
            return op("onnx::MatMul" if self.prog.written_by_torchmdf else "mdf::MatMul", args)
        if f == "arctan2":
            return op("aten::atan2", args)
        if f == "hypot":
            return op("aten::hypot", args)
        if f == "fmod":
            return op("aten::fmod.Tensor", args)
        if f == "where":
            return op("onnx::Where", args)
        if f == "clip":
            return op("aten::clamp.Tensor", args)
        raise ValidationError(f"function {f!r} is not supported in expressions", location=self.loc(where))

    def subscript(self, x: Value, index: Any, env: _Env, where: str) -> Value:
        from torchmdf.mdf import expressions as E

        items = index if isinstance(index, tuple) else (index,)
        axis = 0
        out = x
        for it in items:
            if isinstance(it, E.Slice):
                lo = self._int_or_none(it.lower, where)
                hi = self._int_or_none(it.upper, where)
                st = self._int_or_none(it.step, where)
                big = 2**63 - 1
                out = self.op("onnx::Slice", [out, self.const([0 if lo is None else lo]),
                                              self.const([(big if (st or 1) > 0 else -big) if hi is None else hi]),
                                              self.const([axis]), self.const([1 if st is None else st])])
                axis += 1
            else:
                idx = self._one(self.expr(it, env, where), where)
                if idx.tensor is None or idx.tensor.dtype != torch.int64:
                    idx = self.op("onnx::Cast", [idx], {"to": 7})
                out = self.op("onnx::Gather", [out, idx], {"axis": axis})
        return out

    def _int_or_none(self, e: Any, where: str) -> int | None:
        from torchmdf.mdf import expressions as E

        if e is None:
            return None
        if isinstance(e, E.Num) and isinstance(e.value, int):
            return int(e.value)
        if isinstance(e, E.UnaryOp) and e.op == "-" and isinstance(e.operand, E.Num):
            return -int(e.operand.value)
        raise ValidationError("slice bounds must be integer literals", location=self.loc(where))

    # -- functions -----------------------------------------------------------------------------
    def function(self, fname: str, args: dict[str, Any] | None, where: str, env: _Env) -> Any:
        """``function`` + ``args`` of a parameter or function: a standard function, an ONNX or
        ATen op, or (as modeci_mdf does for a name it does not know) an expression over the
        args.  Each argument sees the node's values and the arguments before it."""
        args = dict(args or {})
        scope = _ordered(env, [(a, lambda prev, a=a, av=av: self.value(av, f"{where} > argument '{a}'", prev))
                               for a, av in args.items()])
        if "::" in fname:
            if registry.lookup(fname) is None and not fname.startswith("aten::"):
                raise ValidationError(f"unknown function {fname!r}", location=self.loc(where),
                                      hint="functions are the MDF standard functions, onnx::<Op> or aten::<op>")
            d = registry.lookup_for_file(fname, self.loc(where))
        else:
            d = registry.lookup(f"mdf::{fname}")
        if d is None:
            return self.value(fname, where, scope)
        if d.domain == "mdf":
            missing = [n for n in d.input_names if n not in scope]
            extra = [n for n in args if n not in d.input_names]
            if missing or extra:
                raise ValidationError(f"function {fname!r} takes arguments {', '.join(d.input_names)}"
                                      + (f"; missing {', '.join(missing)}" if missing else "")
                                      + (f"; unknown {', '.join(extra)}" if extra else ""),
                                      location=self.loc(where))
            ins = [self._one(self.lookup(n, scope, where), where) for n in d.input_names]
            out = self.op(d.name, ins, name=self.node.id, where=where)
            if d.name == "mdf::linear" and all(x.meta.get(PYSCALAR) for x in ins):
                out.meta[PYSCALAR] = True
            return out
        if d.domain == "onnx":
            return self._onnx(d, args, scope, env, where)
        return self._aten(d, args, scope, env, where)

    def _constant_attr(self, name: str, v: Any, where: str) -> Any:
        if isinstance(v, Value):
            if v.tensor is None:
                raise ConversionError(f"attribute {name!r} must be a constant, but its value is computed",
                                      location=self.loc(where))
            return v.tensor.tolist()
        return v.tolist() if isinstance(v, (torch.Tensor, np.ndarray)) else v

    def _attr_from_node(self, a: str, env: _Env, where: str) -> tuple[bool, Any]:
        """An attribute modeci_mdf takes from a node value of the same name: a parameter's
        literal (a number, an array, a string attribute), else a constant value."""
        p = self.prog.params_by_id(self.node).get(a)
        if p is not None and p.value is not None and (not isinstance(p.value, str)
                                                      or self.prog.is_literal_attr(self.node, p)):
            return True, self._constant_attr(a, p.value, where)
        if a in env:
            v = env[a]
            if v is not _NO_VALUE:
                return True, self._constant_attr(a, v, where)
        return False, None

    def _onnx(self, d: Any, args: dict[str, Any], scope: _Env, env: _Env, where: str) -> Any:
        schema = d.onnx_schema()
        attr_types = {k: a.type for k, a in schema.attributes.items()} if schema is not None else {}
        string_types = _string_attr_types()
        names = list(d.input_names or ())
        inputs: list[Value | None] = []
        if d.variadic and names and names[0] in args:
            v = args[names[0]]
            items = v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
            if isinstance(v, str) and _QUOTED_LIST.fullmatch(v):  # "['_122', '_123']" (modeci writes it)
                items = _QUOTED_ITEM.findall(v)
            if items is not None:
                inputs = [self._one(self.value(x, f"{where} > argument '{names[0]}'", env), where) for x in items]
            else:
                inputs = [self._one(scope[names[0]], where)]
        else:
            for n in names:  # from args, or from a node value of that name (modeci_mdf passes them)
                inputs.append(self._one(self.lookup(n, scope, where), where) if n in scope
                              and scope[n] is not _NO_VALUE else None)
            while inputs and inputs[-1] is None:
                inputs.pop()
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
                attrs[a] = _cast_attr(attrs[a], typ)
        unknown = [a for a in args if a not in names and a not in attr_types]
        if unknown:
            raise ValidationError(f"{d.name} has no input or attribute {', '.join(map(repr, unknown))}",
                                  location=self.loc(where))
        if d.name == "onnx::Constant" and not self.prog.written_by_torchmdf:
            # modeci_mdf's Constant returns its value as written: a Python int stays one (and
            # becomes a 1-element array where an ONNX op receives it, even over an edge: a
            # Gather index of 0 keeps a dimension).  Floats keep the 0-d form, whose dtype
            # follows the other operand (Clip bounds of a float32 input)
            raw = args.get("value", _NO_VALUE)
            if raw is _NO_VALUE:
                p = self.prog.params_by_id(self.node).get("value")
                raw = p.value if p is not None else _NO_VALUE
            if type(raw) is int:
                return self.const(raw)
        n_out = d.outputs_for(attrs, len(inputs))
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=n_out, provenance=self.provenance(where),
                                  name=self.node.id).outputs
        if schema is not None and len(schema.outputs) > 1:
            # modeci_mdf returns every output the schema declares (optional ones too) as a
            # sequence, so files pick the first with [0]: MaxPool, BatchNormalization, Dropout...
            # torchmdf computes the outputs the op's attributes ask for, the first always.
            # Files torchmdf wrote before it indexed them may use a one-output sequence whole.
            return _Outputs(outs, whole_ok=self.prog.written_by_torchmdf and len(outs) == 1)
        return outs[0] if n_out == 1 else list(outs)

    def _as_onnx_input(self, x: Value | None) -> Value | None:
        """modeci_mdf's ``convert_type``: a Python number becomes ``np.atleast_1d``.  Not in
        files torchmdf wrote: their ONNX ops stand for IR ops whose 0-d operands stay 0-d."""
        if x is None or not x.meta.get(PYSCALAR) or self.prog.written_by_torchmdf:
            return x
        if x.tensor is not None:
            return self.g.add_constant(x.tensor.reshape(1), "const")
        return self.op("onnx::Unsqueeze", [x, self.const([0])])

    def _aten(self, d: Any, args: dict[str, Any], scope: _Env, env: _Env, where: str) -> Any:
        sig = registry.aten_signature(d.fx_target)
        inputs: list[Value | None] = []
        attrs: dict[str, Any] = {}
        for name, kind in zip(sig.arg_names, sig.kinds):
            if kind in ("tensor", "tensor?"):
                if name in scope and scope[name] is not _NO_VALUE:
                    inputs.append(self._one(self.lookup(name, scope, where), where))
                elif kind == "tensor?":
                    inputs.append(None)
            elif kind == "tensors":
                if name in args:
                    v = args[name]
                    v = v.tolist() if isinstance(v, torch.Tensor) else v
                    inputs.extend(self._one(self.value(x, where, env), where)
                                  for x in (v if isinstance(v, list) else [v]))
            elif name in registry.FILE_FORBIDDEN_ATTRS:
                continue  # never from a file: the module's device and defaults decide
            elif name in args:
                attrs[name] = _decode_attr(self._constant_attr(name, args[name], where), self.loc(where))
            else:
                found, v = self._attr_from_node(name, env, where)
                if found:
                    attrs[name] = _decode_attr(v, self.loc(where))
        outs = self.g.create_node(d.name, inputs, attrs, num_outputs=max(sig.num_returns, 1),
                                  provenance=self.provenance(where), name=self.node.id).outputs
        return outs[0] if len(outs) == 1 else list(outs)


class _Outputs(list):
    """The outputs of an ONNX op whose schema declares several (modeci_mdf's tuple)."""

    def __init__(self, outs: Any, whole_ok: bool = False):
        super().__init__(outs)
        self.whole_ok = whole_ok


def _string_attr_types() -> set[Any]:
    import onnx.defs

    T = onnx.defs.OpSchema.AttrType
    return {T.STRING, T.STRINGS}


def _cast_attr(v: Any, typ: Any) -> Any:
    """Attributes cast to their schema type, as modeci_mdf does (a failed cast keeps the value)."""
    import onnx.defs

    T = onnx.defs.OpSchema.AttrType
    try:
        if typ == T.INT:
            return int(np.asarray(v).item()) if not isinstance(v, int) else v
        if typ == T.FLOAT:
            return float(np.asarray(v).item())
        if typ == T.INTS:
            return [int(x) for x in np.asarray(v).reshape(-1)]
        if typ == T.FLOATS:
            return [float(x) for x in np.asarray(v).reshape(-1)]
    except (TypeError, ValueError):
        return v
    return v


_MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format, "preserve_format": torch.preserve_format,
                   "channels_last": torch.channels_last, "channels_last_3d": torch.channels_last_3d}


def _decode_attr(v: Any, where: str | None = None) -> Any:
    """ATen attributes that JSON cannot hold are written as ``{"dtype": "float32"}`` etc.
    Only real dtypes and memory formats are read; a device is never taken from a file (the
    module's device decides), so ``{"device": ...}`` reads as None."""
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        if k == "dtype":
            dt = getattr(torch, x, None) if isinstance(x, str) and x.isidentifier() else None
            if not isinstance(dt, torch.dtype):
                raise ValidationError(f"unknown dtype {x!r}", location=where)
            return dt
        if k == "device":
            return None
        if k == "memory_format":
            mf = _MEMORY_FORMATS.get(x) if isinstance(x, str) else None
            if mf is None:
                raise ValidationError(f"unknown memory format {x!r}", location=where,
                                      hint=f"one of {', '.join(_MEMORY_FORMATS)}")
            return mf
    return v


def _with_dtype(t: torch.Tensor, name: str | None, where: str) -> torch.Tensor:
    if not name:
        return t
    dt = getattr(torch, str(name), None)
    if not isinstance(dt, torch.dtype):
        raise ValidationError(f"unknown dtype {name!r} in torchmdf metadata", location=where)
    return t.to(dt)


# ---------------------------------------------------------------------------------------------
# Scheduling (graph_scheduler semantics, over node ids and counters)
# ---------------------------------------------------------------------------------------------

CSE, PASS, ESU, ES, LIFE = range(5)
_TIME_SCALES = {"CONSIDERATION_SET_EXECUTION": CSE, "PASS": PASS, "ENVIRONMENT_STATE_UPDATE": ESU,
                "ENVIRONMENT_SEQUENCE": ES, "LIFE": LIFE}
_COMPARATORS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _time_scale(v: Any) -> int | None:
    """``"TimeScale.PASS"``, ``"PASS"``, ``"pass"`` -> the scale, or None."""
    if not isinstance(v, str):
        return None
    name = v.strip()
    name = name[len("TimeScale"):] if name.startswith("TimeScale") else name
    return _TIME_SCALES.get(name.lstrip(".").upper()) if len(name) < 64 else None


class _Cond:
    """A compiled condition: ``ok(scheduler)``; ``history``: it reads counters that survive a
    run; ``dynamic``: it reads computed values (Threshold); ``cost``: the work of one check
    (counted against ``LIMITS.max_schedule_work``)."""

    __slots__ = ("ok", "history", "justran", "dynamic", "where", "cost")

    def __init__(self, ok: Callable[[Scheduler], bool], where: str, *, history: bool = False,
                 justran: bool = False, dynamic: bool = False, parts: tuple[_Cond, ...] = (), cost: int = 1):
        self.ok = ok
        self.where = where
        self.history = history or any(p.history for p in parts)
        self.justran = justran or any(p.justran for p in parts)
        self.dynamic = dynamic or any(p.dynamic for p in parts)
        self.cost = cost + sum(p.cost for p in parts)


class Scheduler:
    """graph_scheduler's ``Scheduler.run`` over node ids: each :meth:`run` is one evaluation
    and yields its consideration set executions (lists of node ids, in run order).

    ``value_of(node, name)`` answers Threshold conditions (None: refuse them).

    Linear in the graph: graph_scheduler keeps an n x n table of "useable" counts for
    EveryNCalls; here each node counts its runs since the evaluation began, and a node that
    owns ``EveryNCalls(dep)`` notes ``dep``'s count when it runs (``watch`` lists those pairs),
    so the useable count is a difference.  The condition checks of one evaluation are counted
    against ``LIMITS.max_schedule_work``."""

    def __init__(self, nodes: list[str], queue: list[list[str]], conds: dict[str, _Cond],
                 term_esu: _Cond, term_es: _Cond, where: str, watch: dict[str, list[str]] | None = None):
        self.nodes = nodes
        self.queue = queue
        self.conds = conds
        self.term_esu = term_esu
        self.term_es = term_es
        self.where = where
        self.counts = [dict.fromkeys(nodes, 0) for _ in range(5)]
        self.watch = watch or {}
        self.calls: dict[str, int] = dict.fromkeys(nodes, 0)  # runs since this evaluation began
        self.snap: dict[str, dict[str, int]] = {}  # owner -> dep -> calls[dep] when owner last ran
        self.ran_this_run = 0  # nodes with counts[ESU] >= 1 (AllHaveRun without dependencies)
        self.last: list[str] | None = None  # the last consideration set execution, for JustRan
        self.last_set: frozenset[str] = frozenset()
        self.pass_run = self.pass_total = 0
        self.cse_pass = self.cse_run = self.cse_total = 0
        self.runs = 0
        self.work = 0
        self.value_of: Callable[[str, str], Any] | None = None
        allc = [*conds.values(), term_esu, term_es]
        self.history = any(c.history for c in allc)
        self.justran = any(c.justran for c in allc)
        self.dynamic = any(c.dynamic for c in allc)

    def useable(self, dep: str, owner: str) -> int:
        """Runs of ``dep`` since ``owner`` last ran (in this evaluation)."""
        return self.calls[dep] - self.snap.get(owner, {}).get(dep, 0)

    def relative(self, query: int, base: int, where: str) -> int:
        """``Clock.get_total_times_relative(query, base)`` for the current time."""
        if query == PASS and base == ESU:
            return self.pass_run
        if query == PASS and base in (ES, LIFE):
            return self.pass_total
        if query == CSE and base == PASS:
            return self.cse_pass
        if query == CSE and base == ESU:
            return self.cse_run
        if query == CSE and base in (ES, LIFE):
            return self.cse_total
        if query == ESU and base in (ES, LIFE):
            return self.runs
        if query == ES and base == LIFE:
            return 0
        raise ConversionError("this condition counts a time scale relative to one that is not coarser",
                              location=where)

    def _check(self, c: _Cond) -> bool:
        self.work += c.cost
        if self.work > LIMITS.max_schedule_work:
            raise ConversionError(f"scheduling one evaluation took more than {LIMITS.max_schedule_work:,} "
                                  "condition checks", location=self.where,
                                  hint="the conditions make the scheduler loop (or the graph is huge); raise "
                                  "torchmdf.limits.LIMITS.max_schedule_work if the file is trusted")
        return c.ok(self)

    def _terminated(self) -> bool:
        return self._check(self.term_esu) or self._check(self.term_es)

    def _ran(self, node: str) -> None:
        if self.counts[ESU][node] == 0:
            self.ran_this_run += 1
        for ts in range(5):
            self.counts[ts][node] += 1
        deps = self.watch.get(node)
        if deps:
            snap = self.snap.setdefault(node, {})
            for d in deps:
                snap[d] = self.calls[d]
        self.calls[node] += 1

    def run(self, value_of: Callable[[str, str], Any] | None = None) -> Iterator[list[str]]:
        """One evaluation; a generator, so that a Threshold sees the values of the executions
        yielded before it is checked."""
        self.value_of = value_of
        self.work = 0
        self.calls = dict.fromkeys(self.nodes, 0)
        self.snap = {}
        self.ran_this_run = 0
        for ts in (CSE, PASS, ESU):
            self.counts[ts] = dict.fromkeys(self.nodes, 0)
        self.pass_run = self.cse_run = 0
        while not self._terminated():
            for ts in (CSE, PASS):
                self.counts[ts] = dict.fromkeys(self.nodes, 0)
            self.cse_pass = 0
            changed = False
            for cs in self.queue:
                if self._terminated():
                    break
                ex: list[str] = []
                done: set[str] = set()
                added = True
                while added:
                    added = False
                    for node in cs:
                        if node not in done and self._check(self.conds[node]):
                            ex.append(node)
                            done.add(node)
                            added = changed = True
                            self._ran(node)
                if ex:
                    self.last = ex
                    self.last_set = frozenset(ex)
                    yield ex
                    self._tick_cse()
            if not changed:
                self.last = []
                self.last_set = frozenset()
                self._tick_cse()
            self.pass_run += 1
            self.pass_total += 1
            if self.pass_run > MAX_PASSES:
                raise ConversionError(f"an evaluation did not terminate after {MAX_PASSES} passes",
                                      location=self.where,
                                      hint="check the environment_state_update termination condition "
                                      "(default AllHaveRun: every node must be able to run)")
        self.runs += 1

    def _tick_cse(self) -> None:
        self.cse_pass += 1
        self.cse_run += 1
        self.cse_total += 1


# ---------------------------------------------------------------------------------------------
# One graph of a model
# ---------------------------------------------------------------------------------------------

Key = tuple  # ("param" | "port" | "func", node id, id): a value that lives between node runs


class _Segment:
    """The IR graph being built for a sequence of node runs: what they write, and the state
    variables for what they read from runs before it."""

    def __init__(self, prog: MDFProgram, first: bool, dt: float | None, ran_before: frozenset[str]):
        self.prog = prog
        self.g = Graph(prog.mg.id)
        self.first = first
        self.dt = dt  # None: modeci_mdf's evaluate() without time_increment
        self.ran_before = ran_before
        self.ran = set(ran_before)
        self.values: dict[Key, Value] = {}
        self.states: dict[Key, Any] = {}
        self.consts: dict[tuple, Value] = {}
        self.named: dict[str, Value] = {}
        self.free: dict[tuple[str, str], Value] = {}
        self.executions: list[str] = []

    def read(self, key: Key) -> Value | None:
        """The latest value of ``key``: written here, else left by an earlier run (a state
        variable), else None."""
        v = self.values.get(key)
        if v is not None:
            return v
        sv = self.states.get(key)
        if sv is None:
            if key[1] not in self.ran_before or not self.prog.persists(key):
                return None
            sv = self.g.add_state(f"{key[1]}.{key[2]}", None)
            self.states[key] = sv
        return sv.current

    def write(self, key: Key, v: Value) -> None:
        self.values[key] = v


class MDFProgram:
    """One graph of an MDF model, checked and ready to lower: node order and scheduler
    conditions are parsed once; :meth:`segment` lowers a sequence of node runs."""

    def __init__(self, model: Any, mg: Any):
        from torchmdf.mdf.model import Graph as MGraph

        self.model = model
        self.mg = mg
        src = getattr(model, "source", None)
        self.file = os.path.basename(src) if src else None
        nested = [n for n in mg.nodes if isinstance(n, MGraph)]
        if nested:
            ng = nested[0]
            users = sorted({e.receiver for e in mg.edges if mg.get_endpoint(e.receiver) is ng}
                           | {e.sender for e in mg.edges if mg.get_endpoint(e.sender) is ng})
            what = f" (the body of {', '.join(map(repr, users))})" if users else ""
            raise ConversionError(f"nested graph '{ng.id}'{what} cannot be lowered: torchmdf lowers "
                                  "graphs of nodes only",
                                  location=self.loc(f"{self.base()} > graph '{ng.id}'"),
                                  hint="modeci_mdf's PyTorch importer writes the body of an onnx::Loop "
                                  "as a nested graph; neither modeci_mdf nor torchmdf can evaluate it")
        md = getattr(model, "metadata", None)
        self.written_by_torchmdf = isinstance(md, dict) and isinstance(md.get("torchmdf"), dict)
        self.nodes = list(mg.nodes)
        self.by_id = {n.id: n for n in self.nodes}
        self.ids = [n.id for n in self.nodes]
        self.incoming: dict[str, dict[str, list[Any]]] = {n.id: {p.id: [] for p in n.input_ports}
                                                          for n in self.nodes}
        in_ports = {n.id: {p.id: p for p in n.input_ports} for n in self.nodes}
        out_ports = {n.id: {p.id for p in n.output_ports} for n in self.nodes}
        for e in mg.edges:
            ew = f"{self.base()} > edge '{e.id}'"
            for end, port, kind in ((e.sender, e.sender_port, "output"), (e.receiver, e.receiver_port, "input")):
                ports = (out_ports if kind == "output" else in_ports).get(end) if isinstance(end, str) else None
                if ports is None or not isinstance(port, str) or port not in ports:
                    raise ValidationError(f"edge refers to unknown {kind} port '{end}.{port}'",
                                          location=self.loc(ew))
            self.incoming[e.receiver][e.receiver_port].append(e)
        fed = {(e.receiver, e.receiver_port) for e in mg.edges}
        self.free_ports = [(n, p) for n in self.nodes for p in n.input_ports if (n.id, p.id) not in fed]
        self.senders = {n.id: {e.sender for es in self.incoming[n.id].values() for e in es} for n in self.nodes}
        # graph_scheduler's dependencies: every edge but those into ports with a default_value
        self.dep_sets: dict[str, dict[str, None]] = {i: {} for i in self.ids}  # ordered sets
        for e in mg.edges:
            if in_ports[e.receiver][e.receiver_port].default_value is None:
                self.dep_sets[e.receiver][e.sender] = None
        self.deps: dict[str, list[str]] = {i: list(d) for i, d in self.dep_sets.items()}
        self.queue = self._consideration_queue()
        self._persist: dict[Key, bool] = {}
        self._params: dict[str, dict[str, Any]] = {}
        self._strattrs: dict[str, frozenset[str]] = {}
        self._forder: dict[str, list[Any]] = {}
        self._watch: dict[str, dict[str, None]] = {}  # EveryNCalls: owner -> its dependencies
        self._conds = self._parse_conditions()

    # -- locations ------------------------------------------------------------------------------
    def loc(self, where: str) -> str:
        return f"file '{self.file}' > {where}" if self.file else where

    def base(self) -> str:
        return f"model '{self.model.id}' > graph '{self.mg.id}'"

    def node_where(self, n: Any) -> str:
        return f"{self.base()} > node '{n.id}'"

    # -- per-node facts ---------------------------------------------------------------------------
    def params_by_id(self, n: Any) -> dict[str, Any]:
        d = self._params.get(n.id)
        if d is None:
            d = self._params[n.id] = {p.id: p for p in n.parameters}
        return d

    def string_attrs(self, n: Any) -> frozenset[str]:
        """Parameter ids that hold a literal string ONNX attribute (``auto_pad``), not an
        expression."""
        s = self._strattrs.get(n.id)
        if s is None:
            from torchmdf.mdf.validate import string_attribute_names

            s = self._strattrs[n.id] = string_attribute_names(n)
        return s

    def is_literal_attr(self, n: Any, p: Any) -> bool:
        return isinstance(p.value, str) and p.id in self.string_attrs(n) and \
            p.value not in {q.id for q in n.parameters} | {q.id for q in n.input_ports} | \
            {f.id for f in n.functions}

    def persists(self, key: Key) -> bool:
        """Does a run leave a value for ``key`` that the next run reads?  Output ports and
        functions always; a parameter when modeci_mdf stores its evaluation (it has a value,
        a function, a time derivative or conditions)."""
        got = self._persist.get(key)
        if got is None:
            kind, nid, pid = key
            if kind != "param":
                got = True
            else:
                n = self.by_id[nid]
                p = self.params_by_id(n)[pid]
                got = (p.value is not None or p.function is not None or p.time_derivative is not None
                       or bool(p.conditions)) and not self.is_literal_attr(n, p)
            self._persist[key] = got
        return got

    def function_order(self, n: Any) -> list[Any]:
        """modeci_mdf's order of a node's functions: one runs once the functions it names have."""
        got = self._forder.get(n.id)
        if got is not None:
            return got
        from torchmdf.mdf.expressions import free_names, parse_expression

        fids = {f.id for f in n.functions}
        needs: dict[str, set[str]] = {}
        for f in n.functions:
            req: set[str] = set()
            own = set(f.args or {})
            for x in [f.value, *(f.args or {}).values()]:
                if isinstance(x, str):
                    try:
                        req |= set(free_names(parse_expression(x))) - own
                    except TorchMDFError:
                        pass
            needs[f.id] = req & fids
        placed: list[Any] = []
        done: set[str] = set()
        todo = list(n.functions)
        while todo:
            ready = [f for f in todo if needs[f.id] <= done]
            if not ready:
                raise ValidationError("the functions " + ", ".join(repr(f.id) for f in todo) +
                                      " need each other in a cycle", location=self.loc(self.node_where(n)))
            for f in ready:
                placed.append(f)
                done.add(f.id)
            todo = [f for f in todo if f.id not in done]
        self._forder[n.id] = placed
        return placed

    # -- scheduling -------------------------------------------------------------------------------
    def _consideration_queue(self) -> list[list[str]]:
        """Topological levels of the dependencies, nodes of a level in file order (Kahn's
        algorithm: linear in nodes and edges).  A cycle nothing breaks (a self-edge included:
        graph_scheduler's default condition for it, EveryNCalls of itself, never holds) is an
        error, as in the validator."""
        order = {i: k for k, i in enumerate(self.ids)}
        indeg = {i: len(self.deps[i]) for i in self.ids}
        users: dict[str, list[str]] = {i: [] for i in self.ids}
        for i in self.ids:
            for d in self.deps[i]:
                users[d].append(i)
        loops = [i for i in self.ids if i in self.dep_sets[i]]
        queue: list[list[str]] = []
        level = [i for i in self.ids if indeg[i] == 0]
        placed = 0
        while level and not loops:
            queue.append(level)
            placed += len(level)
            nxt = []
            for i in level:
                for u in users[i]:
                    indeg[u] -= 1
                    if indeg[u] == 0:
                        nxt.append(u)
            nxt.sort(key=order.__getitem__)
            level = nxt
        if loops or placed < len(self.ids):
            comp = loops[:1] or [i for i in self.ids if indeg[i] > 0]
            raise ValidationError("the edges between the nodes " + ", ".join(map(repr, comp[:20])) +
                                  (f" (and {len(comp) - 20} more)" if len(comp) > 20 else "") +
                                  " form a cycle that nothing breaks", location=self.loc(self.base()),
                                  hint="give an input port on the cycle a default_value (its edge then "
                                  "carries the previous evaluation's value, as in modeci_mdf)")
        return queue

    def _parse_conditions(self) -> tuple[dict[str, _Cond], _Cond, _Cond]:
        cs = self.mg.conditions
        base = f"{self.base()} > conditions"
        node_specific = (getattr(cs, "node_specific", None) or {}) if cs is not None else {}
        termination = (getattr(cs, "termination", None) or {}) if cs is not None else {}
        conds: dict[str, _Cond] = {}
        for nid, c in node_specific.items():
            where = self.loc(f"{base} > node_specific {nid!r}")
            if nid not in self.by_id:
                raise ValidationError(f"a condition for the node {nid!r}, which does not exist", location=where)
            conds[nid] = self._cond(c, nid, where)
        for nid in self.ids:
            if nid in conds:
                continue
            deps = self.deps[nid]
            where = self.loc(f"{self.base()} > node '{nid}' (default condition)")
            if not deps:
                conds[nid] = _Cond(lambda s: True, where)
            else:
                parts = [self._every_n_calls(d, 1, nid, where) for d in deps]
                conds[nid] = _Cond(lambda s, parts=parts: all(p.ok(s) for p in parts), where)
        term: dict[int, _Cond] = {}
        for scale, c in termination.items():
            where = self.loc(f"{base} > termination {scale!r}")
            ts = _time_scale(scale)
            if ts not in (ESU, ES):
                raise ConversionError(f"termination conditions are supported for environment_state_update "
                                      f"and environment_sequence, not {scale!r}", location=where)
            term[ts] = self._cond(c, None, where)
        all_have_run = _Cond(lambda s: s.ran_this_run == len(s.nodes), self.loc(base))
        never = _Cond(lambda s: False, self.loc(base))
        return conds, term.get(ESU, all_have_run), term.get(ES, never)

    def scheduler(self) -> Scheduler:
        conds, esu, es = self._conds
        return Scheduler(self.ids, self.queue, conds, esu, es, self.loc(self.base()),
                         {owner: list(deps) for owner, deps in self._watch.items()})

    @property
    def dynamic_condition(self) -> _Cond | None:
        conds, esu, es = self._conds
        return next((c for c in [*conds.values(), esu, es] if c.dynamic), None)

    @property
    def has_conditions(self) -> bool:
        cs = self.mg.conditions
        if cs is None:
            return False
        ns = getattr(cs, "node_specific", None) or {}
        return any(getattr(c, "type", "Always") != "Always" for c in ns.values()) or \
            bool(getattr(cs, "termination", None))

    def _every_n_calls(self, dep: str, n: int, owner: str | None, where: str) -> _Cond:
        if owner is None:
            raise ConversionError("EveryNCalls needs an owner node; it cannot be a termination condition",
                                  location=where)
        self._watch.setdefault(owner, {})[dep] = None
        return _Cond(lambda s: s.useable(dep, owner) >= n, where)

    def _cond(self, c: Any, owner: str | None, where: str) -> _Cond:
        """A model Condition -> a _Cond, with modeci_mdf's argument conventions (a
        ``dependencies`` key for one ``dependency``; a list for ``*args``)."""
        from torchmdf.mdf.model import Condition

        if not isinstance(c, Condition):
            raise ValidationError(f"expected a condition, got {type(c).__name__}", location=where)
        t = c.type
        kw = dict(c.kwargs or {})
        where = f"{where} > {t}"

        def node(name: str, required: bool = True) -> str | None:
            v = kw.get(name, kw.get("dependencies") if name == "dependency" else None)
            if isinstance(v, list) and len(v) == 1:
                v = v[0]
            if v is None and not required:
                return None
            if not isinstance(v, str) or v not in self.by_id:
                raise ValidationError(f"{t} needs '{name}': the id of a node of this graph, got {v!r}",
                                      location=where)
            return v

        def nodes(name: str = "dependencies") -> list[str]:
            v = kw.get(name, [])
            v = v if isinstance(v, list) else [v]
            for x in v:
                if not isinstance(x, str) or x not in self.by_id:
                    raise ValidationError(f"{t}: {x!r} is not the id of a node of this graph", location=where)
            return list(v)

        def integer(name: str, default: Any = ...) -> int:
            v = kw.get(name, default)
            if v is ... or isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
                raise ValidationError(f"{t} needs an integer '{name}', got {v!r}", location=where)
            return int(v)

        def scale(default: int) -> int:
            v = kw.get("time_scale")
            if v is None:
                return default
            ts = _time_scale(v)
            if ts is None:
                raise ValidationError(f"{t}: unknown time_scale {v!r}", location=where,
                                      hint="one of " + ", ".join(_TIME_SCALES))
            return ts

        def subconds() -> list[_Cond]:
            out: list[_Cond] = []
            for v in kw.values():
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, Condition):
                        out.append(self._cond(x, owner, where))
                    else:
                        raise ValidationError(f"{t} combines conditions, got {x!r}", location=where)
            return out

        if t == "Always":
            return _Cond(lambda s: True, where)
        if t == "Never":
            return _Cond(lambda s: False, where)
        if t in ("All", "And", "Any", "Or"):
            parts = subconds()
            if t in ("All", "And"):
                return _Cond(lambda s: all(p.ok(s) for p in parts), where, parts=tuple(parts))
            return _Cond(lambda s: any(p.ok(s) for p in parts), where, parts=tuple(parts))
        if t == "Not":
            inner = self._cond(kw.get("condition"), owner, where)
            return _Cond(lambda s: not inner.ok(s), where, parts=(inner,))
        if t == "NWhen":
            inner = self._cond(kw.get("condition"), owner, where)
            limit = integer("n", 1)
            box = [0]

            def nwhen(s: Scheduler) -> bool:
                if box[0] < limit and inner.ok(s):
                    box[0] += 1
                    return True
                return False
            return _Cond(nwhen, where, history=True, parts=(inner,))
        if t == "EveryNCalls":
            return self._every_n_calls(node("dependency"), integer("n"), owner, where)
        if t in ("BeforeNCalls", "AtNCalls", "AfterCall", "AfterNCalls"):
            dep, n, ts = node("dependency"), integer("n"), scale(ESU)
            cmp = {"BeforeNCalls": int.__lt__, "AtNCalls": int.__eq__, "AfterCall": int.__gt__,
                   "AfterNCalls": int.__ge__}[t]
            return _Cond(lambda s: cmp(s.counts[ts][dep], n), where, history=ts > ESU)
        if t == "AfterNCallsCombined":
            deps, n, ts = nodes(), integer("n"), scale(ESU)
            return _Cond(lambda s: sum(s.counts[ts][d] for d in deps) >= n, where, history=ts > ESU,
                         cost=len(deps))
        if t == "JustRan":
            dep = node("dependency")
            return _Cond(lambda s: dep in s.last_set, where, justran=True)
        if t == "AllHaveRun":
            deps, ts = nodes(), scale(ESU)
            if not deps and ts == ESU:
                return _Cond(lambda s: s.ran_this_run == len(s.nodes), where)
            return _Cond(lambda s: all(s.counts[ts][d] >= 1 for d in (deps or s.nodes)), where, history=ts > ESU,
                         cost=len(deps) or len(self.ids))
        clock = {"BeforePass": (PASS, ESU, "<"), "AtPass": (PASS, ESU, "=="), "AfterPass": (PASS, ESU, ">"),
                 "AfterNPasses": (PASS, ESU, ">="), "EveryNPasses": (PASS, ESU, "%"),
                 "BeforeConsiderationSetExecution": (CSE, ESU, "<"),
                 "AtConsiderationSetExecution": (CSE, ESU, "=="),
                 "AfterConsiderationSetExecution": (CSE, ESU, ">"),
                 "AfterNConsiderationSetExecutions": (CSE, ESU, ">="),
                 "BeforeEnvironmentStateUpdate": (ESU, ES, "<"), "AtEnvironmentStateUpdate": (ESU, ES, "=="),
                 "AfterEnvironmentStateUpdate": (ESU, ES, ">"),
                 "AfterNEnvironmentStateUpdates": (ESU, ES, ">=")}
        if t in clock:
            query, default, how = clock[t]
            n, ts = integer("n"), scale(default)
            if how == "%" and n == 0:
                raise ValidationError(f"{t} needs n > 0", location=where)
            return self._clock(query, ts, how, n, where)
        if t == "AtEnvironmentStateUpdateStart":
            return self._clock(PASS, ESU, "==", 0, where)
        if t == "AtEnvironmentStateUpdateNStart":
            parts = (self._clock(PASS, ESU, "==", 0, where), self._clock(ESU, scale(ES), "==", integer("n"), where))
            return _Cond(lambda s: all(p.ok(s) for p in parts), where, parts=parts)
        if t in ("AtEnvironmentSequence", "AfterEnvironmentSequence", "AfterNEnvironmentSequences",
                 "AtEnvironmentSequenceStart", "AtEnvironmentSequenceNStart"):
            # modeci_mdf never ends an environment sequence: its index stays 0
            if t == "AtEnvironmentSequenceStart":
                return self._clock(ESU, ES, "==", 0, where)
            n = integer("n")
            if t == "AtEnvironmentSequenceNStart":
                at0 = self._clock(ESU, ES, "==", 0, where)
                return _Cond(lambda s: at0.ok(s) and n == 0, where, parts=(at0,))
            ok = {"AtEnvironmentSequence": 0 == n, "AfterEnvironmentSequence": 0 > n,
                  "AfterNEnvironmentSequences": 0 >= n}[t]
            return _Cond(lambda s: ok, where)
        if t == "Threshold":
            return self._threshold(kw, node("dependency"), where)
        if t in ("TimeInterval", "TimeTermination"):
            raise ConversionError(f"{t} is an absolute-time condition; torchmdf schedules in passes and "
                                  "consideration sets only", location=where)
        raise ConversionError(f"scheduling condition {t!r} is not supported", location=where,
                              hint="supported: Always, Never, All, Any, Not, NWhen, EveryNCalls, "
                              "AfterNCalls and the other call counts, JustRan, AllHaveRun, the Pass, "
                              "ConsiderationSetExecution and EnvironmentStateUpdate families, Threshold")

    def _clock(self, query: int, base: int, how: str, n: int, where: str) -> _Cond:
        if base <= query:
            raise ConversionError("the time_scale must be coarser than what the condition counts",
                                  location=where)

        def ok(s: Scheduler) -> bool:
            x = s.relative(query, base, where)
            return {"<": x < n, "==": x == n, ">": x > n, ">=": x >= n}[how] if how != "%" else x % n == 0
        return _Cond(ok, where, history=base > ESU or query == ESU)

    def _threshold(self, kw: dict[str, Any], dep: str, where: str) -> _Cond:
        name = kw.get("parameter")
        n = self.by_id[dep]
        if not isinstance(name, str) or name not in {*(p.id for p in n.input_ports), *(p.id for p in n.parameters),
                                                     *(f.id for f in n.functions), *(p.id for p in n.output_ports)}:
            raise ValidationError(f"Threshold: node {dep!r} has no parameter, port or function {name!r}",
                                  location=where)
        comparator = kw.get("comparator")
        if comparator not in ("<", "<=", ">", ">=", "==", "!="):
            raise ValidationError(f"Threshold: comparator must be one of <, <=, >, >=, ==, !=, got {comparator!r}",
                                  location=where)
        threshold = kw.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValidationError(f"Threshold needs a number 'threshold', got {threshold!r}", location=where)
        indices = kw.get("indices")
        ts = _time_scale(indices) if isinstance(indices, str) else None
        indices = [ts] if ts is not None else indices
        if indices is not None and not isinstance(indices, list):
            indices = [indices]
        atol, rtol = float(kw.get("atol", 0) or 0), float(kw.get("rtol", 0) or 0)

        def ok(s: Scheduler) -> bool:
            if s.value_of is None:
                raise ConversionError("a Threshold condition depends on values computed while the graph "
                                      "runs, so the schedule is not known before it runs", location=where,
                                      hint="torchmdf.simulate() runs such graphs")
            v = s.value_of(dep, name)
            for i in indices or ():
                v = v[i]
            v = float(v)
            if comparator == "==":
                return bool(np.isclose(v, threshold, atol=atol, rtol=rtol))
            if comparator == "!=":
                return not bool(np.isclose(v, threshold, atol=atol, rtol=rtol))
            return bool(_COMPARATORS[comparator](v, threshold))
        return _Cond(ok, where, dynamic=True)

    def threshold_default(self, nid: str, name: str) -> Any:
        """What modeci_mdf's Threshold getter reads before the node ever ran."""
        n = self.by_id[nid]
        for p in n.input_ports:
            if p.id == name:
                return _port_default(p)
        for p in n.parameters:
            if p.id == name:
                dv = p.default_initial_value
                if dv is None or isinstance(dv, str):
                    raise ConversionError(f"Threshold reads parameter {name!r} before node {nid!r} ran, and it "
                                          "has no numeric default_initial_value",
                                          location=self.loc(f"{self.node_where(n)} > parameter '{name}'"))
                return as_tensor(dv)
        for f in n.functions:
            if f.id == name:
                return torch.tensor(0)
        p = next(p for p in n.output_ports if p.id == name)
        return torch.zeros(tuple(p.shape) if p.shape else ())

    def threshold_keys(self) -> list[Key]:
        """The values Threshold conditions read (simulate keeps them up to date)."""
        out: list[Key] = []

        def walk(c: Any) -> None:
            from torchmdf.mdf.model import Condition

            if not isinstance(c, Condition):
                return
            if c.type == "Threshold":
                dep = c.kwargs.get("dependency", c.kwargs.get("dependencies"))
                dep = dep[0] if isinstance(dep, list) and dep else dep
                name = c.kwargs.get("parameter")
                n = self.by_id.get(dep) if isinstance(dep, str) else None
                if n is not None:
                    if any(p.id == name for p in n.parameters):
                        out.append(("param", dep, name))
                    elif any(f.id == name for f in n.functions):
                        out.append(("func", dep, name))
                    elif any(p.id == name for p in n.output_ports):
                        out.append(("port", dep, name))
            for v in c.kwargs.values():
                for x in (v if isinstance(v, list) else [v]):
                    walk(x)
        cs = self.mg.conditions
        if cs is not None:
            for d in (cs.node_specific or {}, cs.termination or {}):
                for c in d.values():
                    walk(c)
        return out

    def threshold_getter(self, state: dict[Key, Any]) -> Callable[[str, str], Any]:
        """``value_of(node, name)`` over simulate's state, with modeci_mdf's defaults."""
        kinds = {}
        for nid, n in self.by_id.items():
            for p in n.input_ports:
                kinds.setdefault((nid, p.id), None)
            for p in n.parameters:
                kinds.setdefault((nid, p.id), "param")
            for f in n.functions:
                kinds.setdefault((nid, f.id), "func")
            for p in n.output_ports:
                kinds.setdefault((nid, p.id), "port")

        def value_of(nid: str, name: str) -> Any:
            kind = kinds.get((nid, name))
            v = state.get((kind, nid, name)) if kind is not None else None
            return self.threshold_default(nid, name) if v is None else v
        return value_of

    # -- lowering ---------------------------------------------------------------------------------
    def segment(self, executions: list[str], *, first: bool, dt: float | None,
                ran_before: frozenset[str] = frozenset()) -> _Segment:
        """Lower the node runs ``executions`` (node ids, in order) into one graph.  ``dt`` is
        the time increment (None: modeci_mdf's evaluate() without one); ``ran_before`` are the
        nodes that ran in earlier segments."""
        seg = _Segment(self, first, dt, frozenset(ran_before))
        names = [p.id for _, p in self.free_ports]
        for n, p in self.free_ports:
            name = p.id if names.count(p.id) == 1 else f"{n.id}_{p.id}"
            default = _port_default(p)
            shape = _symbolic_port_shape(n.id, p)
            v = seg.g.add_input(name, TensorType(default.dtype, tuple(default.shape) if shape is None else shape))
            v.meta[DEFAULT] = default
            v.meta[MDF_PORT] = f"{n.id}.{p.id}"
            if _is_pyscalar(p.default_value):
                v.meta[PYSCALAR] = True
            seg.free[(n.id, p.id)] = v
        for nid in executions:
            node = self.by_id[nid]
            try:
                self._run_node(seg, node)
            except TorchMDFError as e:
                if e.location:
                    raise
                raise type(e)(e.raw_message, location=self.loc(self.node_where(node)), hint=e.hint) from e
            except RecursionError as e:
                raise ConversionError("the node is nested too deeply to lower",
                                      location=self.loc(self.node_where(node))) from e
            except Exception as e:  # noqa: BLE001 - never a raw error from a file: say where
                raise ConversionError(f"cannot lower the node: {type(e).__name__}: {str(e)[:300]}",
                                      location=self.loc(self.node_where(node))) from e
            seg.ran.add(nid)
            seg.executions.append(nid)
        return seg

    def _input(self, seg: _Segment, L: _Lower, n: Any, p: Any, ran_before: bool) -> Value:
        free = seg.free.get((n.id, p.id))
        if free is not None:
            return free
        pending: Value | None = None
        reduce = p.reduce or "overwrite"
        for e in self.incoming[n.id][p.id]:
            if e.sender not in seg.ran or (e.sender == n.id and not ran_before):
                continue
            src = seg.read(("port", e.sender, e.sender_port))
            if src is None:
                continue
            ew = f"{self.base()} > edge '{e.id}'"
            w = e.parameters.get("weight") if isinstance(e.parameters, dict) else None
            if w is not None and not (type(w) in (int, float) and w == 1):
                wv = L.value(w, ew + " > parameter 'weight'", _Env())
                out = L.op("onnx::Mul", [wv, L._one(src, ew)], where=ew)
                if wv.meta.get(PYSCALAR) and src.meta.get(PYSCALAR):
                    out.meta[PYSCALAR] = True
                src = out
            if pending is None or reduce == "overwrite":
                pending = src
            elif reduce == "add":
                pending = L.op("onnx::Add", [pending, src])
            elif reduce == "multiply":
                pending = L.op("onnx::Mul", [pending, src])
            else:
                raise ValidationError(f"reduce must be overwrite, add or multiply, not {reduce!r}",
                                      location=self.loc(f"{self.node_where(n)} > input port '{p.id}'"))
        if pending is None:
            pending = seg.g.add_constant(_port_default(p), p.id)
            if _is_pyscalar(p.default_value):
                pending.meta[PYSCALAR] = True
        return pending

    def _param_value(self, seg: _Segment, L: _Lower, p: Any, env: _Env, where: str) -> Value:
        """A parameter's ``value``; a weight torchmdf wrote keeps its PyTorch name and dtype."""
        from torchmdf.mdf.torchmdf_metadata import ParameterMetadata

        tm = ParameterMetadata.read(p.metadata, self.loc(where)) if p.value is not None \
            and not isinstance(p.value, str) else ParameterMetadata()
        if tm.name or tm.dtype:
            t = _with_dtype(as_tensor(p.value), tm.dtype, self.loc(where))
            name = tm.name
            if not name:
                return seg.g.add_constant(t, p.id)
            v = seg.named.get(name)
            if v is None:
                v = seg.named[name] = seg.g.add_parameter(name, t, role=tm.role or ValueRole.PARAMETER)
            return v
        return L.value(p.value, where, env, name=p.id)

    def _run_node(self, seg: _Segment, n: Any) -> None:
        """One run of node ``n`` (see the module docstring for the phases)."""
        where = self.node_where(n)
        L = _Lower(seg, n, where)
        ran_before = n.id in seg.ran
        inputs = _Env()
        for p in n.input_ports:
            inputs.set(p.id, self._input(seg, L, n, p, ran_before))
        params = list(n.parameters)
        current: dict[int, Any] = {}

        def pwhere(p: Any) -> str:
            return f"{where} > parameter '{p.id}'"

        pindex = {p.id: j for j, p in enumerate(params)}

        def phase1_env(i: int) -> _Env:
            return _Env(inputs, (pindex, i, cur))  # the parameters before i, at their current values

        def cur(i: int) -> Any:
            """The parameter's current value (phase 2 of modeci_mdf's node evaluation)."""
            if i in current:
                return current[i]
            p = params[i]
            key = ("param", n.id, p.id)
            current[i] = _NO_VALUE  # a value that needs itself reads nothing
            try:
                v = seg.read(key) if ran_before and self.persists(key) else None
                if v is not None:
                    pass
                elif p.value is None and p.default_initial_value is None:
                    v = _NO_VALUE
                elif p.is_stateful():
                    v = L.value(p.default_initial_value, pwhere(p) + " > default_initial_value",
                                phase1_env(i)) if p.default_initial_value is not None else L.const(0.0)
                else:
                    e = phase1_env(i)
                    e.set(p.id, L.const(0.0))
                    v = self._param_value(seg, L, p, e, pwhere(p))
            except BaseException:
                del current[i]  # read again, it fails again (not a silent None)
                raise
            current[i] = v
            return v

        _warm(len(params), cur)

        def literal_attr(p: Any) -> Callable[[], Any]:
            def fail() -> Any:
                raise ValidationError(f"{p.id!r} holds the string attribute {p.value!r}, not a value",
                                      location=self.loc(pwhere(p)))
            return fail

        # functions: the node's inputs, current parameter values, earlier functions
        fenv = inputs.child()
        for i, p in enumerate(params):
            fenv.lazy(p.id, literal_attr(p) if self.is_literal_attr(n, p) else (lambda i=i: cur(i)))
        funcs: dict[str, Any] = {}
        for f in self.function_order(n):
            fw = f"{where} > function '{f.id}'"
            if f.function is not None:
                v = L.function(f.function, f.args, fw, fenv)
            else:  # a value expression over its own args
                scope = _ordered(fenv, [(a, lambda prev, a=a, av=av: L.value(av, f"{fw} > argument '{a}'", prev))
                                        for a, av in (f.args or {}).items()])
                for a in f.args or {}:
                    scope[a]  # noqa: B018 - lowered eagerly, in order, as modeci_mdf evaluates them
                if f.value is None:
                    raise ValidationError("the function has neither a function name nor a value",
                                          location=self.loc(fw))
                v = L.value(f.value, fw, scope)
            funcs[f.id] = v
            fenv.set(f.id, v)
            if isinstance(v, Value):
                seg.write(("func", n.id, f.id), v)
        # parameters in declaration order: new values of earlier ones, current of the rest
        env = inputs.child()
        for i, p in enumerate(params):
            env.lazy(p.id, literal_attr(p) if self.is_literal_attr(n, p) else (lambda i=i: cur(i)))
        for fid, v in funcs.items():
            env.set(fid, v)
        for i, p in enumerate(params):
            pw = pwhere(p)
            if self.is_literal_attr(n, p):
                continue
            key = ("param", n.id, p.id)

            def stored(key: Key = key) -> Value | None:  # read only where used: no needless state
                return seg.read(key) if ran_before and self.persists(key) else None
            if p.value is not None:
                new = self._param_value(seg, L, p, env, pw)
            elif p.function is not None:
                new = L.function(p.function, p.args, pw, env)
            elif p.time_derivative is not None:
                if seg.dt is None:
                    dv = p.default_initial_value
                    new = L.value(dv, pw + " > default_initial_value", env) if dv is not None else L.const(0.0)
                else:
                    old = stored()
                    old = old if old is not None else cur(i)
                    if old is _NO_VALUE:
                        old = L.const(0.0)
                    td = L._one(L.value(p.time_derivative, pw + " > time_derivative", env), pw)
                    step = L.op("onnx::Mul", [td, L.const(float(seg.dt))], where=pw + " > time_derivative")
                    new = L.op("onnx::Add", [L._one(old, pw), step], where=pw + " > time_derivative")
            else:  # conditions only (or only an initial value): the previous value
                new = stored()
                if new is None and not p.conditions:
                    new = cur(i)
            for c in p.conditions or []:
                cw = f"{pw} > condition '{c.id}'"
                test = L._one(L.value(c.test, cw + " > test", env), cw)
                val = L._one(L.value(c.value, cw + " > value", env), cw)
                base = new if isinstance(new, Value) else L.const(0.0)
                new = L.op("onnx::Where", [test, val, base], where=cw)
            env.set(p.id, new)
            if isinstance(new, Value) and self.persists(key):
                seg.write(key, new)
        for op_ in n.output_ports:
            ow = f"{where} > output port '{op_.id}'"
            if op_.value is None:
                raise ValidationError("output port has no value", location=self.loc(ow))
            v = L.value(op_.value, ow, env)
            if isinstance(v, _Outputs) and v.whole_ok:
                v = v[0]
            if isinstance(v, list):
                raise ValidationError("an output port is one value; index the function's results (name[0])",
                                      location=self.loc(ow))
            seg.write(("port", n.id, op_.id), v)

    def finish(self, seg: _Segment) -> Graph:
        """The segment as a user-facing graph: outputs, all ports, state."""
        g = seg.g
        all_outputs: dict[str, Value] = {}
        for n in self.nodes:
            if n.id in seg.ran:
                for op_ in n.output_ports:
                    v = seg.read(("port", n.id, op_.id))
                    if v is not None:
                        all_outputs[f"{n.id}.{op_.id}"] = v
        for key, sv in seg.states.items():
            sv.next = seg.values.get(key, sv.current)
        g.meta["all_outputs"] = all_outputs
        g.meta["state_after"] = dict(seg.values)
        g.meta["state_keys"] = {sv.name: key for key, sv in seg.states.items()}
        g.meta["executions"] = list(seg.executions)
        sent = {(e.sender, e.sender_port) for e in self.mg.edges}
        names = []
        for n in self.nodes:
            for op_ in n.output_ports:
                k = f"{n.id}.{op_.id}"
                if (n.id, op_.id) not in sent and k in all_outputs:
                    names.append(k)
        g.outputs = [all_outputs[k] for k in names]
        g.output_names = names
        if self.has_conditions:
            g.conditions = self.mg.conditions
        g.metadata["mdf_source"] = True
        g.metadata["mdf_model"] = self.model.id
        g.metadata["mdf_graph"] = self.mg.id
        from torchmdf.mdf.torchmdf_metadata import graph_metadata

        tm = graph_metadata(self.model.metadata, self.mg.metadata)  # only the keys with a schema, checked
        g.signature = tm.signature()
        keep = tm.output_ports  # written by torchmdf: the outputs, in order
        if keep is not None and all(k in all_outputs for k in keep):
            g.outputs = [all_outputs[k] for k in keep]
            onames = tm.output_names
            g.output_names = list(onames) if onames is not None and len(onames) == len(keep) else list(keep)
        g.verify()
        return g

    # -- schedules ----------------------------------------------------------------------------------
    def schedules(self, count: int) -> Iterator[list[list[str]]]:
        """The consideration set executions of ``count`` evaluations (no Threshold).  When no
        condition reads counters that survive a run, a run's schedule depends at most on the
        last consideration set before it (JustRan), so schedules are computed once per case."""
        sch = self.scheduler()
        memo: dict[Any, tuple[list[list[str]], list[str] | None]] = {}
        for _ in range(count):
            sig = (tuple(sch.last) if sch.last is not None else None) if sch.justran else 0
            if not sch.history and sig in memo:
                sched, last = memo[sig]
                sch.last = last
                sch.last_set = frozenset(last or ())
                yield sched
                continue
            sched = list(sch.run())
            memo[sig] = (sched, sch.last)
            yield sched


def _flatten(schedule: list[list[str]]) -> list[str]:
    return list(itertools.chain.from_iterable(schedule))


def program(model: Any, graph: str | None = None) -> MDFProgram:
    """Load (if a path) and pick the graph: ``graph`` by id, else the first."""
    from torchmdf.mdf import Model, load

    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    if not isinstance(model, Model):
        raise ConversionError(f"expected a torchmdf.mdf.Model or a path, got {type(model).__name__}")
    where = model.location + f" > model '{model.id}'" if model.location else f"model '{model.id}'"
    if not model.graphs:
        raise ValidationError("model has no graphs", location=where)
    mg = model.graphs[0] if graph is None else model.get_graph(graph)
    if mg is None:
        raise ValidationError(f"no graph {graph!r} (graphs: {', '.join(g.id for g in model.graphs)})",
                              location=where)
    return MDFProgram(model, mg)


def lower_mdf(model: Any, *, graph: str | None = None, first: bool = True, dt: float | None = None) -> Graph:
    """Lower one evaluation of an MDF graph (object or file path) into the IR.

    ``graph`` picks a graph by id; without it the first graph is lowered (a model may hold
    several; ``g.metadata["mdf_graph"]`` says which).  ``first=True``: modeci_mdf's first
    ``evaluate()``; ``first=False``: its second, ``evaluate(time_increment=dt)`` (``dt=None``
    re-initializes time derivatives, as evaluate() without a time increment does), reading
    what the first left as state variables.  A graph whose schedule depends on computed values
    (a Threshold condition) has no single graph per evaluation: ConversionError."""
    prog = program(model, graph)
    dyn = prog.dynamic_condition
    if dyn is not None:
        raise ConversionError("the schedule depends on values computed while the graph runs (Threshold), "
                              "so one evaluation is not one fixed graph", location=dyn.where,
                              hint="torchmdf.simulate() runs it, scheduling between node runs")
    scheds = prog.schedules(1 if first else 2)
    s0 = _flatten(next(scheds))
    if first:
        seg = prog.segment(s0, first=True, dt=None)
    else:
        seg = prog.segment(_flatten(next(scheds)), first=False, dt=dt, ran_before=frozenset(s0))
    return prog.finish(seg)


__all__ = ["lower_mdf", "as_tensor", "program", "MDFProgram", "Scheduler", "MAX_PASSES"]
