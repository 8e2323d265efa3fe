"""The MDF expression language: parsing through the whitelist, printing back, evaluating."""

from __future__ import annotations

import math

import pytest
import torch
from fuzz_profiles import examples
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from torchmdf.errors import ExpressionError, TorchMDFError
from torchmdf.mdf.expressions import (
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    BinOp,
    BoolOp,
    Call,
    Compare,
    IfExp,
    List,
    Name,
    Num,
    Slice,
    Subscript,
    UnaryOp,
    evaluate_expression,
    free_names,
    parse_expression,
    parse_in_scope,
    to_source,
)

# ------------------------------------------------------------------------------------ parsing

@pytest.mark.parametrize("text, tree", [
    ("count + 1", BinOp("+", Name("count"), Num(1))),
    ("A*sin(B)+offset", BinOp("+", BinOp("*", Name("A"), Call("sin", (Name("B"),))), Name("offset"))),
    ("x if x > 0 else 0", IfExp(Compare(">", Name("x"), Num(0)), Name("x"), Num(0))),
    ("input[0]", Subscript(Name("input"), Num(0))),
    ("a[1:3]", Subscript(Name("a"), Slice(Num(1), Num(3), None))),
    ("a[1:3, ::2, i]", Subscript(Name("a"), (Slice(Num(1), Num(3)), Slice(None, None, Num(2)), Name("i")))),
    ("numpy.sin(x)", Call("sin", (Name("x"),))),
    ("np.absolute(x)", Call("abs", (Name("x"),))),
    ("math.exp(x)", Call("exp", (Name("x"),))),
    ("math.atan2(y, x)", Call("arctan2", (Name("y"), Name("x")))),
    ("numpy.maximum(a, 0)", Call("maximum", (Name("a"), Num(0)))),
    ("numpy.max(a)", Call("amax", (Name("a"),))),
    ("max(a, b, 1)", Call("max", (Name("a"), Name("b"), Num(1)))),
    ("-2", Num(-2)),
    ("- 2.5e-3", Num(-2.5e-3)),
    ("-x", UnaryOp("-", Name("x"))),
    ("not a", UnaryOp("not", Name("a"))),
    ("a < b < c", BoolOp("and", (Compare("<", Name("a"), Name("b")), Compare("<", Name("b"), Name("c"))))),
    ("a or b and c", BoolOp("or", (Name("a"), BoolOp("and", (Name("b"), Name("c")))))),
    ("A @ B", BinOp("@", Name("A"), Name("B"))),
    ("a // b % c ** d", BinOp("%", BinOp("//", Name("a"), Name("b")), BinOp("**", Name("c"), Name("d")))),
    ("math.pi", Num(math.pi)),
    ("True", Num(True)),
    ("[1, 2.0, x]", List((Num(1), Num(2.0), Name("x")))),
    ("['_122', 'onnx::Add_1']", List((Name("_122"), Name("onnx::Add_1")))),
    ("linear(x, slope=2, intercept=b)", Call("linear", (Name("x"), Num(2), Name("b")))),
    ("FitzHughNagumoIntegrator_Function_0[0]", Subscript(Name("FitzHughNagumoIntegrator_Function_0"), Num(0))),
    ("  count_C+ 1 ", BinOp("+", Name("count_C"), Num(1))),
])
def test_parse(text, tree):
    assert parse_expression(text) == tree


def test_parse_is_cached_and_free_names():
    a = parse_expression("(a_v*V*V*V + (1+threshold)*b_v*V*V) / (time_constant_v*MSEC)")
    assert parse_expression("(a_v*V*V*V + (1+threshold)*b_v*V*V) / (time_constant_v*MSEC)") is a
    assert free_names(a) == {"a_v", "V", "threshold", "b_v", "time_constant_v", "MSEC"}
    assert free_names(parse_expression("numpy.exp(x) + math.pi")) == {"x"}


def test_parse_in_scope_reads_strings_like_modeci_mdf():
    scope = {"onnx::Add_1", "/A/Add", "x"}
    assert parse_in_scope("onnx::Add_1", scope) == Name("onnx::Add_1")
    assert parse_in_scope("/A/Add", scope) == Name("/A/Add")
    assert parse_in_scope("x + 1", scope) == BinOp("+", Name("x"), Num(1))
    assert parse_in_scope("1", scope) == Num(1)
    assert math.isnan(parse_in_scope("nan", scope).value)
    assert parse_in_scope("-inf", scope) == Num(-math.inf)
    with pytest.raises(ExpressionError):
        parse_in_scope("/A/Mul", scope)


# ------------------------------------------------------------------------------- rejections

