"""MDF graphs whose values are not arrays: ACT-R's chunks and productions, evaluated eagerly on
Python values.

``actr_to_mdf`` (modeci_mdf's ACT-R interface) writes models whose parameters hold dicts of text
and lists of them, whose functions are the ACT-R helpers (:mod:`torchmdf.mdf.actr`) and whose
expressions compare chunks (``first_goal if goal_input == {} else change_goal``).  Such values
have no tensor form, so the tensor lowering refuses these graphs with a located error that
points here, and :class:`SymbolicGraph` runs them instead, one evaluation at a time, with the
MDF frontend's semantics (:mod:`torchmdf.frontends.mdf`: the same scheduler and conditions, the
same edges, the same phases of a node's run) on Python values.  Scripts written for the
reference reach it through ``torchmdf.execution_engine.EvaluableGraph``, which uses it for these
graphs.

Nothing is evaluated with ``eval``: expressions are the whitelisted trees of
:mod:`torchmdf.mdf.expressions`, evaluated here over names, literals, ``{}``, comparisons, the
conditional expression, ``and``/``or``/``not``, list literals, indexing, and arithmetic on
numbers.  A call of any function but the ACT-R helpers (numeric functions belong to the tensor
path), a time derivative, a nested graph and an edge weight on a value that is not a number are
located :class:`~torchmdf.errors.ConversionError`\\ s.

Values are copied where they enter (initializer, literals) and where they leave
(:meth:`SymbolicGraph.value`), so a caller's dict never aliases the graph's state.
"""

from __future__ import annotations

import copy
import operator
from typing import Any

from torchmdf.errors import ConversionError, ExpressionError, TorchMDFError, ValidationError

from . import expressions as E
from .actr import ACTR_HELPERS, evaluation_budget
from .expression_lowering import Env
from .functions import STANDARD_FUNCTIONS

__all__ = ["SymbolicGraph", "is_symbolic"]

Key = tuple[str, str, str]  # ("port" | "param" | "input" | "func", node id, id)
_NO_VALUE = object()


def is_symbolic(graph: Any) -> bool:
    """Does the graph compute on chunks rather than arrays, that is, call an ACT-R helper (kind
    ``"actr"`` in the function table)?  (Dict-valued parameters alone do not make a graph
    symbolic: control-flow bodies are dicts too.)"""
    for n in graph.nodes:
        for p in [*(getattr(n, "parameters", None) or []), *(getattr(n, "functions", None) or [])]:
            f = STANDARD_FUNCTIONS.get(p.function) if isinstance(p.function, str) else None
            if f is not None and f.kind == "actr":
                return True
    return False


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _number(v: Any) -> bool:
    return type(v) in (int, float, bool)


def _truth(v: Any, where: str) -> bool:
    if isinstance(v, (bool, int, float, str, dict, list, tuple)) or v is None:
        return bool(v)
    raise ConversionError(f"a test on a {type(v).__name__} value has no single truth value", location=where)


def _equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
        return False  # Python's == of a dict and a number, or text and a list
    return a == b


