"""MDF expressions (``"A*sin(B)+offset"``, ``"count + 1"``, ``"x if x > 0 else 0"``) as a small
immutable tree.

modeci_mdf hands expression strings to Python's ``eval``; torchmdf never does.  A string is
parsed once with :mod:`ast` (``ast.parse`` only builds a syntax tree, it runs nothing) and
converted through a whitelist into the dataclasses below; anything outside the whitelist
(attribute access, ``__import__``, lambdas, comprehensions, strings, ...) is an
:class:`~torchmdf.errors.ExpressionError` that names the construct and its column.  The tree
is what :mod:`torchmdf.mdf.expression_lowering` lowers to IR (:func:`evaluate_expression` is
a thin use of that lowering).

Conventions worth knowing:

* A minus sign in front of a number literal is folded into it (``-2`` is ``Num(-2)``), so the
  tree has one spelling per number and ``to_source`` round-trips.
* ``a < b < c`` becomes ``BoolOp("and", (Compare("<", a, b), Compare("<", b, c)))``.
* ``and``/``or``/``not``/``x if c else y`` are element-wise on tensors (``torch.logical_*`` and
  ``torch.where``), which is what they mean for scalars and the only useful meaning for arrays.
* ``math.``/``numpy.``/``np.`` prefixes are normalised away: ``numpy.sin(x)`` is
  ``Call("sin", (x,))``; ``math.pi``/``numpy.pi``/``math.e``/``math.inf``/``math.nan`` are numbers.
* A string literal is allowed only as an element of a list literal, where it names a value
  (``"['_122', '_123']"``: how modeci_mdf's ONNX importer writes variadic inputs); it becomes a
  :class:`Name`.
"""

from __future__ import annotations

import ast
import functools
import keyword
import math
from dataclasses import dataclass
from typing import Any, Iterable, Union

import numpy as np

from torchmdf.errors import ExpressionError

from .functions import FUNCTIONS, FunctionSpec, expression_function

__all__ = [
    "Num", "Name", "BinOp", "UnaryOp", "Compare", "BoolOp", "IfExp", "Call", "Slice", "Subscript",
    "List", "EmptyDict", "Expr", "MAX_EXPRESSION_LENGTH", "MAX_EXPRESSION_DEPTH", "FUNCTIONS", "FunctionSpec",
    "parse_expression", "parse_in_scope", "free_names", "to_source", "evaluate_expression",
    "canonical_function_name",
]

#: Longest expression text accepted (characters); longer text is refused before parsing.
MAX_EXPRESSION_LENGTH = 10_000
#: Deepest expression tree accepted; keeps every recursive walk far from Python's limit.
MAX_EXPRESSION_DEPTH = 200


# ---------------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Num:
    """A number literal (int, float or bool)."""

    value: int | float | bool


@dataclass(frozen=True, slots=True)
class Name:
    """A reference to an input port, parameter, function or function argument."""

    id: str


@dataclass(frozen=True, slots=True)
class _Binary:
    """``left op right``: the fields of :class:`BinOp` and :class:`Compare`."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class BinOp(_Binary):
    """``left op right`` with op in ``+ - * / // % ** @``."""


