"""The MDF function table: every function a file may name, defined once.

* :data:`STANDARD_FUNCTIONS`: the MDF function ontology (names and argument lists of
  ``modeci_mdf.functions.standard``, modeci-mdf 0.4.15): the 14 MDF functions with the
  expression each computes (MDF text, as modeci_mdf evaluates it) and its torch
  implementation, which :mod:`torchmdf.ops.mdf_ops` registers as the ``mdf::<name>`` op; the
  ACT-R helpers (``actr.*``) and the DDM integrator (``ddm.*``), known but without a closed
  form.
* :data:`FUNCTIONS`: what an expression may call (``exp(x)``, ``numpy.maximum(a, b)``,
  ``linear(x, slope=2, intercept=1)``): arity, keyword names, the IR op (or small rule) it
  lowers to and the numpy-compat notes the lowering follows.  An op registered as
  ``mdf::<name>`` (``torchmdf.ops.register``) is callable as ``<name>(...)`` too
  (:func:`expression_function`).
* ``onnx::<Op>``: inputs and attributes from ``onnx.defs`` (:func:`onnx_signature`);
  ``aten::<op>``: whatever the op registry lets a file call.

:func:`is_known_function` and :func:`function_argument_names` are the single place that
decides what a ``function:`` may name; they ask the op registry, so a registered op validates,
lowers and runs with no other file touched.  The op registry's file allow-list
(:func:`torchmdf.ops.registry.file_op_refusal`) decides the ``aten::`` ops.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from torchmdf.ir.meta_keys import PYSCALAR

__all__ = ["StandardFunction", "STANDARD_FUNCTIONS", "SYMBOLIC_HINT", "is_known_function", "get_standard_function",
           "function_argument_names", "onnx_schema", "OnnxSignature", "onnx_signature", "FunctionSpec",
           "FUNCTIONS", "expression_function", "numpy_result_type", "registered_op"]


# ---------------------------------------------------------------------------------------------
# The MDF standard functions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StandardFunction:
    """One entry of the MDF function ontology.

    ``kind`` is ``"mdf"`` (closed-form ``expression``, torch ``impl`` registered as the op
    ``mdf::<name>``), ``"actr"`` or ``"ddm"`` (Python helpers in modeci_mdf with no closed
    form: ``expression`` and ``impl`` are None).
    """

    name: str
    arguments: tuple[str, ...]
    expression: str | None
    description: str
    kind: str = "mdf"
    impl: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    #: computed in floating point (exp, trigonometry): numpy gives float64 for integer
    #: arguments, torch float32; files that follow numpy's semantics get float64
    float_args: bool = False

    def parsed(self):
        """The expression as a tree (see :mod:`torchmdf.mdf.expressions`), or None."""
        if self.expression is None:
            return None
        from .expressions import parse_expression

        return parse_expression(self.expression, location=f"standard function '{self.name}'")


def numpy_result_type(*xs: torch.Tensor) -> torch.dtype:
    """The dtype numpy gives an operation on arrays of these dtypes (``np.result_type``):
    unlike torch, an int64 and a float32 array make float64."""
    import numpy as np

    dts = [x.dtype for x in xs]
    if all(d == dts[0] for d in dts):
        return dts[0]
    try:
        npd = [torch.empty((), dtype=d).numpy().dtype for d in dts]
        return torch.from_numpy(np.empty((), dtype=np.result_type(*npd))).dtype
    except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16): torch's own rule
        out = dts[0]
        for d in dts[1:]:
            out = torch.promote_types(out, d)
        return out


def _linear(variable0, slope, intercept):
    """variable0 * slope + intercept"""
    return variable0 * slope + intercept


def _logistic(variable0, gain, bias, offset):
    """1/(1 + exp(-1*gain*(variable0 + bias) + offset))"""
    return 1 / (1 + torch.exp(-1 * gain * (variable0 + bias) + offset))


def _exponential(variable0, scale, rate, bias, offset):
    """scale * exp((rate * variable0) + bias) + offset"""
    return scale * torch.exp((rate * variable0) + bias) + offset


def _matmul(A, B):
    """A @ B (operands of different dtypes promote as in numpy, which modeci_mdf uses: an int64
    and a float64 array multiply in float64, where torch.matmul raises)"""
    if A.dtype != B.dtype:
        t = numpy_result_type(A, B)
        A, B = A.to(t), B.to(t)
    return torch.matmul(A, B)


def _relu(A):
    """A * (A > 0)"""
    return A * (A > 0)


def _scaled(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(variable0, scale):
        return scale * fn(variable0)

    impl.__doc__ = f"scale * {name}(variable0)"
    impl.__name__ = name
    return impl


_V = "variable0"


def _mdf(name: str, args: tuple[str, ...], expr: str, desc: str, impl: Callable[..., Any],
         float_args: bool = False) -> StandardFunction:
    return StandardFunction(name, args, expr, desc, "mdf", impl, float_args)


def _trig(name: str, desc: str, fn: Callable[..., Any]) -> StandardFunction:
    return _mdf(name, (_V, "scale"), f"scale * {name}(variable0)", desc, _scaled(name, fn), float_args=True)


#: name -> entry, in modeci_mdf's registration order.
STANDARD_FUNCTIONS: dict[str, StandardFunction] = {f.name: f for f in [
    _mdf("linear", (_V, "slope", "intercept"), "(variable0 * slope + intercept)",
         "A linear function, calculated from a slope and an intercept", _linear),
    _trig("arctan", "Inverse tangent function", torch.atan),
    _trig("arcsin", "Inverse sine function", torch.asin),
    _trig("arccos", "Inverse cosine function", torch.acos),
    _mdf("logistic", (_V, "gain", "bias", "offset"),
         "1/(1 + exp(-1*gain*(variable0 + bias) + offset))", "Logistic function", _logistic, float_args=True),
    _mdf("exponential", (_V, "scale", "rate", "bias", "offset"),
         "scale * exp((rate * variable0) + bias) + offset", "Exponential function", _exponential,
         float_args=True),
    _trig("sin", "Sine function", torch.sin),
    _trig("cos", "Cosine function", torch.cos),
    _trig("tan", "Tangent function", torch.tan),
    _trig("sinh", "Hyperbolic sine function", torch.sinh),
    _trig("cosh", "Hyperbolic cosine function", torch.cosh),
    _trig("tanh", "Hyperbolic tangent function", torch.tanh),
    _mdf("MatMul", ("A", "B"), "A @ B", "Matrix multiplication", _matmul),
    _mdf("Relu", ("A",), "A * (A > 0)", "Rectified linear function", _relu),
    # ACT-R helpers (modeci_mdf.functions.actr), registered under their bare names.
    *[StandardFunction(n, a, None, "ACT-R helper (modeci_mdf.functions.actr)", "actr") for n, a in [
        ("chunk_to_string", ("chunk",)),
        ("pattern_to_string", ("chunk",)),
        ("change_goal", ("pattern", "curr_goal")),
        ("retrieve_chunk", ("pattern", "dm_chunks", "types")),
        ("match_production", ("production", "context")),
        ("pattern_matching_function", ("productions", "goal", "retrieval")),
        ("update_buffer", ("production", "buffer")),
        ("update_goal", ("production",)),
        ("update_retrieval", ("production",)),
        ("conflict_resolution_function", ("productions",)),
        ("check_termination", ("production",)),
    ]],
    StandardFunction("drift_diffusion_integrator",
                     ("starting_point", "non_decision_time", "drift_rate", "threshold", "noise", "dt"),
                     None, "Euler-Maruyama integration of one drift diffusion trial "
                     "(modeci_mdf.functions.ddm; stochastic)", "ddm"),
]}


#: What to do with a model whose values are ACT-R chunks rather than arrays (said wherever the
#: tensor lowering meets one).
SYMBOLIC_HINT = ("ACT-R models compute on chunks (dicts of text), not tensors: evaluate them with "
                 "torchmdf.execution_engine.EvaluableGraph (or torchmdf.mdf.symbolic.SymbolicGraph), "
                 "which runs them on Python values")


def get_standard_function(name: str) -> StandardFunction | None:
    """The ontology entry for a standard (non-ONNX) function name, or None."""
    return STANDARD_FUNCTIONS.get(name)


# ---------------------------------------------------------------------------------------------
# Functions an expression may call
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function callable inside an expression.

    ``min_args``/``max_args`` bound the positional arity (``max_args=None``: variadic);
    ``keywords`` (MDF standard functions and registered ``mdf::`` ops) are the argument names,
    in positional order, that may also be passed by keyword.  It lowers to the IR op ``op``
    (arguments as inputs, ``attrs`` as attributes), or by ``rule(lowering, args)`` when it is
    more than one op.  ``float_args``: numpy computes it in float64 for integer inputs (the
    numpy-exact lowering casts them; see :class:`~torchmdf.mdf.expression_lowering.ExpressionLowering`).
    """

    name: str
    min_args: int
    max_args: int | None
    keywords: tuple[str, ...] = ()
    op: str | None = None
    attrs: dict | None = None
    rule: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    float_args: bool = False