@pytest.mark.parametrize("text, fragment", [
    ("__import__('os').system('echo hi')", "'__import__'"),
    ("os.system('echo hi')", "attribute access 'os.system'"),
    ("x.__class__", "attribute access"),
    ("().__class__.__bases__", "attribute access"),
    ("numpy.random.normal(0, 1)", "numpy.random.normal"),
    ("lambda: 1", "lambda"),
    ("[x for x in y]", "comprehension"),
    ("{x: 1 for x in y}", "comprehension"),
    ("(x for x in y)", "generator"),
    ("(y := 1)", ":="),
    ("f'{x}'", "f-string"),
    ("'abc'", "a string"),
    ("eval('1')", "'eval'"),
    ("exec('1')", "'exec'"),
    ("open('/etc/passwd')", "'open'"),
    ("getattr(x, 'y')", "'getattr'"),
    ("__builtins__", "dunder"),
    ("foo(1)", "unknown function 'foo'"),
    ("sin(*x)", "starred"),
    ("sin(x=1)", "keyword argument"),
    ("linear(x, slope=1, bogus=2)", "'bogus'"),
    ("linear(x, slope=1)", "without intercept"),
    ("sin(x, y)", "2 argument(s)"),
    ("a & b", "'&'"),
    ("~a", "'~'"),
    ("a is b", "'is'"),
    ("a in b", "'in'"),
    ("{1, 2}", "set literal"),
    ("{'a': 1}", "dict literal"),
    ("1 + (1, 2)", "tuple"),  # a bare tuple as the whole expression is a list (PsyNeuLink)
    ("[(1, 2)]", "tuple"),
    ("1j", "constant 1j"),
    ("None", "constant None"),
    ("x[...]", "Ellipsis"),
    ("(x)(1)", "unknown function 'x'"),
    ("(a + b)(1)", "computed"),
    ("a +", "cannot parse"),
    ("", "empty"),
    ("a\0b", "cannot parse"),
    ("(" * 300 + "1" + ")" * 300, "nested"),
    ("a" + "+a" * (MAX_EXPRESSION_DEPTH + 5), f"deeper than {MAX_EXPRESSION_DEPTH}"),
    ("-" * 5000 + "1", "cannot parse"),
    ("x" * (MAX_EXPRESSION_LENGTH + 1), "characters long"),
    ("9" * 5000, "cannot parse"),
])
def test_rejections_name_construct_and_location(text, fragment):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, location="model 'm' > graph 'g' > node 'A' > parameter 'p'")
    msg = str(info.value)
    assert "node 'A' > parameter 'p'" in msg
    assert fragment in msg
    assert isinstance(info.value, TorchMDFError)


def test_rejection_reports_column():
    with pytest.raises(ExpressionError, match="column 5"):
        parse_expression("1 + x.real")


def test_rejection_is_reraised_with_each_location():
    for where in ("node 'A'", "node 'B'"):
        with pytest.raises(ExpressionError, match=where):
            parse_expression("lambda: 0", location=where)


def test_non_string_is_rejected():
    with pytest.raises(ExpressionError, match="must be a string"):
        parse_expression(3)  # type: ignore[arg-type]


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {marker}')",
                 f"open('{marker}', 'w')",
                 f"exec(\"open('{marker}','w')\")"):
        with pytest.raises(ExpressionError):
            parse_expression(text)
    assert not marker.exists()


# ----------------------------------------------------------------------------- to_source

@pytest.mark.parametrize("text", [
    "A * sin(B) + offset", "-2 ** 2", "(-2) ** x", "x ** -2", "a - -2", "(a + b) * c", "a - (b - c)",
    "a / (b * c)", "(a ** b) ** c", "a ** b ** c", "not (a and b)", "(a if b else c) if d else e",
    "a if b else c if d else e", "(a < b) < c", "a[1:3, ::2]", "a[1,]", "[_1, 'onnx::x', 2]",
    "(a and b) and c", "-(a + b)", "--x", "math.inf", "-math.inf", "1e-05", "x[-1]", "(-1)[0]",
    "+(2)", "f(x)" if False else "exp(x)[0]", "where(a > 0, a, 0)",
])
def test_to_source_round_trips(text):
    tree = parse_expression(text)
    src = to_source(tree)
    assert parse_expression(src) == tree
    assert to_source(parse_expression(src)) == src


def test_to_source_top_level_reference_and_bad_nested_name():
    assert to_source(Name("onnx::Add_1")) == "onnx::Add_1"
    with pytest.raises(ExpressionError):
        to_source(BinOp("+", Name("onnx::Add_1"), Num(1)))


# ----------------------------------------------------------------------------- evaluation