@dataclass(frozen=True, slots=True)
class UnaryOp:
    """``op operand`` with op in ``- + not``."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Compare(_Binary):
    """One comparison ``left op right`` with op in ``== != < <= > >=``."""


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``v0 and v1 and ...`` / ``v0 or v1 or ...`` (element-wise)."""

    op: str
    values: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class IfExp:
    """``body if test else orelse`` (element-wise: ``torch.where``)."""

    test: Expr
    body: Expr
    orelse: Expr


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a whitelisted function, by its canonical name (see :data:`FUNCTIONS`)."""

    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Slice:
    """``lower:upper:step`` inside a subscript; a missing part is ``None``."""

    lower: Expr | None = None
    upper: Expr | None = None
    step: Expr | None = None


@dataclass(frozen=True, slots=True)
class Subscript:
    """``value[index]``; index is an expression, a :class:`Slice`, or a tuple of those."""

    value: Expr
    index: Expr | Slice | tuple[Expr | Slice, ...]


@dataclass(frozen=True, slots=True)
class List:
    """A list literal ``[a, b, ...]``; ``bare``: a tuple written as the whole expression
    (``a, b, c``), which modeci_mdf keeps as a Python tuple (its items may differ in shape)."""

    elts: tuple[Expr, ...]
    bare: bool = False


@dataclass(frozen=True, slots=True)
class EmptyDict:
    """``{}``: the empty chunk of ACT-R models (``goal_input == {}``); only symbolic values
    (:mod:`torchmdf.mdf.symbolic`) compare with it, the tensor lowering refuses it."""


Expr = Union[Num, Name, BinOp, UnaryOp, Compare, BoolOp, IfExp, Call, Subscript, List, EmptyDict]


# ---------------------------------------------------------------------------------------------
# Function spellings (the functions themselves: :data:`torchmdf.mdf.functions.FUNCTIONS`)
# ---------------------------------------------------------------------------------------------

_MATH_SPELLINGS = {
    "exp": "exp", "log": "log", "log10": "log10", "log2": "log2", "log1p": "log1p", "expm1": "expm1",
    "sqrt": "sqrt", "fabs": "abs", "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh",
    "cosh": "cosh", "tanh": "tanh", "asin": "arcsin", "acos": "arccos", "atan": "arctan",
    "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh", "atan2": "arctan2",
    "floor": "floor", "ceil": "ceil", "trunc": "trunc", "pow": "pow", "hypot": "hypot",
    "fmod": "fmod", "erf": "erf",
}
_NUMPY_SPELLINGS = {
    "exp": "exp", "log": "log", "log10": "log10", "log2": "log2", "log1p": "log1p", "expm1": "expm1",
    "sqrt": "sqrt", "abs": "abs", "absolute": "abs", "fabs": "abs", "sin": "sin", "cos": "cos",
    "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "arcsin": "arcsin",
    "arccos": "arccos", "arctan": "arctan", "arcsinh": "arcsinh", "arccosh": "arccosh",
    "arctanh": "arctanh", "arctan2": "arctan2", "floor": "floor", "ceil": "ceil", "trunc": "trunc",
    "round": "round", "around": "round", "sign": "sign", "square": "square", "power": "pow",
    "maximum": "maximum", "minimum": "minimum", "max": "amax", "amax": "amax", "min": "amin",
    "amin": "amin", "sum": "sum", "mean": "mean", "matmul": "matmul", "dot": "dot",
    "where": "where", "clip": "clip", "hypot": "hypot", "fmod": "fmod",
}
_BARE_SPELLINGS = {n: n for n in FUNCTIONS if n not in ("amax", "amin")}
_BARE_SPELLINGS.update({"asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2",
                        "fabs": "abs"})
_PREFIXES = {"math": _MATH_SPELLINGS, "numpy": _NUMPY_SPELLINGS, "np": _NUMPY_SPELLINGS}
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan, "tau": math.tau}


def canonical_function_name(spelling: str) -> str | None:
    """The canonical name of a function as written in an expression (``numpy.absolute`` ->
    ``abs``; a registered ``mdf::<name>`` op as ``<name>``), or None when it is not
    whitelisted."""
    if "." in spelling:
        prefix, _, attr = spelling.partition(".")
        table = _PREFIXES.get(prefix)
        return table.get(attr) if table is not None else None
    name = _BARE_SPELLINGS.get(spelling)
    if name is None and spelling not in FUNCTIONS and expression_function(spelling) is not None:
        return spelling
    return name


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_UNOPS = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not"}
_FORBIDDEN = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "an assignment expression (:=)", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.Starred: "a starred expression (*x)",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Dict: "a non-empty dict literal",
    ast.Set: "a set literal", ast.Tuple: "a tuple (outside a subscript)",
    ast.Attribute: "attribute access",
}
_FORBIDDEN_OPS = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
                  ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not",
                  ast.In: "in", ast.NotIn: "not in"}
_FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "open", "getattr", "setattr",
                    "delattr", "globals", "locals", "vars", "breakpoint", "input", "type", "object"}


class _Failure:
    """A cached parse failure: the message and hint, re-raised with each caller's location;
    ``unknown``: the unknown function it calls (registering it as an op makes it known)."""

    __slots__ = ("message", "hint", "unknown")

    def __init__(self, message: str, hint: str | None = None, unknown: str | None = None):
        self.message = message
        self.hint = hint
        self.unknown = unknown


class _Reject(Exception):
    """Raised inside the converter with the failure it reports."""

    def __init__(self, failure: _Failure):
        super().__init__(failure.message)
        self.failure = failure


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Converter:
    """ast -> Expr, through the whitelist; every rejection names the construct and column."""

    def __init__(self, text: str):
        self.text = text

    def reject(self, node: ast.AST | None, what: str, hint: str | None = None,
               unknown: str | None = None) -> _Reject:
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        return _Reject(_Failure(f"{what} is not allowed in an MDF expression{where}: {_quote(self.text)}",
                                hint, unknown))

    def conv(self, node: ast.AST, depth: int, in_list: bool = False) -> Expr:
        if depth > MAX_EXPRESSION_DEPTH:
            raise self.reject(node, f"nesting deeper than {MAX_EXPRESSION_DEPTH} levels")
        d = depth + 1
        t = type(node)
        if t is ast.Constant:
            v = node.value
            if isinstance(v, bool) or type(v) in (int, float):
                return Num(v)
            if isinstance(v, str) and in_list:
                if not v or v.startswith("__"):
                    raise self.reject(node, f"the name {v!r}")
                return Name(v)
            kind = "a string" if isinstance(v, str) else f"the constant {v!r}"
            raise self.reject(node, kind, "MDF expressions are numeric; refer to values by name")
        if t is ast.Name:
            if node.id.startswith("__") and node.id.endswith("__"):
                raise self.reject(node, f"the dunder name {node.id!r}")
            return Name(node.id)
        if t is ast.BinOp:
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.reject(node, f"the operator {_FORBIDDEN_OPS.get(type(node.op), '?')!r}")
            return BinOp(op, self.conv(node.left, d), self.conv(node.right, d))
        if t is ast.UnaryOp:
            op = _UNOPS.get(type(node.op))
            if op is None:
                raise self.reject(node, f"the operator {_FORBIDDEN_OPS.get(type(node.op), '?')!r}")
            operand = self.conv(node.operand, d)
            if op == "-" and type(operand) is Num and not isinstance(operand.value, bool):
                return Num(-operand.value)
            return UnaryOp(op, operand)
        if t is ast.Compare:
            parts = [self.conv(node.left, d)] + [self.conv(c, d) for c in node.comparators]
            cmps = []
            for i, cop in enumerate(node.ops):
                op = _CMPOPS.get(type(cop))
                if op is None:
                    raise self.reject(node, f"the comparison {_FORBIDDEN_OPS.get(type(cop), '?')!r}")
                cmps.append(Compare(op, parts[i], parts[i + 1]))
            return cmps[0] if len(cmps) == 1 else BoolOp("and", tuple(cmps))
        if t is ast.BoolOp:
            return BoolOp("and" if isinstance(node.op, ast.And) else "or",
                          tuple(self.conv(v, d) for v in node.values))
        if t is ast.IfExp:
            return IfExp(self.conv(node.test, d), self.conv(node.body, d), self.conv(node.orelse, d))
        if t is ast.Call:
            return self.call(node, d)
        if t is ast.Attribute:
            return self.attribute(node)
        if t is ast.Subscript:
            return Subscript(self.conv(node.value, d), self.index(node.slice, d))
        if t is ast.List:
            return List(tuple(self.conv(e, d, in_list=True) for e in node.elts))
        if t is ast.Dict and not node.keys:
            return EmptyDict()
        what = _FORBIDDEN.get(t, f"the construct {t.__name__}")
        raise self.reject(node, what)

    def dotted(self, node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        return ".".join(reversed(parts))

    def attribute(self, node: ast.Attribute) -> Num:
        name = self.dotted(node)
        if name is not None:
            prefix, _, attr = name.partition(".")
            if prefix in _PREFIXES and attr in CONSTANTS:
                return Num(CONSTANTS[attr])
        shown = f" {name!r}" if name else ""
        raise self.reject(node, f"attribute access{shown}",
                          "only math./numpy./np. function names and math.pi-style constants are allowed")

    def call(self, node: ast.Call, d: int) -> Call:
        spelling = self.dotted(node.func)
        if spelling is None:
            if isinstance(node.func, ast.Attribute):
                self.conv(node.func.value, d)  # names the worse construct inside, if any
                raise self.reject(node.func, f"attribute access '.{node.func.attr}'")
            raise self.reject(node, "calling a computed value")
        if spelling.startswith("__") or spelling in _FORBIDDEN_CALLS:
            raise self.reject(node, f"a call of {spelling!r}")
        func = canonical_function_name(spelling)
        if func is None:
            if "." in spelling and spelling.partition(".")[0] not in _PREFIXES:
                raise self.reject(node.func, f"attribute access {spelling!r}")
            raise self.reject(node, f"a call of the unknown function {spelling!r}",
                              "known functions: " + ", ".join(sorted(FUNCTIONS)), unknown=spelling)
        spec = expression_function(func)
        if spec is None:  # pragma: no cover - canonical_function_name said it was known
            raise self.reject(node, f"a call of the unknown function {spelling!r}")
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.reject(a, "a starred argument (*x)")
            args.append(self.conv(a, d))
        if node.keywords:
            if not spec.keywords:
                raise self.reject(node, f"a keyword argument to {spelling!r}")
            slots: list[Expr | None] = list(args) + [None] * (len(spec.keywords) - len(args))
            if len(args) > len(spec.keywords):
                raise self.reject(node, f"{len(args)} arguments to {spelling!r}")
            for kw in node.keywords:
                if kw.arg is None:
                    raise self.reject(kw.value, "a **mapping argument")
                if kw.arg not in spec.keywords:
                    raise self.reject(kw.value, f"the keyword {kw.arg!r} of {spelling!r}",
                                      f"{spelling} takes {', '.join(spec.keywords)}")
                i = spec.keywords.index(kw.arg)
                if slots[i] is not None:
                    raise self.reject(kw.value, f"a repeated argument {kw.arg!r} of {spelling!r}")
                slots[i] = self.conv(kw.value, d)
            missing = [spec.keywords[i] for i, s in enumerate(slots) if s is None]
            if missing:
                raise self.reject(node, f"a call of {spelling!r} without {', '.join(missing)}")
            args = slots  # type: ignore[assignment]
        n = len(args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            want = (f"{spec.min_args}" if spec.max_args == spec.min_args
                    else f"{spec.min_args} or more" if spec.max_args is None
                    else f"{spec.min_args} to {spec.max_args}")
            raise self.reject(node, f"a call of {spelling!r} with {n} argument(s) (it takes {want})")
        return Call(func, tuple(args))  # type: ignore[arg-type]

    def index(self, node: ast.AST, d: int) -> Expr | Slice | tuple[Expr | Slice, ...]:
        if isinstance(node, ast.Tuple):
            if not node.elts:
                raise self.reject(node, "an empty subscript")
            return tuple(self.index_part(e, d) for e in node.elts)
        return self.index_part(node, d)

    def index_part(self, node: ast.AST, d: int) -> Expr | Slice:
        if isinstance(node, ast.Slice):
            def part(x):
                return None if x is None else self.conv(x, d)
            return Slice(part(node.lower), part(node.upper), part(node.step))
        return self.conv(node, d)


@functools.lru_cache(maxsize=16384)
def _parse_cached(text: str) -> Expr | _Failure:
    if len(text) > MAX_EXPRESSION_LENGTH:
        return _Failure(f"expression is {len(text)} characters long (the limit is "
                        f"{MAX_EXPRESSION_LENGTH}): {_quote(text)}")
    if not text.strip():
        return _Failure("empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        return _Failure(f"cannot parse expression{col}: {e.msg}: {_quote(text)}")
    except (ValueError, MemoryError, RecursionError, OverflowError) as e:
        return _Failure(f"cannot parse expression ({type(e).__name__}: {str(e)[:100] or 'too complex'}): "
                        f"{_quote(text)}")
    try:
        conv = _Converter(text.strip())
        if isinstance(tree.body, ast.Tuple) and tree.body.elts:
            # a bare tuple as the whole expression ("a, b, c": PsyNeuLink's exports): Python's
            # eval makes a tuple, which modeci_mdf indexes as it would the list [a, b, c]
            return List(tuple(conv.conv(e, 1, in_list=True) for e in tree.body.elts), bare=True)
        return conv.conv(tree.body, 0)
    except _Reject as r:
        return r.failure
    except RecursionError:
        return _Failure(f"expression is nested too deeply: {_quote(text)}")


def parse_expression(text: str, *, location: str | None = None) -> Expr:
    """Parse MDF expression text into an :data:`Expr` (cached by text).

    Raises :class:`ExpressionError` (located at ``location``) for anything outside the
    whitelisted grammar.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}",
                              location=location)
    result = _parse_cached(text)
    if isinstance(result, _Failure) and result.unknown is not None \
            and expression_function(result.unknown) is not None:  # an op registered since
        _parse_cached.cache_clear()
        result = _parse_cached(text)
    if isinstance(result, _Failure):
        raise ExpressionError(result.message, location=location, hint=result.hint)
    return result