def _log(L: Any, args: list) -> Any:
    y = L.op("onnx::Log", [args[0]])
    return y if len(args) == 1 else L.op("aten::div.Tensor", [y, L.op("onnx::Log", [args[1]])])


def _square(L: Any, args: list) -> Any:
    return L.op("onnx::Mul", [args[0], args[0]])


def _minmax(L: Any, args: list, name: str) -> Any:
    """One argument: a reduction (``max(a)``); several: element-wise."""
    if len(args) == 1:
        return L.op("onnx::ReduceMax" if name == "max" else "onnx::ReduceMin", [args[0]], {"keepdims": 0})
    return L.op("onnx::Max" if name == "max" else "onnx::Min", args)


def _matmul_call(L: Any, args: list) -> Any:
    """``mdf::MatMul`` promotes mixed dtypes as numpy does; files torchmdf wrote mean onnx::MatMul."""
    return L.op("mdf::MatMul" if L.numpy else "onnx::MatMul", args)


def _standard_call(name: str) -> Callable[..., Any]:
    def rule(L: Any, args: list) -> Any:
        out = L.op(f"mdf::{name}", args)
        if name == "linear" and all(a.meta.get(PYSCALAR) for a in args):
            out.meta[PYSCALAR] = True  # Python arithmetic keeps Python numbers
        return out
    return rule