def test_evaluate_basic():
    env = {"x": torch.tensor([-1.0, 2.0]), "a": torch.arange(5), "c": 3}
    assert torch.equal(evaluate_expression(parse_expression("x if x > 0 else 0"), env),
                       torch.tensor([0.0, 2.0]))
    assert torch.equal(evaluate_expression(parse_expression("a[1:3]"), env), torch.tensor([1, 2]))
    assert evaluate_expression(parse_expression("c // 2 + c % 2 + 2 ** -1"), env).item() == 2.5
    r = evaluate_expression(parse_expression("numpy.maximum(x, 0) + max(x)"), env)
    assert torch.equal(r, torch.tensor([2.0, 4.0]))
    assert torch.equal(evaluate_expression(parse_expression("[c, 1]"), env), torch.tensor([3, 1]))
    lin = evaluate_expression(parse_expression("linear(x, slope=2, intercept=1)"), env)
    assert torch.equal(lin, torch.tensor([-1.0, 5.0]))
    with pytest.raises(ExpressionError, match="no value"):
        evaluate_expression(parse_expression("y"), env)


# ------------------------------------------------------------------------- property tests

_NAMES = ["x", "y", "z", "a_1"]
_UNARY_FUNCS = ["exp", "sin", "cos", "tanh", "abs", "floor", "ceil", "sqrt", "arctan"]
_BINARY_FUNCS = ["maximum", "minimum", "max", "min", "arctan2"]

nums = st.one_of(st.integers(-20, 20).map(Num),
                 st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(Num),
                 st.booleans().map(Num))
names = st.sampled_from(_NAMES).map(Name)


def _extend(children):
    non_num = children.filter(lambda e: type(e) is not Num)
    return st.one_of(
        st.builds(BinOp, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children, children),
        st.builds(lambda b, e: BinOp("**", b, Num(e)), children, st.integers(0, 3)),
        st.builds(UnaryOp, st.just("-"), non_num),
        st.builds(UnaryOp, st.sampled_from(["+", "not"]), children),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(lambda op, vs: BoolOp(op, tuple(vs)), st.sampled_from(["and", "or"]),
                  st.lists(children, min_size=2, max_size=3)),
        st.builds(IfExp, children, children, children),
        st.builds(lambda f, a: Call(f, (a,)), st.sampled_from(_UNARY_FUNCS), children),
        st.builds(lambda f, a, b: Call(f, (a, b)), st.sampled_from(_BINARY_FUNCS), children, children),
    )


scalar_trees = st.recursive(st.one_of(nums, names), _extend, max_leaves=12)


def _extend_struct(children):
    idx = st.one_of(children, st.builds(Slice, st.none() | children, st.none() | children,
                                        st.none() | children))
    return st.one_of(
        _extend(children),
        st.builds(Subscript, children, st.one_of(idx, st.lists(idx, min_size=1, max_size=3).map(tuple))),
        st.builds(lambda xs: List(tuple(xs)), st.lists(children, max_size=3)),
    )


any_trees = st.recursive(st.one_of(nums, names), _extend_struct, max_leaves=12)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_trees)
def test_property_to_source_parse_round_trip(tree):
    src = to_source(tree)
    again = parse_expression(src)
    assert again == tree, src
    assert to_source(again) == src


def _ref(e, env):
    """The straightforward reference: Python numbers and math, element-wise logic."""
    t = type(e)
    if t is Num:
        return e.value
    if t is Name:
        return env[e.id]
    if t is BinOp:
        a, b = _ref(e.left, env), _ref(e.right, env)
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            return a * b
        if e.op == "/":
            return a / b
        if e.op == "//":
            return a // b
        if e.op == "%":
            return a % b
        return a ** b
    if t is UnaryOp:
        v = _ref(e.operand, env)
        return -v if e.op == "-" else +v if e.op == "+" else (not v)
    if t is Compare:
        a, b = _ref(e.left, env), _ref(e.right, env)
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
    if t is BoolOp:
        vals = [bool(_ref(v, env)) for v in e.values]
        return all(vals) if e.op == "and" else any(vals)
    if t is IfExp:
        test, body, orelse = _ref(e.test, env), _ref(e.body, env), _ref(e.orelse, env)
        return body if test else orelse
    if t is Call:
        args = [_ref(a, env) for a in e.args]
        fns = {"exp": math.exp, "sin": math.sin, "cos": math.cos, "tanh": math.tanh, "abs": abs,
               "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt, "arctan": math.atan,
               "maximum": max, "minimum": min, "max": max, "min": min, "arctan2": math.atan2}
        return fns[e.func](*args)
    raise AssertionError(t)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scalar_trees, st.fixed_dictionaries({n: st.floats(-10, 10, allow_nan=False) for n in _NAMES}))
def test_property_evaluate_matches_python_math(tree, env):
    try:
        expected = _ref(tree, env)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        assume(False)
        return
    assume(not isinstance(expected, complex))
    assume(abs(float(expected)) < 1e12)
    got = evaluate_expression(tree, env)
    assert got.dim() == 0
    g = got.item()
    if isinstance(expected, bool):
        assert bool(g) == expected, to_source(tree)
    else:
        assert math.isclose(float(g), float(expected), rel_tol=1e-9, abs_tol=1e-9), (to_source(tree), g,
                                                                                       expected)