def number_literal(text: str) -> int | float | None:
    """The number a string stands for as Python's ``int()``/``float()`` read it (modeci_mdf's
    rule: ``" 5 "``, ``"1e3"``, ``"nan"``, ``"1_000"``), else None.  No regular expression:
    linear in the length, and a string of more digits than Python converts (4300) is read as a
    float, never an error."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_LENGTH:
        return None
    t = text.strip()
    if not t or not (t[0].isdigit() or t[0] in "+-." or t[:3].lower() in ("inf", "nan")):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return None


def parse_in_scope(text: str, names: Iterable[str] | dict | set | frozenset, *,
                   location: str | None = None) -> Expr:
    """Parse an MDF value string the way modeci_mdf reads it: a string that is exactly the id
    of a value in scope is a reference to it even when it is not a Python identifier
    (``"onnx::Add_1"``, ``"/A/Add"``), a string Python's ``int()``/``float()`` accepts is that
    number (``"nan"``, ``" 5 "``), and anything else is an expression."""
    if isinstance(text, str):
        if text in names:
            return Name(text)
        num = number_literal(text)
        if num is not None:
            return Num(num)
    return parse_expression(text, location=location)


# ---------------------------------------------------------------------------------------------
# Queries and printing
# ---------------------------------------------------------------------------------------------

def _children(e: Any) -> Iterable[Any]:
    t = type(e)
    if t is BinOp or t is Compare:
        return (e.left, e.right)
    if t is UnaryOp:
        return (e.operand,)
    if t is BoolOp:
        return e.values
    if t is IfExp:
        return (e.test, e.body, e.orelse)
    if t is Call:
        return e.args
    if t is List:
        return e.elts
    if t is Subscript:
        idx = e.index if isinstance(e.index, tuple) else (e.index,)
        return (e.value, *idx)
    if t is Slice:
        return tuple(x for x in (e.lower, e.upper, e.step) if x is not None)
    return ()


@functools.lru_cache(maxsize=16384)
def free_names(expr: Expr) -> frozenset[str]:
    """Every name the expression refers to."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if type(e) is Name:
            out.add(e.id)
        else:
            stack.extend(_children(e))
    return frozenset(out)