def _specs() -> dict[str, FunctionSpec]:
    S = FunctionSpec
    out: dict[str, FunctionSpec] = {}
    onnx_unary = {"exp": "Exp", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos", "tan": "Tan",
                  "sinh": "Sinh", "cosh": "Cosh", "tanh": "Tanh", "arcsin": "Asin", "arccos": "Acos",
                  "arctan": "Atan", "arcsinh": "Asinh", "arccosh": "Acosh", "arctanh": "Atanh", "erf": "Erf"}
    for n, o in onnx_unary.items():
        out[n] = S(n, 1, 1, op=f"onnx::{o}", float_args=True)
    for n, o in {"abs": "Abs", "floor": "Floor", "ceil": "Ceil", "sign": "Sign"}.items():
        out[n] = S(n, 1, 1, op=f"onnx::{o}")
    for n in ("log10", "log2", "log1p", "expm1"):
        out[n] = S(n, 1, 1, op=f"aten::{n}", float_args=True)
    for n in ("trunc", "round"):
        out[n] = S(n, 1, 1, op=f"aten::{n}")
    out["square"] = S("square", 1, 1, rule=_square)
    out["float"] = S("float", 1, 1, op="onnx::Cast", attrs={"to": 11})
    out["int"] = S("int", 1, 1, op="onnx::Cast", attrs={"to": 7})
    out["sum"] = S("sum", 1, 1, op="onnx::ReduceSum", attrs={"keepdims": 0})
    out["mean"] = S("mean", 1, 1, op="onnx::ReduceMean", attrs={"keepdims": 0}, float_args=True)
    out["amax"] = S("amax", 1, 1, op="onnx::ReduceMax", attrs={"keepdims": 0})
    out["amin"] = S("amin", 1, 1, op="onnx::ReduceMin", attrs={"keepdims": 0})
    out["log"] = S("log", 1, 2, rule=_log, float_args=True)  # math.log(x[, base])
    out["pow"] = S("pow", 2, 2, op="onnx::Pow")
    out["arctan2"] = S("arctan2", 2, 2, op="aten::atan2", float_args=True)
    out["maximum"] = S("maximum", 2, 2, op="onnx::Max")
    out["minimum"] = S("minimum", 2, 2, op="onnx::Min")
    out["matmul"] = S("matmul", 2, 2, rule=_matmul_call)
    out["dot"] = S("dot", 2, 2, rule=_matmul_call)
    out["hypot"] = S("hypot", 2, 2, op="aten::hypot", float_args=True)
    out["fmod"] = S("fmod", 2, 2, op="aten::fmod.Tensor")
    out["where"] = S("where", 3, 3, op="onnx::Where")
    out["clip"] = S("clip", 3, 3, op="aten::clamp.Tensor")
    for n in ("min", "max"):  # one argument: reduction; several: element-wise
        out[n] = S(n, 1, None, rule=functools.partial(_minmax, name=n))
    # MDF standard functions whose names are not shadowed by a math function (sin(x) is math).
    for n in ("linear", "logistic", "exponential", "MatMul", "Relu"):
        kws = STANDARD_FUNCTIONS[n].arguments
        out[n] = S(n, len(kws), len(kws), kws, rule=_standard_call(n),
                   float_args=n in ("logistic", "exponential"))
    return out