class SymbolicGraph:
    """One MDF graph evaluated on Python values (see the module docstring).

    :meth:`evaluate` is one evaluation (one run of the graph's scheduler), with ``inputs``
    setting the input ports of those ids (modeci_mdf's ``initializer``); state (parameters,
    output ports) carries over between evaluations.  :meth:`value` reads the latest value of a
    port, parameter or input port."""

    def __init__(self, model: Any, graph: str | None = None):
        from torchmdf.frontends.mdf import MDFProgram
        from torchmdf.mdf import Graph, Model

        if isinstance(model, Graph):
            model = Model(id=f"{model.id}_model", graphs=[model])
        if not isinstance(model, Model):
            raise ConversionError(f"SymbolicGraph takes a torchmdf.mdf.Model or Graph, got {type(model).__name__}")
        where = f"model '{model.id}'"
        if not model.graphs:
            raise ValidationError("model has no graphs", location=where)
        mg = model.graphs[0] if graph is None else model.get_graph(graph)
        if mg is None:
            raise ValidationError(f"no graph {graph!r}", location=where)
        self.model, self.graph = model, mg
        self.prog = MDFProgram(model, mg)
        if self.prog.inner:
            raise ConversionError("nested graphs are not evaluated on Python values",
                                  location=self.prog.loc(self.prog.base()))
        self._scheduler = self.prog.scheduler()
        self.state: dict[Key, Any] = {}
        self.ran: set[str] = set()
        self.inputs: dict[str, Any] = {}
        #: the consideration set executions of every evaluation so far (node ids)
        self.executions: list[list[str]] = []
        self.evaluations = 0

    # -- public ------------------------------------------------------------------------------------

    def evaluate(self, inputs: dict[str, Any] | None = None) -> None:
        """One evaluation; ``inputs`` (port id -> value) stay in force for later ones."""
        if inputs:
            self.inputs.update({k: copy.deepcopy(v) for k, v in inputs.items()})
        with evaluation_budget():
            for cs in self._scheduler.run(self._value_of):
                self.executions.append(list(cs))
                for nid in cs:
                    self._run_node(self.prog.by_id[nid])
                    self.ran.add(nid)
        self.evaluations += 1

    def value(self, node: str, kind: str, id: str) -> Any:
        """The latest value of ``kind`` ("port", "param", "input") ``id`` of ``node``; None before
        it has one (as modeci_mdf's ``curr_value``)."""
        return copy.deepcopy(self.state.get((kind, node, id)))

    # -- one node run ------------------------------------------------------------------------------

    def _value_of(self, node: str, name: str) -> Any:
        for kind in ("param", "port", "input"):
            if (kind, node, name) in self.state:
                return self.state[(kind, node, name)]
        return None

    def _loc(self, where: str) -> str:
        return self.prog.loc(where)

    def _input(self, n: Any, p: Any, ran_before: bool, where: str) -> Any:
        pending: Any = _NO_VALUE
        reduce = p.reduce or "overwrite"
        for e in self.prog.incoming[n.id][p.id]:
            if e.sender not in self.ran or (e.sender == n.id and not ran_before):
                continue
            key = ("port", e.sender, e.sender_port)
            if key not in self.state:
                continue
            v = self.state[key]
            ew = f"{self.prog.base()} > edge '{e.id}'"
            w = e.parameters.get("weight") if isinstance(e.parameters, dict) else None
            if w is not None and not (_number(w) and w == 1):
                if not (_number(w) and _number(v)):
                    raise ConversionError("an edge weight multiplies numbers, and this edge carries "
                                          f"a {type(v).__name__}", location=self._loc(ew))
                v = w * v
            if pending is _NO_VALUE or reduce == "overwrite":
                pending = v
            elif reduce in ("add", "multiply") and _number(pending) and _number(v):
                pending = pending + v if reduce == "add" else pending * v
            else:
                raise ConversionError(f"reduce {reduce!r} of {type(pending).__name__} and {type(v).__name__} "
                                      "values", location=self._loc(where))
        if pending is not _NO_VALUE:
            return pending
        if p.id in self.inputs:
            return self.inputs[p.id]
        if p.default_value is not None:
            return copy.deepcopy(p.default_value)
        return 0  # modeci_mdf's value of a port nothing set

    def _run_node(self, n: Any) -> None:
        prog = self.prog
        where = prog.node_where(n)
        ran_before = n.id in self.ran
        inputs = Env()
        for p in n.input_ports:
            v = self._input(n, p, ran_before, f"{where} > input port '{p.id}'")
            inputs.set(p.id, v)
            self.state[("input", n.id, p.id)] = v
        params = list(n.parameters)
        current: dict[int, Any] = {}

        def pwhere(p: Any) -> str:
            return f"{where} > parameter '{p.id}'"

        pindex = {p.id: j for j, p in enumerate(params)}

        def phase1(i: int) -> Env:
            return Env(inputs, (pindex, i, cur))  # the parameters before i, at their current values

        def cur(i: int) -> Any:
            """The parameter's current value (phase 2 of a node's run)."""
            if i in current:
                if current[i] is _NO_VALUE:
                    raise ConversionError(f"parameter {params[i].id!r} has no value yet", location=self._loc(pwhere(params[i])))
                return current[i]
            p = params[i]
            key = ("param", n.id, p.id)
            current[i] = _NO_VALUE
            if ran_before and prog.persists(key) and key in self.state:
                v = self.state[key]
            elif p.value is None and p.default_initial_value is None:
                v = _NO_VALUE
            elif p.is_stateful():
                v = self._value(p.default_initial_value, pwhere(p) + " > default_initial_value", phase1(i)) \
                    if p.default_initial_value is not None else 0.0
            else:
                s = phase1(i)
                s.set(p.id, 0.0)
                v = self._value(p.value, pwhere(p), s)
            current[i] = v
            if v is _NO_VALUE:
                raise ConversionError(f"parameter {p.id!r} has no value yet", location=self._loc(pwhere(p)))
            return v

        fenv = Env(inputs)
        for i, p in enumerate(params):
            fenv.lazy(p.id, lambda i=i: cur(i))
        funcs: dict[str, Any] = {}
        for f in prog.function_order(n):
            fw = f"{where} > function '{f.id}'"
            if f.function is not None:
                v = self._call(f.function, f.args, fw, fenv)
            elif f.value is not None:
                scope = Env(fenv)
                for a, av in (f.args or {}).items():
                    scope.set(a, self._value(av, f"{fw} > argument '{a}'", scope))
                v = self._value(f.value, fw, scope)
            else:
                raise ValidationError("the function has neither a function name nor a value", location=self._loc(fw))
            funcs[f.id] = v
            fenv.set(f.id, v)
            self.state[("func", n.id, f.id)] = v
        env = Env(inputs)
        for i, p in enumerate(params):
            env.lazy(p.id, lambda i=i: cur(i))
        for fid, v in funcs.items():
            env.set(fid, v)
        for i, p in enumerate(params):
            pw = pwhere(p)
            key = ("param", n.id, p.id)
            if p.value is not None:
                new = self._value(p.value, pw, env)
            elif p.function is not None:
                new = self._call(p.function, p.args, pw, env)
            elif p.time_derivative is not None:
                raise ConversionError("a time derivative on Python values is not evaluated",
                                      location=self._loc(pw + " > time_derivative"))
            elif ran_before and prog.persists(key) and key in self.state:
                new = self.state[key]
            elif not p.conditions:
                new = cur(i)
            else:
                new = 0.0
            for c in p.conditions or []:
                cw = f"{pw} > condition '{c.id}'"
                if _truth(self._value(c.test, cw + " > test", env), self._loc(cw + " > test")):
                    new = self._value(c.value, cw + " > value", env)
            env.set(p.id, new)
            if prog.persists(key):
                self.state[key] = new
        for op_ in n.output_ports:
            ow = f"{where} > output port '{op_.id}'"
            if op_.value is None:
                raise ValidationError("output port has no value", location=self._loc(ow))
            self.state[("port", n.id, op_.id)] = self._value(op_.value, ow, env)

    # -- values --------------------------------------------------------------------------------------

    def _value(self, v: Any, where: str, scope: Env) -> Any:
        if isinstance(v, str):
            expr = E.parse_expression(v, location=self._loc(where))
            return self._eval(expr, scope, where)
        if v is None:
            raise ValidationError("no value", location=self._loc(where))
        return copy.deepcopy(v)

    def _call(self, name: Any, args: Any, where: str, scope: Env) -> Any:
        helper = ACTR_HELPERS.get(name) if isinstance(name, str) else None
        if helper is None:
            raise ConversionError(f"the function {name!r} is not evaluated on Python values (only the ACT-R "
                                  "helpers are)", location=self._loc(where),
                                  hint="a graph that mixes ACT-R chunks with numeric functions is not supported")
        takes = STANDARD_FUNCTIONS[name].arguments
        args = args or {}
        missing = [a for a in takes if a not in args]
        extra = [a for a in args if a not in takes]
        if missing or extra:
            raise ValidationError(f"{name} takes {', '.join(takes)}" + (f"; missing {', '.join(missing)}" if missing else "")
                                  + (f"; not {', '.join(map(str, extra))}" if extra else ""), location=self._loc(where))
        vals = {a: self._value(args[a], f"{where} > argument '{a}'", scope) for a in takes}
        try:
            return helper(**vals)
        except TorchMDFError as e:
            raise type(e)(e.raw_message, location=self._loc(where), hint=e.hint) from None

    def _eval(self, e: Any, scope: Env, where: str) -> Any:
        t = type(e)
        if t is E.Num:
            return e.value
        if t is E.Name:
            try:
                return scope[e.id]
            except KeyError:
                raise ExpressionError(f"the name {e.id!r} is not a port, parameter or function of this node",
                                      location=self._loc(where)) from None
        if t is E.EmptyDict:
            return {}
        if t is E.List:
            return [self._eval(x, scope, where) for x in e.elts]
        if t is E.IfExp:
            test = _truth(self._eval(e.test, scope, where), self._loc(where))
            return self._eval(e.body if test else e.orelse, scope, where)
        if t is E.BoolOp:
            v: Any = None
            for x in e.values:
                v = self._eval(x, scope, where)
                if _truth(v, self._loc(where)) == (e.op == "or"):
                    return v
            return v
        if t is E.UnaryOp:
            x = self._eval(e.operand, scope, where)
            if e.op == "not":
                return not _truth(x, self._loc(where))
            if not _number(x):
                raise ConversionError(f"unary {e.op} of a {type(x).__name__}", location=self._loc(where))
            return -x if e.op == "-" else +x
        if t is E.Compare:
            a, b = self._eval(e.left, scope, where), self._eval(e.right, scope, where)
            if e.op == "==":
                return _equal(a, b)
            if e.op == "!=":
                return not _equal(a, b)
            if not (_number(a) and _number(b)):
                raise ConversionError(f"{e.op} compares numbers, not {type(a).__name__} and {type(b).__name__}",
                                      location=self._loc(where))
            return _ORDER[e.op](a, b)
        if t is E.BinOp:
            a, b = self._eval(e.left, scope, where), self._eval(e.right, scope, where)
            if e.op not in _ARITH or not (_number(a) and _number(b)):
                raise ConversionError(f"{e.op} of {type(a).__name__} and {type(b).__name__} values is not "
                                      "evaluated on Python values", location=self._loc(where))
            if e.op == "**" and isinstance(b, (int, float)) and abs(b) > 1024 and abs(a) > 1:
                raise ConversionError("a power that large is not evaluated", location=self._loc(where))
            try:
                return _ARITH[e.op](a, b)
            except (ZeroDivisionError, OverflowError) as err:
                raise ConversionError(f"{e.op}: {err}", location=self._loc(where)) from None
        if t is E.Subscript:
            base = self._eval(e.value, scope, where)
            idx = e.index
            if isinstance(idx, (tuple, E.Slice)):
                raise ConversionError("slices of Python values are not evaluated", location=self._loc(where))
            i = self._eval(idx, scope, where)
            if isinstance(base, (list, tuple)) and type(i) is int and -len(base) <= i < len(base):
                return base[i]
            raise ConversionError(f"index {i!r} of a {type(base).__name__} value", location=self._loc(where))
        if t is E.Call:
            raise ConversionError(f"a call of {e.func!r} on Python values (numeric functions run on tensors)",
                                  location=self._loc(where))
        raise ConversionError(f"unsupported expression {type(e).__name__}", location=self._loc(where))