# Precedence, low to high (Python's).
_P_IF, _P_OR, _P_AND, _P_NOT, _P_CMP, _P_ADD, _P_MUL, _P_UNARY, _P_POW, _P_ATOM = range(1, 11)
_BIN_PREC = {"+": _P_ADD, "-": _P_ADD, "*": _P_MUL, "/": _P_MUL, "//": _P_MUL, "%": _P_MUL,
             "@": _P_MUL, "**": _P_POW}


def _prec(e: Any) -> int:
    t = type(e)
    if t is Num:
        v = e.value
        neg = not isinstance(v, bool) and (v < 0 or (v == 0 and math.copysign(1.0, v) < 0)
                                           or (isinstance(v, float) and math.isinf(v)))
        return _P_UNARY if neg else _P_ATOM
    if t is BinOp:
        return _BIN_PREC[e.op]
    if t is UnaryOp:
        return _P_NOT if e.op == "not" else _P_UNARY
    if t is Compare:
        return _P_CMP
    if t is BoolOp:
        return _P_AND if e.op == "and" else _P_OR
    if t is IfExp:
        return _P_IF
    return _P_ATOM


def _num_source(v: int | float | bool) -> str:
    if isinstance(v, bool) or isinstance(v, int):
        return repr(v)
    if math.isnan(v):
        return "math.nan"
    if math.isinf(v):
        return "math.inf" if v > 0 else "-math.inf"
    return repr(v)