#: Canonical function name -> spec: the functions an expression may call (besides registered
#: ``mdf::`` ops, see :func:`expression_function`).
FUNCTIONS: dict[str, FunctionSpec] = _specs()


def registered_op(name: str) -> Any:
    """The op registry's entry for a name a file writes: ``domain::name`` as is, a bare name
    as ``mdf::<name>`` (the MDF spelling of an MDF-domain op); None if not registered.  Never
    decides ``aten::`` names (the file allow-list does, see :func:`is_known_function`)."""
    from torchmdf.ops import registry

    if not isinstance(name, str) or not name or name.startswith("aten::"):
        return None
    return registry.lookup(name if "::" in name else f"mdf::{name}")


def expression_function(name: str) -> FunctionSpec | None:
    """The spec of a function an expression may call by canonical name: an entry of
    :data:`FUNCTIONS`, else an op registered as ``mdf::<name>`` (its tensor inputs are the
    arguments, by position or keyword); None when it is neither."""
    spec = FUNCTIONS.get(name)
    if spec is not None:
        return spec
    if not name.isidentifier() or name.startswith("_"):
        return None
    d = registered_op(name)
    if d is None or d.input_names is None or d.variadic:
        return None
    kws = tuple(d.input_names)
    return FunctionSpec(name, len(kws), len(kws), kws, op=d.name)


# ---------------------------------------------------------------------------------------------
# ONNX signatures, and what a ``function:`` may name
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def onnx_schema(op: str):
    """The latest ``onnx.defs`` schema of an ONNX op (default domain), or None."""
    import onnx.defs

    try:
        return onnx.defs.get_schema(op) if onnx.defs.has(op) else None
    except Exception:  # onnx raises its own SchemaError for odd names
        return None


@dataclass(frozen=True, slots=True)
class OnnxSignature:
    """What an ONNX op accepts as MDF ``args``: inputs (with which are required, and whether
    the first is variadic) and attributes (with their onnx AttrType name and required flag)."""

    inputs: tuple[str, ...]
    required_inputs: tuple[str, ...]
    variadic: bool
    attributes: dict
    required_attributes: tuple[str, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.inputs) | frozenset(self.attributes)


@functools.lru_cache(maxsize=1024)
def onnx_signature(op: str) -> OnnxSignature | None:
    """The argument names an ``onnx::<op>`` function takes, from its schema; None if unknown."""
    schema = onnx_schema(op)
    if schema is None:
        return None
    opt = type(schema.inputs[0].option) if schema.inputs else None
    inputs, required, variadic = [], [], False
    for i in schema.inputs:
        inputs.append(i.name)
        if opt is not None and i.option == opt.Variadic:
            variadic = True
        if opt is not None and i.option == opt.Single:
            required.append(i.name)
    attrs = {name: a.type.name for name, a in schema.attributes.items()}
    req_attrs = tuple(name for name, a in schema.attributes.items() if a.required)
    return OnnxSignature(tuple(inputs), tuple(required), variadic, attrs, req_attrs)


def is_known_function(name: str) -> bool:
    """Whether ``name`` may appear as a Parameter's or Function's ``function``: an MDF standard
    function (incl. modeci_mdf's ACT-R/DDM helpers), ``onnx::<Op>`` for an op onnx knows, an
    op registered in the op registry (``domain::name``, or a bare name for ``mdf::<name>``),
    or an ``aten::`` op a file may call (:func:`torchmdf.ops.registry.file_op_refusal`)."""
    if not isinstance(name, str) or not name:
        return False
    if name in STANDARD_FUNCTIONS:
        return True
    if name.startswith("onnx::"):
        return onnx_schema(name[6:]) is not None
    if name.startswith("aten::"):  # the file allow-list
        from torchmdf.ops import registry

        return registry.file_op_refusal(name) is None
    return registered_op(name) is not None


def function_argument_names(name: str) -> frozenset[str] | None:
    """The argument names a known function takes, or None when any name is accepted
    (``aten::`` ops, unknown names, registered ops that do not name their inputs)."""
    f = STANDARD_FUNCTIONS.get(name)
    if f is not None:
        return frozenset(f.arguments)
    if name.startswith("onnx::"):
        sig = onnx_signature(name[6:])
        return sig.names if sig is not None else None
    d = registered_op(name)
    if d is None or d.input_names is None or d.variadic or ("::" in name and d.domain in ("mdf", "onnx")):
        return None  # (an "mdf::linear" spelling has always taken any argument names)
    return frozenset(d.input_names) | frozenset(a.name for a in d.attr_schema)