def _is_identifier(s: str) -> bool:
    return s.isidentifier() and not keyword.iskeyword(s)


def _src(e: Any, top: bool = False, in_list: bool = False) -> str:
    t = type(e)
    if t is Num:
        return _num_source(e.value)
    if t is Name:
        if _is_identifier(e.id) or top:
            return e.id
        if in_list:
            return repr(e.id)
        raise ExpressionError(f"the name {e.id!r} is not an identifier and can only be written as a "
                              "whole expression or a list element")
    if t is BinOp:
        p = _BIN_PREC[e.op]
        lp, rp = _prec(e.left), _prec(e.right)
        right_assoc = e.op == "**"
        left = _src(e.left)
        right = _src(e.right)
        if lp < p or (lp == p and right_assoc) or (right_assoc and lp == _P_UNARY):
            left = f"({left})"
        if rp < p or (rp == p and not right_assoc):
            right = f"({right})"
        return f"{left} {e.op} {right}"
    if t is UnaryOp:
        inner = _src(e.operand)
        if e.op == "not":
            return f"not ({inner})" if _prec(e.operand) < _P_NOT else f"not {inner}"
        # "-(2)" keeps a negated literal a UnaryOp only in spirit: the parser folds it anyway.
        if _prec(e.operand) < _P_UNARY or type(e.operand) is Num:
            return f"{e.op}({inner})"
        return f"{e.op}{inner}"
    if t is Compare:
        left, right = _src(e.left), _src(e.right)
        if _prec(e.left) <= _P_CMP:
            left = f"({left})"
        if _prec(e.right) <= _P_CMP:
            right = f"({right})"
        return f"{left} {e.op} {right}"
    if t is BoolOp:
        p = _prec(e)
        parts = [f"({_src(v)})" if _prec(v) <= p else _src(v) for v in e.values]
        return f" {e.op} ".join(parts)
    if t is IfExp:
        body, test, orelse = _src(e.body), _src(e.test), _src(e.orelse)
        if _prec(e.body) <= _P_IF:
            body = f"({body})"
        if _prec(e.test) <= _P_IF:
            test = f"({test})"
        return f"{body} if {test} else {orelse}"
    if t is Call:
        return f"{e.func}({', '.join(_src(a) for a in e.args)})"
    if t is List:
        return "[" + ", ".join(_src(x, in_list=True) for x in e.elts) + "]"
    if t is EmptyDict:
        return "{}"
    if t is Subscript:
        value = _src(e.value)
        if _prec(e.value) < _P_ATOM or type(e.value) is Num:
            value = f"({value})"
        if isinstance(e.index, tuple):
            parts = [_index_src(i) for i in e.index]
            idx = ", ".join(parts) + ("," if len(parts) == 1 else "")
        else:
            idx = _index_src(e.index)
        return f"{value}[{idx}]"
    raise ExpressionError(f"not an expression node: {type(e).__name__}")


def _index_src(i: Any) -> str:
    if type(i) is Slice:
        def part(x):
            if x is None:
                return ""
            s = _src(x)
            return f"({s})" if _prec(x) <= _P_IF else s
        s = f"{part(i.lower)}:{part(i.upper)}"
        return s + (f":{part(i.step)}" if i.step is not None else "")
    return _src(i)


def to_source(expr: Expr) -> str:
    """MDF text for an expression tree; ``parse_expression(to_source(t)) == t`` for every tree
    the parser produces (names that are not identifiers print bare only as a whole expression,
    as modeci_mdf reads them)."""
    return _src(expr, top=True)


# ---------------------------------------------------------------------------------------------
# Evaluation: a thin use of the lowering (never eval)
# ---------------------------------------------------------------------------------------------

def literal_tensor(v: Any):
    """An MDF literal as a tensor, as modeci_mdf's numpy computes with it: floats (and arrays
    holding floats) float64, ints int64, bools bool."""
    import torch

    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, bool):
        return torch.tensor(v)
    if isinstance(v, int):
        return torch.tensor(v, dtype=torch.int64)
    if isinstance(v, float):
        return torch.tensor(v, dtype=torch.float64)
    t = torch.as_tensor(np.asarray(v) if isinstance(v, (list, tuple)) else v)
    return t.double() if t.is_floating_point() else t


def evaluate_expression(expr: Expr, env: dict[str, Any]):
    """Evaluate a tree on torch tensors/Python numbers in ``env`` (name -> value); returns a
    tensor.  The tree goes through the same lowering as a file's expressions
    (:class:`~torchmdf.mdf.expression_lowering.ExpressionLowering`), each op run as it is
    lowered, with the function table's numpy-compat notes applied exactly."""
    from torchmdf.ir import Graph

    from .expression_lowering import Env, ExpressionLowering

    for name in sorted(free_names(expr)):
        if name not in env:
            raise ExpressionError(f"no value for the name {name!r}")
    g = Graph("expression")
    lowering = ExpressionLowering(g, {}, "expression", numpy_exact=True, eager=True)
    scope = Env()
    for name, v in env.items():
        scope.set(name, lowering.const(v) if type(v) in (int, float, bool) else g.add_constant(literal_tensor(v)))
    return lowering.one(lowering.expr(expr, scope, "expression"), "expression").tensor
