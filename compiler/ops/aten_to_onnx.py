"""Canonicalization rules: ATen ops -> ONNX (opset 18) ops, exactly.

``RULES`` maps an IR aten op name (``aten::addmm``, ``aten::add.Tensor``) to
``rule(node, rw) -> list[Value | None] | None``: the values that replace the node's outputs
(None for an output nobody reads), or None when this instance has no exact ONNX form (the node
then stays ``aten::``).  ``rw`` is the rewriter of :mod:`torchmdf.passes.canonicalize`:

* ``rw.op(op, inputs, attrs, num_outputs=1)`` -> Value (list for several outputs): a new node
  before the old one (raises, and so rejects the rule, for ``onnx::`` ops when the pass keeps
  ATen spellings);
* ``rw.const(value, dtype=None)`` -> a new constant; ``rw.cast(v, dtype)``;
* ``rw.arg(name)``: a non-tensor argument, with the schema default when it was not passed;
  ``rw.input(i)``: tensor input ``i`` or None; ``rw.used(i)``: is output ``i`` read;
* ``rw.dtype(v)``, ``rw.shape(v)``, ``rw.rank(v)``, ``rw.out_dtype(i)``, ``rw.out_shape(i)``.

The rules mirror onnxscript's torch_lib where that is exact; where torch computes something
in a particular way (``pow(x, 2)`` is ``x * x``, ``hardswish`` clamps ``x + 3``) the rule spells
the same arithmetic so the numerics do not move.  Type promotion is explicit: inputs are cast
to the dtype torch computes in, since ONNX ops want equal input types.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .registry import attach, register_canonicalization

INT64_MAX = 9223372036854775807
Rule = Callable[..., Any]
RULES: dict[str, Rule] = {}

FLOAT_RESULT_OPS = frozenset(
    "exp log sqrt rsqrt sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh sigmoid erf "
    "reciprocal expm1 log1p log2 log10 erfinv exp2 erfc lgamma digamma".split())
"""ATen unary ops whose result is floating point even for integer inputs."""


def rule(*names: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for n in names:
            RULES[n if "::" in n else f"aten::{n}"] = fn
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------


def _promote(a: torch.dtype | None, b: torch.dtype | None) -> torch.dtype | None:
    if a is None:
        return b
    if b is None:
        return a
    return torch.promote_types(a, b)


def _is_float(dt: torch.dtype | None) -> bool:
    return dt is not None and dt.is_floating_point


def _is_int(dt: torch.dtype | None) -> bool:
    return dt is not None and not dt.is_floating_point and not dt.is_complex and dt != torch.bool


def _combine(higher: torch.dtype | None, lower: torch.dtype | None) -> torch.dtype | None:
    """c10's ``combine_categories``: a lower-priority operand only wins a higher category."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_complex:
        return higher
    if lower.is_complex:
        if higher.is_floating_point:
            return torch.complex128 if higher == torch.float64 else torch.complex64
        return lower
    if higher.is_floating_point:
        return higher
    if higher == torch.bool or lower.is_floating_point:
        return torch.promote_types(higher, lower)
    return higher


def result_dtype(tensors: Sequence[tuple[torch.dtype, int]], scalars: Sequence[Any] = ()) -> torch.dtype | None:
    """torch's type promotion (``torch.result_type``) from (dtype, rank) pairs and Python
    scalars: dimensioned tensors before 0-d tensors before wrapped numbers."""
    dim = zero = wrapped = None
    for dt, rank in tensors:
        if rank == 0:
            zero = _promote(zero, dt)
        else:
            dim = _promote(dim, dt)
    for s in scalars:
        if isinstance(s, bool):
            dt = torch.bool
        elif isinstance(s, int):
            dt = torch.int64
        elif isinstance(s, float):
            dt = torch.get_default_dtype()
        elif isinstance(s, complex):
            dt = torch.complex128 if torch.get_default_dtype() == torch.float64 else torch.complex64
        else:
            continue
        wrapped = _promote(wrapped, dt)
    return _combine(dim, _combine(zero, wrapped))


def _common(rw, values: Sequence[Any], scalars: Sequence[Any] = ()) -> torch.dtype | None:
    """The dtype torch computes a binary/ternary op in, or None when an input type is unknown."""
    ts = []
    for v in values:
        if v is None:
            continue
        dt, r = rw.dtype(v), rw.rank(v)
        if dt is None or r is None:
            return None
        ts.append((dt, r))
    return result_dtype(ts, scalars)


_ONNX_OK = {torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
            torch.int32, torch.int64, torch.uint8, torch.bool}


def _onnx_dtype_ok(dt: torch.dtype | None) -> bool:
    return dt in _ONNX_OK


_SCALAR_TYPES = {0: torch.uint8, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.int64,
                 5: torch.float16, 6: torch.float32, 7: torch.float64, 9: torch.complex64,
                 10: torch.complex128, 11: torch.bool, 15: torch.bfloat16}


def dtype_arg(v: Any) -> torch.dtype | None:
    """A ``ScalarType`` argument as a torch dtype (TorchScript graphs carry its enum number)."""
    if v is None or isinstance(v, torch.dtype):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return _SCALAR_TYPES.get(v)
    return None


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _ints(v: Any, n: int) -> list[int]:
    """An int or int list as a list of length ``n`` (torch's ``int[2] padding=0`` form)."""
    if isinstance(v, int):
        return [v] * n
    v = [int(x) for x in v]
    return v * n if len(v) == 1 and n > 1 else v


def _norm(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def _all_ints(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


# ---------------------------------------------------------------------------------------------
# elementwise unary
# ---------------------------------------------------------------------------------------------

_UNARY = {
    "relu": "Relu", "neg": "Neg", "abs": "Abs", "sign": "Sign",
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos", "tan": "Tan",
    "asin": "Asin", "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "tanh": "Tanh",
    "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh", "sigmoid": "Sigmoid", "erf": "Erf",
    "reciprocal": "Reciprocal", "floor": "Floor", "ceil": "Ceil", "round": "Round",
}
_FLOAT_ONLY = {"Exp", "Log", "Sqrt", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh",
               "Asinh", "Acosh", "Atanh", "Sigmoid", "Erf", "Reciprocal", "Floor", "Ceil", "Round"}


def _unary(onnx_name: str, aten_name: str) -> Rule:
    def r(node, rw):
        x = rw.input(0)
        out_dt = rw.out_dtype(0)
        if out_dt is None or out_dt == torch.bool or not _onnx_dtype_ok(out_dt):
            return None
        if onnx_name in ("Floor", "Ceil", "Round") and not out_dt.is_floating_point:
            return [x]  # integer floor/ceil/round is the identity
        if onnx_name in ("Relu", "Neg", "Abs", "Sign") and rw.dtype(x) != out_dt:
            return None
        if onnx_name in _FLOAT_ONLY and not out_dt.is_floating_point:
            return None
        return [rw.op(f"onnx::{onnx_name}", [rw.cast(x, out_dt)])]

    r.__name__ = f"rule_{aten_name}"
    r.__doc__ = f"aten::{aten_name} -> onnx::{onnx_name}"
    return r


for _a, _o in _UNARY.items():
    rule(_a)(_unary(_o, _a))


@rule("rsqrt")
def _rsqrt(node, rw):
    """rsqrt(x) = Pow(x, -0.5): torch's pow kernel takes its rsqrt path for that exponent, so
    the values are identical (1 / sqrt(x) is not: it rounds twice)."""
    dt = rw.out_dtype(0)
    if not _is_float(dt):
        return None
    return [rw.op("onnx::Pow", [rw.cast(rw.input(0), dt), rw.const(-0.5, dtype=dt)])]


@rule("isnan", "isinf")
def _isnan(node, rw):
    x = rw.input(0)
    dt = rw.dtype(x)
    if not _is_float(dt):
        return None
    return [rw.op("onnx::IsNaN" if node.op == "aten::isnan" else "onnx::IsInf", [x])]


@rule("logical_not")
def _logical_not(node, rw):
    out = rw.op("onnx::Not", [rw.cast(rw.input(0), torch.bool)])
    return [rw.cast(out, rw.out_dtype(0) or torch.bool)]


@rule("bitwise_not")
def _bitwise_not(node, rw):
    x = rw.input(0)
    dt = rw.dtype(x)
    if dt == torch.bool:
        return [rw.op("onnx::Not", [x])]
    if _is_int(dt):
        return [rw.op("onnx::BitwiseNot", [x])]
    return None


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------


_FLOAT_ACTIVATIONS: dict[str, tuple[str, Callable[[Any], dict | None] | None]] = {
    "gelu": ("onnx::Gelu", lambda rw: {"approximate": rw.arg("approximate")}),
    "leaky_relu": ("onnx::LeakyRelu", lambda rw: {"alpha": float(rw.arg("negative_slope"))}),
    "celu": ("onnx::Celu", lambda rw: {"alpha": float(rw.arg("alpha"))}),
    "selu": ("onnx::Selu", None),
    "softplus": ("onnx::Softplus", lambda rw: {} if rw.arg("beta") == 1 and rw.arg("threshold") == 20 else None),
    # HardSigmoid(alpha=1/6, beta=1/2) is torch's hardsigmoid: the torch implementation of the
    # ONNX op runs torch's kernel for exactly these attributes, so values do not move
    "hardsigmoid": ("onnx::HardSigmoid", lambda rw: {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "hardswish": ("onnx::HardSwish", None),
}
"""ATen activations that are one ONNX op on floating-point input: (the op, its attributes from
the node's arguments, None where this instance has no ONNX form)."""


def _float_activation(aten_name: str, onnx_op: str, attrs: Callable[[Any], dict | None] | None) -> Rule:
    def r(node, rw):
        if not _is_float(rw.dtype(rw.input(0))):
            return None
        a = attrs(rw) if attrs is not None else {}
        return None if a is None else [rw.op(onnx_op, [rw.input(0)], a)]

    r.__name__ = f"rule_{aten_name}"
    r.__doc__ = f"aten::{aten_name} -> {onnx_op}"
    return r


for _a, (_o, _attrs) in _FLOAT_ACTIVATIONS.items():
    rule(_a)(_float_activation(_a, _o, _attrs))


@rule("normal.Tensor_Tensor", "normal.Tensor_float", "normal.float_Tensor")
def _normal(node, rw):
    """``torch.normal(mean, std)`` = mean + std * N(0, 1) of the result's shape (a model file
    may not name random ATen ops; ONNX RandomNormalLike it may)."""
    mean, std = rw.input(0), rw.input(1)
    dt, shape = rw.out_dtype(0), rw.out_shape(0)
    if dt is None or not _is_float(dt) or shape is None:
        return None
    mean = mean if mean is not None else rw.const(rw.arg("mean"), dtype=dt)
    std = std if std is not None else rw.const(rw.arg("std"), dtype=dt)
    like = next((v for v in (rw.input(0), rw.input(1)) if v is not None and rw.shape(v) == shape
                 and rw.dtype(v) == dt), None)
    if like is None:
        return None
    z = rw.op("onnx::RandomNormalLike", [like])
    return [rw.op("onnx::Add", [rw.cast(mean, dt), rw.op("onnx::Mul", [rw.cast(std, dt), z])])]


@rule("silu")
def _silu(node, rw):
    x = rw.input(0)
    if not _is_float(rw.dtype(x)):
        return None
    return [rw.op("onnx::Mul", [x, rw.op("onnx::Sigmoid", [x])])]


def _clip(rw, x, lo, hi, dt):
    lo_v = None if lo is None else rw.const(lo, dtype=dt)
    hi_v = None if hi is None else rw.const(hi, dtype=dt)
    if lo_v is None and hi_v is None:
        return rw.cast(x, dt)
    return rw.op("onnx::Clip", [rw.cast(x, dt), lo_v, hi_v])


@rule("hardtanh")
def _hardtanh(node, rw):
    dt = rw.out_dtype(0) or rw.dtype(rw.input(0))
    if dt is None or dt == torch.bool:
        return None
    return [_clip(rw, rw.input(0), rw.arg("min_val"), rw.arg("max_val"), dt)]


@rule("relu6")
def _relu6(node, rw):
    dt = rw.dtype(rw.input(0))
    if dt is None or dt == torch.bool:
        return None
    return [_clip(rw, rw.input(0), 0, 6, dt)]


@rule("clamp", "clamp_min", "clamp_max")
def _clamp(node, rw):
    x = rw.input(0)
    base = node.op.split("::")[1]
    lo = rw.arg("min") if base in ("clamp", "clamp_min") else None
    hi = rw.arg("max") if base in ("clamp", "clamp_max") else None
    dt = rw.out_dtype(0) or _common(rw, [x], [s for s in (lo, hi) if s is not None])
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    return [_clip(rw, x, lo, hi, dt)]


@rule("clamp.Tensor", "clamp_min.Tensor", "clamp_max.Tensor")
def _clamp_tensor(node, rw):
    x = rw.input(0)
    base = node.op.split("::")[1].split(".")[0]
    if base == "clamp":
        lo, hi = rw.input(1), rw.input(2)
    elif base == "clamp_min":
        lo, hi = rw.input(1), None
    else:
        lo, hi = None, rw.input(1)
    dt = rw.out_dtype(0) or _common(rw, [x, lo, hi])
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    out = rw.cast(x, dt)
    if lo is not None:
        out = rw.op("onnx::Max", [out, rw.cast(lo, dt)])
    if hi is not None:
        out = rw.op("onnx::Min", [out, rw.cast(hi, dt)])
    return [out]


@rule("elu")
def _elu(node, rw):
    """elu(alpha, scale=1, input_scale=1) is Elu; scale != 1 is Selu; input_scale = 1/alpha is Celu."""
    x = rw.input(0)
    if not _is_float(rw.dtype(x)):
        return None
    alpha, scale, iscale = (float(rw.arg(n)) for n in ("alpha", "scale", "input_scale"))
    if scale == 1.0 and iscale == 1.0:
        return [rw.op("onnx::Elu", [x], {"alpha": alpha})]
    if iscale == 1.0:
        return [rw.op("onnx::Selu", [x], {"alpha": alpha, "gamma": scale})]
    if scale == 1.0 and alpha != 0 and iscale == 1.0 / alpha:
        return [rw.op("onnx::Celu", [x], {"alpha": alpha})]
    return None


@rule("_softmax", "_log_softmax")
def _softmax(node, rw):
    if rw.arg("half_to_float") or not _is_float(rw.dtype(rw.input(0))):
        return None
    name = "onnx::Softmax" if node.op == "aten::_softmax" else "onnx::LogSoftmax"
    return [rw.op(name, [rw.input(0)], {"axis": int(rw.arg("dim"))})]


@rule("softmax.int", "log_softmax.int")
def _softmax_int(node, rw):
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype")) or rw.dtype(rw.input(0))
    if not _is_float(dt):
        return None
    name = "onnx::Softmax" if node.op.startswith("aten::softmax") else "onnx::LogSoftmax"
    return [rw.op(name, [rw.cast(rw.input(0), dt)], {"axis": int(rw.arg("dim"))})]


# ---------------------------------------------------------------------------------------------
# elementwise binary (with torch's type promotion made explicit)
# ---------------------------------------------------------------------------------------------

_ARITH = {"add": "onnx::Add", "sub": "onnx::Sub", "mul": "onnx::Mul", "div": "onnx::Div",
          "maximum": "onnx::Max", "minimum": "onnx::Min", "fmax": None, "fmin": None}


def _binary_operands(node, rw):
    """(a, b, b_is_scalar_value) for Tensor/Scalar overloads."""
    overload = node.op.split(".", 1)[1] if "." in node.op else ""
    a = rw.input(0)
    if overload.startswith("Scalar") or overload == "Scalar":
        return a, rw.arg("other"), True
    return a, rw.input(1), False


def _operand(rw, v, is_scalar: bool, dt: torch.dtype):
    return rw.const(v, dtype=dt) if is_scalar else rw.cast(v, dt)


@rule("add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "mul.Tensor", "mul.Scalar",
      "rsub.Tensor", "rsub.Scalar")
def _add_sub_mul(node, rw):
    base = node.op.split("::")[1].split(".")[0]
    a, b, scalar = _binary_operands(node, rw)
    alpha = rw.arg("alpha") if base in ("add", "sub", "rsub") else 1
    dt = rw.out_dtype(0) or _common(rw, [a] if scalar else [a, b], [b] if scalar else [])
    if dt is None or not _onnx_dtype_ok(dt):
        return None
    A = rw.cast(a, dt)
    B = _operand(rw, b, scalar, dt)
    x, y = (B, A) if base == "rsub" else (A, B)  # rsub(self, other, alpha) = other - alpha * self
    if dt == torch.bool:
        if base == "mul":
            return [rw.op("onnx::And", [x, y])]
        if base == "add" and alpha in (1, True):
            return [rw.op("onnx::Or", [x, y])]
        return None
    if alpha != 1:
        y = rw.op("onnx::Mul", [y, rw.const(alpha, dtype=dt)])
    onnx = {"add": "onnx::Add", "sub": "onnx::Sub", "rsub": "onnx::Sub", "mul": "onnx::Mul"}[base]
    return [rw.op(onnx, [x, y])]


def _div_core(rw, A, B, dt, mode):
    if mode is None:
        return rw.op("onnx::Div", [A, B])
    if mode == "trunc":
        if _is_int(dt):
            return rw.op("onnx::Div", [A, B])  # ONNX integer Div truncates
        q = rw.op("onnx::Div", [A, B])
        neg = rw.op("onnx::Less", [q, rw.const(0, dtype=dt)])
        return rw.op("onnx::Where", [neg, rw.op("onnx::Ceil", [q]), rw.op("onnx::Floor", [q])])
    if mode == "floor" and _is_int(dt):
        # exact: a - mod(a, b) is a multiple of b (Python-style mod has the divisor's sign)
        r = rw.op("onnx::Mod", [A, B], {"fmod": 0})
        return rw.op("onnx::Div", [rw.op("onnx::Sub", [A, r]), B])
    return None  # float floor division: torch's kernel has its own rounding fix-ups


@rule("div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode")
def _div(node, rw):
    a, b, scalar = _binary_operands(node, rw)
    mode = rw.arg("rounding_mode") if node.op.endswith("_mode") else None
    dt = _common(rw, [a] if scalar else [a, b], [b] if scalar else [])
    if dt is None:
        return None
    if mode is None and not (dt.is_floating_point or dt.is_complex):
        dt = torch.get_default_dtype()
    if not _onnx_dtype_ok(dt) or dt == torch.bool:
        return None
    out = _div_core(rw, rw.cast(a, dt), _operand(rw, b, scalar, dt), dt, mode)
    return None if out is None else [out]


@rule("maximum", "minimum", "max.other", "min.other")
def _max_min(node, rw):
    a, b = rw.input(0), rw.input(1)
    dt = rw.out_dtype(0) or _common(rw, [a, b])
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    name = "onnx::Max" if node.op in ("aten::maximum", "aten::max.other") else "onnx::Min"
    return [rw.op(name, [rw.cast(a, dt), rw.cast(b, dt)])]


@rule("remainder.Tensor", "remainder.Scalar", "fmod.Tensor", "fmod.Scalar")
def _mod(node, rw):
    a, b, scalar = _binary_operands(node, rw)
    dt = _common(rw, [a] if scalar else [a, b], [b] if scalar else [])
    is_fmod = node.op.startswith("aten::fmod")
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    if not is_fmod and not _is_int(dt):
        return None  # ONNX Mod needs fmod=1 for floats, and that is not Python's remainder
    return [rw.op("onnx::Mod", [rw.cast(a, dt), _operand(rw, b, scalar, dt)], {"fmod": int(is_fmod)})]


def _pow_special(rw, x, e: Any, dt):
    """torch's pow(tensor, scalar) fast paths, spelled as the ops torch actually runs."""
    if not isinstance(e, (int, float)) or isinstance(e, bool) or not dt.is_floating_point:
        return None
    if e == 1:
        return x
    if e == 2:
        return rw.op("onnx::Mul", [x, x])
    if e == 3:
        return rw.op("onnx::Mul", [rw.op("onnx::Mul", [x, x]), x])
    if e == 0.5:
        return rw.op("onnx::Sqrt", [x])
    if e == -0.5:
        return rw.op("onnx::Pow", [x, rw.const(-0.5, dtype=dt)])  # torch's rsqrt path, as aten's
    if e == -1:
        return rw.op("onnx::Reciprocal", [x])
    if e == -2:
        return rw.op("onnx::Reciprocal", [rw.op("onnx::Mul", [x, x])])
    return None


@rule("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")
def _pow(node, rw):
    overload = node.op.split(".", 1)[1]
    if overload == "Tensor_Scalar":
        x, e = rw.input(0), rw.arg("exponent")
        dt = rw.out_dtype(0) or _common(rw, [x], [e])
        if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
            return None
        xc = rw.cast(x, dt)
        special = _pow_special(rw, xc, e, dt)
        if special is not None:
            return [special]
        # a float exponent stays double: torch raises to the Python float, not its float32 rounding
        edt = torch.float64 if isinstance(e, float) and dt.is_floating_point else dt
        return [rw.op("onnx::Pow", [xc, rw.const(e, dtype=edt)])]
    if overload == "Scalar":
        s, y = rw.arg("self"), rw.input(0)
        dt = rw.out_dtype(0) or _common(rw, [y], [s])
        if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
            return None
        return [rw.op("onnx::Pow", [rw.const(s, dtype=dt), rw.cast(y, dt)])]
    x, y = rw.input(0), rw.input(1)
    dt = rw.out_dtype(0) or _common(rw, [x, y])
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    return [rw.op("onnx::Pow", [rw.cast(x, dt), rw.cast(y, dt)])]


@rule("square")
def _square(node, rw):
    x = rw.input(0)
    dt = rw.out_dtype(0) or rw.dtype(x)
    if dt is None or dt == torch.bool:
        return None
    x = rw.cast(x, dt)
    return [rw.op("onnx::Mul", [x, x])]


_CMP = {"eq": "onnx::Equal", "ne": "onnx::Equal", "lt": "onnx::Less", "le": "onnx::LessOrEqual",
        "gt": "onnx::Greater", "ge": "onnx::GreaterOrEqual"}


@rule(*(f"{n}.{o}" for n in _CMP for o in ("Tensor", "Scalar")))
def _compare(node, rw):
    base = node.op.split("::")[1].split(".")[0]
    a, b, scalar = _binary_operands(node, rw)
    dt = _common(rw, [a] if scalar else [a, b], [b] if scalar else [])
    if dt is None or not _onnx_dtype_ok(dt):
        return None
    if dt == torch.bool and base not in ("eq", "ne"):
        dt = torch.uint8  # ONNX orders numbers only; False < True holds for 0 < 1
    out = rw.op(_CMP[base], [rw.cast(a, dt), _operand(rw, b, scalar, dt)])
    if base == "ne":
        out = rw.op("onnx::Not", [out])
    return [out]


@rule("logical_and", "logical_or", "logical_xor")
def _logical(node, rw):
    name = {"logical_and": "onnx::And", "logical_or": "onnx::Or", "logical_xor": "onnx::Xor"}[
        node.op.split("::")[1]]
    out = rw.op(name, [rw.cast(rw.input(0), torch.bool), rw.cast(rw.input(1), torch.bool)])
    return [rw.cast(out, rw.out_dtype(0) or torch.bool)]


@rule("bitwise_and.Tensor", "bitwise_or.Tensor", "bitwise_xor.Tensor",
      "bitwise_and.Scalar", "bitwise_or.Scalar", "bitwise_xor.Scalar",
      "__and__.Tensor", "__or__.Tensor", "__xor__.Tensor", "__and__.Scalar", "__or__.Scalar", "__xor__.Scalar")
def _bitwise(node, rw):
    base = node.op.split("::")[1].split(".")[0].replace("bitwise_", "").strip("_")
    a, b, scalar = _binary_operands(node, rw)
    dt = _common(rw, [a] if scalar else [a, b], [b] if scalar else [])
    if dt == torch.bool:
        name = {"and": "onnx::And", "or": "onnx::Or", "xor": "onnx::Xor"}[base]
    elif _is_int(dt):
        name = {"and": "onnx::BitwiseAnd", "or": "onnx::BitwiseOr", "xor": "onnx::BitwiseXor"}[base]
    else:
        return None
    return [rw.op(name, [rw.cast(a, dt), _operand(rw, b, scalar, dt)])]


@rule("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(node, rw):
    overload = node.op.split(".", 1)[1]
    cond = rw.input(0)
    if overload == "self":
        x, y, sx, sy = rw.input(1), rw.input(2), False, False
    elif overload == "ScalarSelf":
        x, y, sx, sy = rw.arg("self"), rw.input(1), True, False
    elif overload == "ScalarOther":
        x, y, sx, sy = rw.input(1), rw.arg("other"), False, True
    else:
        x, y, sx, sy = rw.arg("self"), rw.arg("other"), True, True
    dt = rw.out_dtype(0) or _common(rw, [v for v, s in ((x, sx), (y, sy)) if not s],
                                    [v for v, s in ((x, sx), (y, sy)) if s])
    if dt is None or not _onnx_dtype_ok(dt):
        return None
    return [rw.op("onnx::Where", [rw.cast(cond, torch.bool), _operand(rw, x, sx, dt),
                                  _operand(rw, y, sy, dt)])]


@rule("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(node, rw):
    x, mask = rw.input(0), rw.input(1)
    dt = rw.dtype(x)
    if dt is None or not _onnx_dtype_ok(dt):
        return None
    if node.op.endswith("Scalar"):
        val = rw.const(rw.arg("value"), dtype=dt)
    else:
        val = rw.cast(rw.input(2), dt)
    return [rw.op("onnx::Where", [rw.cast(mask, torch.bool), val, x])]


# ---------------------------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------------------------


def _untransposed(rw, v):
    """If ``v`` is a 2-D transpose (aten permute [1, 0], t, onnx Transpose) return its source."""
    p = v.producer if v is not None else None
    if p is None:
        return None
    src = p.inputs[0] if p.inputs else None
    if src is None or rw.rank(src) != 2:
        return None
    if p.op == "aten::t":
        return src
    if p.op == "aten::permute" and [d % 2 for d in p.attrs.get("dims", ())] == [1, 0]:
        return src
    if p.op == "aten::transpose.int" and {p.attrs.get("dim0") % 2, p.attrs.get("dim1") % 2} == {0, 1}:
        return src
    if p.op == "onnx::Transpose" and p.attrs.get("perm", [1, 0]) == [1, 0]:
        return src
    return None


@rule("addmm")
def _addmm(node, rw):
    """addmm(bias, x, W.t()) -> Gemm(x, W, bias, transB=1): the file holds the weight as is."""
    c, a, b = rw.input(0), rw.input(1), rw.input(2)
    if rw.rank(a) != 2 or rw.rank(b) != 2:
        return None
    dt = rw.out_dtype(0)
    if not _is_float(dt) or any(rw.dtype(v) != dt for v in (a, b, c)):
        return None
    beta, alpha = rw.arg("beta"), rw.arg("alpha")
    attrs: dict[str, Any] = {}
    w = _untransposed(rw, b)
    if w is not None:
        b = w
        attrs["transB"] = 1
    if alpha != 1:
        attrs["alpha"] = float(alpha)
    if beta == 0:
        return [rw.op("onnx::Gemm", [a, b], attrs)]
    if beta != 1:
        attrs["beta"] = float(beta)
    return [rw.op("onnx::Gemm", [a, b, c], attrs)]


@rule("mm")
def _mm(node, rw):
    a, b = rw.input(0), rw.input(1)
    w = _untransposed(rw, b)
    if w is not None and rw.rank(a) == 2 and _is_float(rw.dtype(a)):
        return [rw.op("onnx::Gemm", [a, w], {"transB": 1})]
    return [rw.op("onnx::MatMul", [a, b])]


@rule("bmm", "matmul")
def _matmul(node, rw):
    return [rw.op("onnx::MatMul", [rw.input(0), rw.input(1)])]


@rule("linear")
def _linear(node, rw):
    x, w, b = rw.input(0), rw.input(1), rw.input(2)
    r = rw.rank(x)
    if r == 2:
        return [rw.op("onnx::Gemm", [x, w] + ([b] if b is not None else []), {"transB": 1})]
    if r is None or rw.rank(w) != 2:
        return None
    y = rw.op("onnx::MatMul", [x, rw.op("onnx::Transpose", [w], {"perm": [1, 0]})])
    return [y if b is None else rw.op("onnx::Add", [y, b])]


# ---------------------------------------------------------------------------------------------
# convolution, pooling, normalization
# ---------------------------------------------------------------------------------------------


def _conv(rw, x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    wshape = rw.shape(w)
    if wshape is None or rw.rank(x) not in (None, len(wshape)):
        return None  # unknown weight, or an unbatched input (ONNX wants the batch dim)
    nd = len(wshape) - 2
    stride, dilation = _ints(stride, nd), _ints(dilation, nd)
    if isinstance(padding, str):
        if transposed:
            return None
        if padding == "valid":
            pads = [0] * (2 * nd)
        elif padding == "same" and all(isinstance(k, int) for k in wshape[2:]):
            total = [d * (k - 1) for d, k in zip(dilation, wshape[2:])]
            pads = [t // 2 for t in total] + [t - t // 2 for t in total]  # torch puts the odd one last
        else:
            return None
    else:
        p = _ints(padding, nd)
        pads = p + p
    attrs: dict[str, Any] = {"strides": stride, "pads": pads, "dilations": dilation, "group": int(groups)}
    if all(isinstance(k, int) for k in wshape[2:]):
        attrs["kernel_shape"] = list(wshape[2:])
    inputs = [x, w] + ([b] if b is not None else [])
    if transposed:
        attrs["output_padding"] = _ints(output_padding, nd)
        return rw.op("onnx::ConvTranspose", inputs, attrs)
    if output_padding is not None and any(_ints(output_padding, nd)):
        return None
    return rw.op("onnx::Conv", inputs, attrs)


@rule("convolution", "_convolution")
def _convolution(node, rw):
    out = _conv(rw, rw.input(0), rw.input(1), rw.input(2), rw.arg("stride"), rw.arg("padding"),
                rw.arg("dilation"), rw.arg("transposed"), rw.arg("output_padding"), rw.arg("groups"))
    return None if out is None else [out]


@rule("conv1d", "conv2d", "conv3d", "conv1d.padding", "conv2d.padding", "conv3d.padding")
def _conv_nd(node, rw):
    out = _conv(rw, rw.input(0), rw.input(1), rw.input(2), rw.arg("stride"), rw.arg("padding"),
                rw.arg("dilation"), False, None, rw.arg("groups"))
    return None if out is None else [out]


@rule("conv_transpose1d", "conv_transpose2d.input", "conv_transpose3d.input")
def _conv_transpose_nd(node, rw):
    out = _conv(rw, rw.input(0), rw.input(1), rw.input(2), rw.arg("stride"), rw.arg("padding"),
                rw.arg("dilation"), True, rw.arg("output_padding"), rw.arg("groups"))
    return None if out is None else [out]


def _pool_nd(node) -> int:
    name = node.op.split("::")[1]
    return int(name.split("pool")[1][0])


@rule("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
      "max_pool3d_with_indices")
def _max_pool(node, rw):
    if len(node.outputs) > 1 and rw.used(1):
        return None  # the indices have no ONNX MaxPool equivalent in torch's layout
    nd = _pool_nd(node)
    if rw.rank(rw.input(0)) not in (None, nd + 2):
        return None  # unbatched input
    k = _ints(rw.arg("kernel_size"), nd)
    stride = rw.arg("stride")
    s = _ints(stride, nd) if stride else k
    p = _ints(rw.arg("padding"), nd)
    d = _ints(rw.arg("dilation"), nd)
    out = rw.op("onnx::MaxPool", [rw.input(0)], {"kernel_shape": k, "strides": s, "pads": p + p,
                                                 "dilations": d, "ceil_mode": int(bool(rw.arg("ceil_mode")))})
    return [out] + [None] * (len(node.outputs) - 1)


@rule("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(node, rw):
    nd = _pool_nd(node)
    if nd > 1 and rw.arg("divisor_override") is not None:
        return None
    if rw.rank(rw.input(0)) not in (None, nd + 2):
        return None
    k = _ints(rw.arg("kernel_size"), nd)
    stride = rw.arg("stride")
    s = _ints(stride, nd) if stride else k
    p = _ints(rw.arg("padding"), nd)
    return [rw.op("onnx::AveragePool", [rw.input(0)], {
        "kernel_shape": k, "strides": s, "pads": p + p, "ceil_mode": int(bool(rw.arg("ceil_mode"))),
        "count_include_pad": int(bool(rw.arg("count_include_pad")))})]


@rule("adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_avg_pool3d",
      "_adaptive_avg_pool3d")
def _adaptive_avg_pool(node, rw):
    x = rw.input(0)
    out = list(rw.arg("output_size"))
    shape = rw.shape(x)
    if shape is None or len(shape) != len(out) + 2:
        return None
    if all(o == 1 for o in out):
        return [rw.op("onnx::GlobalAveragePool", [x])]
    spatial = shape[2:]
    if all(isinstance(s, int) and o > 0 and s % o == 0 for s, o in zip(spatial, out)):
        k = [s // o for s, o in zip(spatial, out)]
        return [rw.op("onnx::AveragePool", [x], {"kernel_shape": k, "strides": k})]
    dt = rw.dtype(x)
    if len(out) > 2 or not _is_float(dt) or not all(isinstance(s, int) and s > 0 and o > 0
                                                     for s, o in zip(spatial, out)):
        return None
    # any other static size (VGG's 1x1 -> 7x7 on small images, uneven windows): each spatial dim
    # is a MatMul with a constant averaging matrix, exactly torch's windows
    y = x
    if len(out) == 2:
        y = rw.op("onnx::MatMul", [rw.const(_adaptive_windows(spatial[0], out[0], dt)), y])
    return [rw.op("onnx::MatMul", [y, rw.const(_adaptive_windows(spatial[-1], out[-1], dt).T.contiguous())])]


def _adaptive_windows(size: int, out: int, dtype: torch.dtype) -> torch.Tensor:
    """``[out, size]``: row ``i`` averages torch's adaptive window ``floor(i*size/out)`` to
    ``ceil((i+1)*size/out)``."""
    a = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        a[i, start:end] = 1.0 / (end - start)
    return a.to(dtype)


def _bn(rw, x, weight, bias, mean, var, eps):
    c = rw.shape(mean)
    dt = rw.dtype(x)
    if not _is_float(dt):
        return None
    if weight is None or bias is None:
        if c is None or not isinstance(c[0], int):
            return None
        if weight is None:
            weight = rw.const(torch.ones(c[0], dtype=rw.dtype(mean)))
        if bias is None:
            bias = rw.const(torch.zeros(c[0], dtype=rw.dtype(mean)))
    return rw.op("onnx::BatchNormalization", [x, weight, bias, mean, var], {"epsilon": float(eps)})


def _bn_eval(rw):
    """Eval-mode batch norm of the node's (input, weight, bias, mean, var), or None."""
    if rw.arg("training"):
        return None
    mean, var = rw.input(3), rw.input(4)
    if mean is None or var is None:
        return None
    return _bn(rw, rw.input(0), rw.input(1), rw.input(2), mean, var, rw.arg("eps"))


def _layer_norm_op(rw):
    """LayerNormalization of the node's (input, weight, bias) over ``normalized_shape``, or None."""
    x, w, b = rw.input(0), rw.input(1), rw.input(2)
    dt = rw.dtype(x)
    ns = list(rw.arg("normalized_shape"))
    if not _is_float(dt) or not _all_ints(ns):
        return None
    if w is None:
        w = rw.const(torch.ones(ns, dtype=dt))
    ins = [x, w] + ([b] if b is not None else [])
    return rw.op("onnx::LayerNormalization", ins, {"axis": -len(ns), "epsilon": float(rw.arg("eps"))})


def _normalization(make: Callable[[Any], Any], native: bool) -> Rule:
    """The rule whose first output is ``make(rw)``; ``native``: the op also returns saved
    statistics (outputs 1 and 2), which must be unread."""

    def r(node, rw):
        if native and (rw.used(1) or rw.used(2)):
            return None
        out = make(rw)
        return None if out is None else [out, None, None] if native else [out]

    return r


rule("_native_batch_norm_legit_no_training")(_normalization(
    lambda rw: _bn(rw, rw.input(0), rw.input(1), rw.input(2), rw.input(3), rw.input(4), rw.arg("eps")), True))
rule("native_batch_norm", "_native_batch_norm_legit.default", "_native_batch_norm_legit")(_normalization(_bn_eval, True))
rule("batch_norm")(_normalization(_bn_eval, False))
rule("native_layer_norm")(_normalization(_layer_norm_op, True))
rule("layer_norm")(_normalization(_layer_norm_op, False))


@rule("group_norm")
def _group_norm(node, rw):
    """group_norm -> GroupNormalization (opset 21 form: per-channel scale and bias)."""
    x, w, b = rw.input(0), rw.input(1), rw.input(2)
    dt, shape = rw.dtype(x), rw.shape(x)
    if not _is_float(dt) or shape is None or len(shape) < 2 or not isinstance(shape[1], int):
        return None
    c = shape[1]
    if w is None:
        w = rw.const(torch.ones(c, dtype=dt))
    if b is None:
        b = rw.const(torch.zeros(c, dtype=dt))
    if rw.dtype(w) != dt or rw.dtype(b) != dt:
        return None
    return [rw.op("onnx::GroupNormalization", [x, w, b],
                  {"num_groups": int(rw.arg("num_groups")), "epsilon": float(rw.arg("eps"))})]


@rule("native_group_norm")
def _native_group_norm(node, rw):
    if rw.used(1) or rw.used(2):
        return None
    x, w, b = rw.input(0), rw.input(1), rw.input(2)
    dt, shape = rw.dtype(x), rw.shape(x)
    c = rw.arg("C")
    if not _is_float(dt) or shape is None or len(shape) < 2 or not isinstance(c, int):
        return None
    w = rw.const(torch.ones(c, dtype=dt)) if w is None else w
    b = rw.const(torch.zeros(c, dtype=dt)) if b is None else b
    out = rw.op("onnx::GroupNormalization", [x, w, b],
                {"num_groups": int(rw.arg("group")), "epsilon": float(rw.arg("eps"))})
    return [out, None, None]


@rule("prelu", "_prelu_kernel")
def _prelu(node, rw):
    """prelu: the slope applies on dim 1 (ONNX broadcasts from the right: a (C,) slope is
    reshaped to (C, 1, ..., 1) for rank > 2 inputs)."""
    x, w = rw.input(0), rw.input(1)
    dt, r, ws = rw.dtype(x), rw.rank(x), rw.shape(w)
    if not _is_float(dt) or r is None or ws is None or rw.dtype(w) != dt:
        return None
    if not _all_ints(list(ws)):
        return None
    n = math.prod(ws)
    if node.op == "aten::_prelu_kernel" or n == 1 or r <= 2:
        return [rw.op("onnx::PRelu", [x, w])]  # broadcasts like torch here
    if len(ws) != 1:
        return None
    slope = rw.op("onnx::Reshape", [w, rw.const([n] + [1] * (r - 2), dtype=torch.int64)])
    return [rw.op("onnx::PRelu", [x, slope])]


@rule("scaled_dot_product_attention")
def _sdpa(node, rw):
    """softmax(q @ k^T * scale + bias) @ v, with the bias from ``attn_mask`` (bool: where
    False, -inf; float: added) and ``is_causal`` (-inf above the diagonal); dropout 0 only."""
    q, k, v, mask = rw.input(0), rw.input(1), rw.input(2), rw.input(3)
    dt = rw.dtype(q)
    rq, rk, qs = rw.rank(q), rw.rank(k), rw.shape(q)
    if not _is_float(dt) or rq is None or rk is None or rq < 2 or rk < 2 or qs is None:
        return None
    if any(rw.dtype(t) != dt for t in (k, v)) or (rw.arg("dropout_p") or 0.0) != 0.0:
        return None
    ks = rw.shape(k)
    if rw.arg("enable_gqa") and (ks is None or len(ks) < 3 or len(qs) < 3 or ks[-3] != qs[-3]):
        return None
    scale = rw.arg("scale")
    if scale is None:
        if not isinstance(qs[-1], int):
            return None
        scale = 1.0 / math.sqrt(qs[-1])
    kt = rw.op("onnx::Transpose", [k], {"perm": list(range(rk - 2)) + [rk - 1, rk - 2]})
    s = rw.op("onnx::Mul", [rw.op("onnx::MatMul", [q, kt]), rw.const(float(scale), dtype=dt)])
    neg_inf = rw.const(float("-inf"), dtype=dt)
    if rw.arg("is_causal"):
        L, S = qs[-2], ks[-2] if ks is not None else None
        if isinstance(L, int) and isinstance(S, int):
            keep = rw.const(torch.ones(L, S, dtype=torch.bool).tril())
        else:
            lens = rw.op("onnx::Shape", [s], {"start": -2})
            ones = rw.op("onnx::ConstantOfShape", [lens], {"value": torch.ones(1, dtype=torch.int64)})
            tri = rw.op("onnx::Trilu", [ones, rw.const(0, dtype=torch.int64)], {"upper": 0})
            keep = rw.op("onnx::Cast", [tri], {"to": 9})  # BOOL
        s = rw.op("onnx::Where", [keep, s, neg_inf])
    if mask is not None:
        mdt = rw.dtype(mask)
        if mdt == torch.bool:
            s = rw.op("onnx::Where", [mask, s, neg_inf])
        elif mdt == dt:
            s = rw.op("onnx::Add", [s, mask])
        else:
            return None
    p = rw.op("onnx::Softmax", [s], {"axis": -1})
    return [rw.op("onnx::MatMul", [p, v])]


# ---------------------------------------------------------------------------------------------
# shape manipulation
# ---------------------------------------------------------------------------------------------


def _reshape_to(rw, x, size: list[int]):
    if rw.shape(x) is not None and list(rw.shape(x)) == list(size):
        return x
    attrs = {"allowzero": 1} if 0 in size else {}
    return rw.op("onnx::Reshape", [x, rw.const(list(size), dtype=torch.int64)], attrs)


@rule("view", "_unsafe_view", "reshape", "view_copy")
def _view(node, rw):
    size = rw.arg("size") if "size" in node.attrs else rw.arg("shape")
    if not _all_ints(size):
        return None
    if rw.shape(rw.input(0)) is not None and list(rw.shape(rw.input(0))) == list(size):
        return [rw.input(0)]
    return [_reshape_to(rw, rw.input(0), list(size))]


@rule("_reshape_from_tensor")
def _reshape_from_tensor(node, rw):
    shape = rw.cast(rw.input(1), torch.int64)
    return [rw.op("onnx::Reshape", [rw.input(0), shape], {"allowzero": 1})]


@rule("sym_size.int", "size.int")
def _size(node, rw):
    """x.size(d) as a 0-d int64 tensor: Gather(Shape(x), d)."""
    d = rw.arg("dim")
    if not isinstance(d, int):
        return None
    return [rw.op("onnx::Gather", [rw.op("onnx::Shape", [rw.input(0)]), rw.const(d, dtype=torch.int64)],
                  {"axis": 0})]


@rule("_shape_as_tensor")
def _shape_as_tensor(node, rw):
    return [rw.op("onnx::Shape", [rw.input(0)])]


@rule("permute")
def _permute(node, rw):
    dims = list(rw.arg("dims"))
    r = len(dims)
    perm = [_norm(d, r) for d in dims]
    if perm == list(range(r)):
        return [rw.input(0)]
    return [rw.op("onnx::Transpose", [rw.input(0)], {"perm": perm})]


@rule("t", "numpy_T")
def _t(node, rw):
    r = rw.rank(rw.input(0))
    if r is None:
        return None
    if r < 2:
        return [rw.input(0)]
    return [rw.op("onnx::Transpose", [rw.input(0)], {"perm": list(reversed(range(r)))})]


@rule("transpose.int", "swapaxes", "swapdims")
def _transpose(node, rw):
    r = rw.rank(rw.input(0))
    if r is None:
        return None
    if r == 0:
        return [rw.input(0)]
    k0, k1 = {"aten::swapaxes": ("axis0", "axis1")}.get(node.op, ("dim0", "dim1"))
    a, b = _norm(rw.arg(k0), r), _norm(rw.arg(k1), r)
    if a == b:
        return [rw.input(0)]
    perm = list(range(r))
    perm[a], perm[b] = perm[b], perm[a]
    return [rw.op("onnx::Transpose", [rw.input(0)], {"perm": perm})]


@rule("einsum")
def _einsum(node, rw):
    """einsum -> Einsum, the equation in ONNX's spelling: no spaces, lower-case letters (torch
    also takes upper case: each letter gets its own lower-case one)."""
    eq = rw.arg("equation")
    if not isinstance(eq, str) or rw.arg("path") is not None or "..." in eq:
        return None
    ins = [rw.input(i) for i in range(len(node.inputs))]
    dt = rw.out_dtype(0)
    if not _is_float(dt) or any(rw.dtype(v) != dt for v in ins):
        return None
    eq = eq.replace(" ", "")
    letters = sorted({c for c in eq if c.isalpha()})
    if len(letters) > 26:
        return None
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in letters or c.upper() not in letters)
    mapping: dict[str, str] = {}
    for c in letters:
        if c.islower() and c.upper() not in letters:
            mapping[c] = c
    for c in letters:
        if c not in mapping:
            low = c.lower()
            mapping[c] = low if low not in mapping.values() and low not in letters else next(
                x for x in free if x not in mapping.values() and x not in letters)
    return [rw.op("onnx::Einsum", ins, {"equation": "".join(mapping.get(c, c) for c in eq)})]


@rule("cat")
def _cat(node, rw):
    ins = [v for v in node.inputs if v is not None]
    dt = rw.out_dtype(0)
    ranks = [rw.rank(v) for v in ins]
    if dt is None or any(r is None for r in ranks):
        return None
    top = max(ranks)
    # torch skips legacy empty 1-D inputs when concatenating higher-rank tensors
    keep = [v for v, r in zip(ins, ranks) if not (r == 1 and top > 1 and rw.shape(v) == (0,))]
    if len(keep) == 1 and rw.dtype(keep[0]) == dt:
        return [keep[0]]
    return [rw.op("onnx::Concat", [rw.cast(v, dt) for v in keep], {"axis": int(rw.arg("dim"))})]


@rule("stack")
def _stack(node, rw):
    ins = [v for v in node.inputs if v is not None]
    dt = rw.out_dtype(0)
    if dt is None:
        return None
    d = int(rw.arg("dim"))
    axes = rw.const([d], dtype=torch.int64)
    parts = [rw.op("onnx::Unsqueeze", [rw.cast(v, dt), axes]) for v in ins]
    return [parts[0] if len(parts) == 1 else rw.op("onnx::Concat", parts, {"axis": d})]


@rule("slice.Tensor")
def _slice(node, rw):
    x = rw.input(0)
    dim, start, end, step = rw.arg("dim"), rw.arg("start"), rw.arg("end"), rw.arg("step")
    start = 0 if start is None else start
    end = INT64_MAX if end is None else end
    if not all(isinstance(v, int) for v in (dim, start, end, step)):
        return None
    shape = rw.shape(x)
    if step == 1 and start == 0:
        n = shape[dim] if shape is not None and -len(shape) <= dim < len(shape) else None
        if end >= INT64_MAX // 2 or (isinstance(n, int) and end >= n):
            return [x]
    i64 = torch.int64
    return [rw.op("onnx::Slice", [x, rw.const([start], dtype=i64), rw.const([end], dtype=i64),
                                  rw.const([dim], dtype=i64), rw.const([step], dtype=i64)])]


@rule("select.int")
def _select(node, rw):
    idx = rw.arg("index")
    if not isinstance(idx, int):
        return None
    return [rw.op("onnx::Gather", [rw.input(0), rw.const(idx, dtype=torch.int64)], {"axis": int(rw.arg("dim"))})]


@rule("unsqueeze")
def _unsqueeze(node, rw):
    return [rw.op("onnx::Unsqueeze", [rw.input(0), rw.const([int(rw.arg("dim"))], dtype=torch.int64)])]


@rule("squeeze", "squeeze.dim", "squeeze.dims")
def _squeeze(node, rw):
    """ONNX Squeeze fails on a dim that is not 1 where torch ignores it: squeeze only the dims
    known to be 1, and give up where a dim is not known."""
    x = rw.input(0)
    shape = rw.shape(x)
    if shape is None:
        return None
    r = len(shape)
    if node.op == "aten::squeeze":
        dims = list(range(r))
    elif node.op == "aten::squeeze.dim":
        dims = [rw.arg("dim")]
    else:
        dims = list(rw.arg("dim"))
    if r == 0:
        return [x]
    axes = []
    for d in dims:
        d = _norm(d, r)
        if shape[d] == 1:
            axes.append(d)
        elif not isinstance(shape[d], int):
            return None
    if not axes:
        return [x]
    return [rw.op("onnx::Squeeze", [x, rw.const(sorted(set(axes)), dtype=torch.int64)])]


@rule("expand", "expand_copy")
def _expand(node, rw):
    x = rw.input(0)
    size = list(rw.arg("size"))
    if not _all_ints(size):
        return None
    shape = rw.shape(x)
    if shape is not None:
        off = len(size) - len(shape)
        if off == 0 and all(s == -1 or s == d for s, d in zip(size, shape)):
            return [x]
    return [rw.op("onnx::Expand", [x, rw.const([1 if s == -1 else s for s in size], dtype=torch.int64)])]


@rule("repeat")
def _repeat(node, rw):
    x = rw.input(0)
    reps = list(rw.arg("repeats"))
    r = rw.rank(x)
    if r is None or not _all_ints(reps) or len(reps) < r:
        return None
    if len(reps) > r:
        x = rw.op("onnx::Unsqueeze", [x, rw.const(list(range(len(reps) - r)), dtype=torch.int64)])
    if all(n == 1 for n in reps):
        return [x] if len(reps) > r else [rw.input(0)]
    return [rw.op("onnx::Tile", [x, rw.const(reps, dtype=torch.int64)])]


@rule("flip")
def _flip(node, rw):
    dims = list(rw.arg("dims"))
    if not dims:
        return [rw.input(0)]
    k = len(dims)
    i64 = torch.int64
    return [rw.op("onnx::Slice", [rw.input(0), rw.const([-1] * k, dtype=i64), rw.const([-INT64_MAX] * k, dtype=i64),
                                  rw.const(dims, dtype=i64), rw.const([-1] * k, dtype=i64)])]


@rule("flatten.using_ints")
def _flatten(node, rw):
    x = rw.input(0)
    r = rw.rank(x)
    if r is None:
        return None
    if r == 0:
        return [_reshape_to(rw, x, [1])]
    s, e = _norm(rw.arg("start_dim"), r), _norm(rw.arg("end_dim"), r)
    if s == e:
        return [x]
    if e == r - 1:
        if s == 1:
            return [rw.op("onnx::Flatten", [x], {"axis": 1})]
        return [rw.op("onnx::Reshape", [x, rw.const([0] * s + [-1], dtype=torch.int64)])]
    return None


@rule("clone", "alias", "detach", "lift_fresh_copy", "contiguous", "alias_copy", "detach_copy")
def _identity(node, rw):
    return [rw.input(0)]


@rule("_to_copy", "to.dtype", "to.dtype_layout", "to.device", "_to_dim_order_copy", "type_as")
def _to_copy(node, rw):
    """A dtype change is a Cast; device/layout/memory-format changes are no-ops here."""
    x = rw.input(0)
    dt = rw.dtype(rw.input(1)) if node.op == "aten::type_as" else dtype_arg(rw.arg("dtype"))
    if dt is None and rw.arg("dtype") is not None:
        return None
    src = rw.dtype(x)
    if dt is None or dt == src:
        return [x]
    if not _onnx_dtype_ok(dt):
        return None
    return [rw.cast(x, dt)]


@rule("unflatten.int")
def _unflatten(node, rw):
    x = rw.input(0)
    r = rw.rank(x)
    sizes = list(rw.arg("sizes"))
    if r is None or not _all_ints(sizes):
        return None
    d = _norm(rw.arg("dim"), r)
    if d == r - 1:  # leading dims copied with 0 (ONNX copies the dim at the same index)
        return [rw.op("onnx::Reshape", [x, rw.const([0] * d + sizes, dtype=torch.int64)])]
    out = rw.out_shape(0)
    if out is not None and _all_ints(list(out)):
        return [_reshape_to(rw, x, list(out))]
    return None


@rule("fill.Tensor")
def _fill_tensor(node, rw):
    x, val = rw.input(0), rw.input(1)
    dt, shape = rw.dtype(x), rw.shape(x)
    if dt is None:
        return None
    target = rw.const(list(shape), dtype=torch.int64) if shape is not None and _all_ints(list(shape)) \
        else rw.op("onnx::Shape", [x])
    return [rw.op("onnx::Expand", [rw.cast(val, dt), target])]


@rule("native_dropout")
def _native_dropout(node, rw):
    if rw.arg("train") and rw.arg("p") != 0:
        return None
    if rw.used(1):
        return None
    return [rw.input(0), None]


@rule("dropout", "feature_dropout", "alpha_dropout")
def _dropout(node, rw):
    if rw.arg("train") and rw.arg("p") != 0:
        return None
    return [rw.input(0)]


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------


def _reduce(rw, name, x, dims, keepdim, dt=None):
    if dt is not None:
        x = rw.cast(x, dt)
    if rw.rank(x) == 0:  # torch reduces a 0-d tensor over dim 0 or -1; ONNX has no such axis
        return rw.op("onnx::Abs", [x]) if name in ("onnx::ReduceL1", "onnx::ReduceL2") else x
    ins = [x]
    if dims:
        ins.append(rw.const([int(d) for d in dims], dtype=torch.int64))
    return rw.op(name, ins, {"keepdims": int(bool(keepdim))})


def _dims_arg(rw):
    d = rw.arg("dim")
    if d is None:
        return []
    return [d] if isinstance(d, int) else list(d)


@rule("mean.dim", "mean", "sum.dim_IntList", "sum", "prod.dim_int", "prod")
def _mean_sum(node, rw):
    base = node.op.split("::")[1].split(".")[0]
    x = rw.input(0)
    dt = rw.out_dtype(0)
    if dt is None or not _onnx_dtype_ok(dt) or dt == torch.bool:
        return None
    name = {"mean": "onnx::ReduceMean", "sum": "onnx::ReduceSum", "prod": "onnx::ReduceProd"}[base]
    dims = _dims_arg(rw) if "." in node.op else []
    keep = rw.arg("keepdim") if "." in node.op else False
    return [_reduce(rw, name, x, dims, keep, dt)]


@rule("amax", "amin", "max", "min")
def _amax(node, rw):
    x = rw.input(0)
    dt = rw.dtype(x)
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    base = node.op.split("::")[1]
    name = "onnx::ReduceMax" if base in ("amax", "max") else "onnx::ReduceMin"
    if base in ("max", "min"):
        return [_reduce(rw, name, x, [], False)]
    return [_reduce(rw, name, x, list(rw.arg("dim")), rw.arg("keepdim"))]


@rule("max.dim", "min.dim")
def _max_dim(node, rw):
    x = rw.input(0)
    dt = rw.dtype(x)
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    is_max = node.op.startswith("aten::max")
    d, keep = int(rw.arg("dim")), bool(rw.arg("keepdim"))
    vals = _reduce(rw, "onnx::ReduceMax" if is_max else "onnx::ReduceMin", x, [d], keep) if rw.used(0) else None
    idx = None
    if rw.used(1):
        idx = (rw.const(0, dtype=torch.int64) if rw.rank(x) == 0 else
               rw.op("onnx::ArgMax" if is_max else "onnx::ArgMin", [x], {"axis": d, "keepdims": int(keep)}))
    return [vals, idx]


@rule("argmax", "argmin")
def _argmax(node, rw):
    x = rw.input(0)
    dt = rw.dtype(x)
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    name = "onnx::ArgMax" if node.op == "aten::argmax" else "onnx::ArgMin"
    d = rw.arg("dim")
    keep = int(bool(rw.arg("keepdim")))
    if d is None:
        if keep:
            return None
        flat = _reshape_to(rw, x, [-1])
        return [rw.op(name, [flat], {"axis": 0, "keepdims": 0})]
    if rw.rank(x) == 0:
        return [rw.const(0, dtype=torch.int64)]
    return [rw.op(name, [x], {"axis": int(d), "keepdims": keep})]


@rule("any", "any.dim", "any.dims", "all", "all.dim", "all.dims")
def _any_all(node, rw):
    """any = max and all = min over a 0/1 uint8 view (ONNX opset 18 reduces no bools)."""
    x = rw.input(0)
    out_dt = rw.out_dtype(0) or torch.bool
    is_any = node.op.startswith("aten::any")
    dims = _dims_arg(rw) if "." in node.op else []
    keep = bool(rw.arg("keepdim")) if "." in node.op else False
    if node.op.endswith(".dims") and rw.arg("dim") is not None and not dims:
        return None  # an explicit empty dim list: leave torch's reading of it to torch
    u8 = rw.cast(rw.cast(x, torch.bool), torch.uint8)
    red = _reduce(rw, "onnx::ReduceMax" if is_any else "onnx::ReduceMin", u8, dims, keep)
    return [rw.cast(rw.cast(red, torch.bool), out_dt)]


@rule("linalg_vector_norm")
def _vector_norm(node, rw):
    x = rw.input(0)
    dt = rw.out_dtype(0)
    ord_ = rw.arg("ord")
    if not _is_float(dt) or ord_ not in (1, 2, 1.0, 2.0):
        return None
    dims = _dims_arg(rw)
    name = "onnx::ReduceL2" if ord_ == 2 else "onnx::ReduceL1"
    return [_reduce(rw, name, x, dims, rw.arg("keepdim"), dt)]


@rule("cumsum")
def _cumsum(node, rw):
    dt = rw.out_dtype(0)
    if dt is None or dt == torch.bool or not _onnx_dtype_ok(dt):
        return None
    return [rw.op("onnx::CumSum", [rw.cast(rw.input(0), dt), rw.const(int(rw.arg("dim")), dtype=torch.int64)])]


# ---------------------------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------------------------


@rule("embedding")
def _embedding(node, rw):
    return [rw.op("onnx::Gather", [rw.input(0), rw.input(1)], {"axis": 0})]


@rule("index_select")
def _index_select(node, rw):
    idx = rw.input(1)
    r = rw.rank(idx)
    if r is None:
        return None
    if r == 0:
        idx = rw.op("onnx::Unsqueeze", [idx, rw.const([0], dtype=torch.int64)])
    return [rw.op("onnx::Gather", [rw.input(0), idx], {"axis": int(rw.arg("dim"))})]


@rule("index.Tensor")
def _index(node, rw):
    """x[..., idx] with one integer index tensor is a Gather on that axis; x[i0, i1, ...] with
    integer indices on the leading dims is a GatherND over the broadcast indices."""
    idx = list(node.inputs[1:])
    while idx and idx[-1] is None:
        idx.pop()
    present = [(i, v) for i, v in enumerate(idx) if v is not None]
    if not present or any(not _is_int(rw.dtype(v)) for _, v in present):
        return None  # boolean masks give data-dependent shapes
    if len(present) == 1:
        axis, v = present[0]
        return [rw.op("onnx::Gather", [rw.input(0), v], {"axis": axis})]
    if len(present) != len(idx):
        return None
    shapes = [rw.shape(v) for v in idx]
    if any(s is None for s in shapes):
        return None
    if all(s == shapes[0] for s in shapes):
        b = shapes[0]
    elif all(_all_ints(list(s)) for s in shapes):
        try:
            b = tuple(torch.broadcast_shapes(*shapes))
        except RuntimeError:
            return None
    else:
        return None
    return [rw.op("onnx::GatherND", [rw.input(0), _nd_indices(rw, idx, shapes, b)])]


def _nd_indices(rw, idx, shapes, b):
    """The index tensors broadcast to ``b`` and stacked on a last axis: GatherND/ScatterND's
    ``indices`` (``[..., k]``)."""
    parts = []
    for v, s in zip(idx, shapes):
        v = rw.cast(v, torch.int64)
        if s != b:
            v = rw.op("onnx::Expand", [v, rw.const(list(b), dtype=torch.int64)])
        parts.append(rw.op("onnx::Unsqueeze", [v, rw.const([-1], dtype=torch.int64)]))
    return parts[0] if len(parts) == 1 else rw.op("onnx::Concat", parts, {"axis": -1})


@rule("gather")
def _gather(node, rw):
    x, idx = rw.input(0), rw.input(1)
    xs, isz = rw.shape(x), rw.shape(idx)
    if xs is None or isz is None or len(xs) != len(isz):
        return None
    return [rw.op("onnx::GatherElements", [x, idx], {"axis": int(rw.arg("dim"))})]


@rule("split_with_sizes", "split_with_sizes_copy")
def _split_with_sizes(node, rw):
    sizes = list(rw.arg("split_sizes"))
    if not _all_ints(sizes) or len(sizes) != len(node.outputs):
        return None
    outs = rw.op("onnx::Split", [rw.input(0), rw.const(sizes, dtype=torch.int64)],
                 {"axis": int(rw.arg("dim"))}, num_outputs=len(sizes))
    return list(outs) if isinstance(outs, list) else [outs]


# ---------------------------------------------------------------------------------------------
# tensor creation
# ---------------------------------------------------------------------------------------------

_SMALL = 1024
"""Creation ops with at most this many elements become constants; larger ones stay ops."""


def _fill_dtype(rw, fill: Any) -> torch.dtype | None:
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype"))
    if dt is not None:
        return dt
    if isinstance(fill, bool):
        return torch.bool
    if isinstance(fill, int):
        return torch.int64
    if isinstance(fill, float):
        return torch.get_default_dtype()
    return None


def _filled(rw, size, fill, dt, like=None):
    if size is not None and _all_ints(size):
        n = math.prod(size)
        if n <= _SMALL:
            return rw.const(torch.full(list(size), fill, dtype=dt))
        shape = rw.const(list(size), dtype=torch.int64)
    elif like is not None:
        shape = rw.op("onnx::Shape", [like])
    else:
        return None
    if not _onnx_dtype_ok(dt):
        return None
    return rw.op("onnx::ConstantOfShape", [shape], {"value": torch.tensor([fill], dtype=dt)})


@rule("full", "zeros", "ones", "new_full", "new_zeros", "new_ones", "empty.memory_format", "new_empty")
def _full(node, rw):
    base = node.op.split("::")[1].split(".")[0]
    fill = {"zeros": 0, "ones": 1, "new_zeros": 0, "new_ones": 1, "empty": 0, "new_empty": 0}.get(base)
    if fill is None:
        fill = rw.arg("fill_value")
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype"))
    if dt is None and base.startswith("new_"):
        dt = rw.dtype(rw.input(0))
    if dt is None:
        dt = _fill_dtype(rw, fill)
    if dt is None:
        return None
    out = _filled(rw, rw.arg("size"), fill, dt)
    return None if out is None else [out]


@rule("full_like", "zeros_like", "ones_like", "empty_like", "fill.Scalar")
def _full_like(node, rw):
    base = node.op.split("::")[1].split(".")[0]
    x = rw.input(0)
    fill = {"zeros_like": 0, "ones_like": 1, "empty_like": 0}.get(base)
    if fill is None:
        fill = rw.arg("value") if base == "fill" else rw.arg("fill_value")
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype")) or rw.dtype(x)
    if dt is None or isinstance(fill, complex):
        return None
    out = _filled(rw, rw.shape(x), fill, dt, like=x)
    return None if out is None else [out]


@rule("scalar_tensor")
def _scalar_tensor(node, rw):
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype")) or torch.get_default_dtype()
    return [rw.const(torch.tensor(rw.arg("s"), dtype=dt))]


@rule("arange", "arange.start", "arange.start_step")
def _arange(node, rw):
    start = rw.arg("start") if "start" in node.op else 0
    end = rw.arg("end")
    step = rw.arg("step") if node.op.endswith("start_step") else 1
    vals = (start, end, step)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return None
    dt = rw.out_dtype(0) or dtype_arg(rw.arg("dtype"))
    if dt is None:
        dt = torch.int64 if all(isinstance(v, int) for v in vals) else torch.get_default_dtype()
    try:
        n = max(math.ceil((end - start) / step), 0)
    except ZeroDivisionError:
        return None
    if n <= _SMALL:
        return [rw.const(torch.arange(start, end, step, dtype=dt))]
    if not _onnx_dtype_ok(dt) or dt == torch.bool:
        return None
    if not _is_int(dt) and not all(float(v).is_integer() for v in vals):
        return None  # fractional float ranges: torch computes them in double, ONNX may not
    return [rw.op("onnx::Range", [rw.const(start, dtype=dt), rw.const(end, dtype=dt), rw.const(step, dtype=dt)])]


@rule("tril", "triu")
def _trilu(node, rw):
    return [rw.op("onnx::Trilu", [rw.input(0), rw.const(int(rw.arg("diagonal")), dtype=torch.int64)],
                  {"upper": int(node.op == "aten::triu")})]


def _pad_inputs(rw, x, pad: list) -> list:
    """``onnx::Pad``'s ``pads`` (and ``axes``) for torch's ``pad`` list (last dimension first,
    begin/end pairs): pads over every dimension when the rank is known (what modeci_mdf's Pad
    reads: it ignores ``axes``), else pads over the padded dimensions plus ``axes``."""
    n = len(pad) // 2
    begins = [pad[2 * i] for i in range(n)]
    ends = [pad[2 * i + 1] for i in range(n)]
    i64 = torch.int64
    r = rw.rank(x)
    if r is not None and r >= n:
        full_b = [0] * r
        full_e = [0] * r
        for i in range(n):
            full_b[r - 1 - i], full_e[r - 1 - i] = begins[i], ends[i]
        return [rw.const(full_b + full_e, dtype=i64)]
    return [rw.const(begins + ends, dtype=i64), rw.const([-1 - i for i in range(n)], dtype=i64)]


def _onnx_pad(rw, x, pad: list, value: Any = None, mode: str = "constant") -> Any:
    p = _pad_inputs(rw, x, pad)
    v = rw.const(0 if value is None else value, dtype=rw.dtype(x)) if mode == "constant" else None
    ins = [x, p[0], v] + p[1:]
    while ins[-1] is None:
        ins.pop()
    return rw.op("onnx::Pad", ins, {} if mode == "constant" else {"mode": mode})


@rule("constant_pad_nd")
def _constant_pad(node, rw):
    x = rw.input(0)
    pad = list(rw.arg("pad"))
    dt = rw.dtype(x)
    if dt is None or not _all_ints(pad) or len(pad) % 2:
        return None
    if not any(pad):
        return [x]
    return [_onnx_pad(rw, x, pad, rw.arg("value"))]


@rule("reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
      "replication_pad3d")
def _mode_pad(node, rw):
    pad = list(rw.arg("padding"))
    if not _all_ints(pad):
        return None
    return [_onnx_pad(rw, rw.input(0), pad, mode="reflect" if "reflection" in node.op else "edge")]


@rule("pad")
def _pad(node, rw):
    """``aten::pad`` (what TorchScript records for ``F.pad``): constant, reflect and
    replicate modes as ``onnx::Pad`` (circular stays ATen)."""
    x, pad, mode = rw.input(0), list(rw.arg("pad")), rw.arg("mode") or "constant"
    dt = rw.dtype(x)
    onnx_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(mode)
    if dt is None or onnx_mode is None or not _all_ints(pad) or len(pad) % 2:
        return None
    if not any(pad):
        return [x]
    return [_onnx_pad(rw, x, pad, rw.arg("value"), onnx_mode)]


@rule("copy")
def _copy(node, rw):
    """Functional copy: ``src`` broadcast to ``self``'s shape, in ``self``'s dtype."""
    x, src = rw.input(0), rw.input(1)
    dt, shape = rw.dtype(x), rw.shape(x)
    if dt is None:
        return None
    s = rw.cast(src, dt)
    if shape is not None and rw.shape(src) == shape and all(isinstance(d, int) for d in shape):
        return [s]
    target = rw.const(list(shape), dtype=torch.int64) if shape is not None and _all_ints(list(shape)) \
        else rw.op("onnx::Shape", [x])
    return [rw.op("onnx::Expand", [s, target])]


# ---------------------------------------------------------------------------------------------
# more core ATen ops (the coverage sweep, benchmarks/aten_coverage.py)
# ---------------------------------------------------------------------------------------------


@rule("trunc")
def _trunc(node, rw):
    """trunc(x) = Ceil(x) where x < 0 else Floor(x) (exact; integers are their own trunc)."""
    x = rw.input(0)
    dt = rw.dtype(x)
    if _is_int(dt):
        return [x]
    if not _is_float(dt):
        return None
    neg = rw.op("onnx::Less", [x, rw.const(0.0, dtype=dt)])
    return [rw.op("onnx::Where", [neg, rw.op("onnx::Ceil", [x]), rw.op("onnx::Floor", [x])])]


@rule("log2", "log10", "log1p", "expm1")
def _log_exp_variants(node, rw):
    """log2/log10 = Log(x) / ln(base); log1p = Log(1 + x); expm1 = Exp(x) - 1 (as torch.onnx
    writes them: within an ulp or two, less exact than torch's kernels near 0 for log1p/expm1)."""
    dt = rw.out_dtype(0)
    if not _is_float(dt) or not _onnx_dtype_ok(dt):
        return None
    x = rw.cast(rw.input(0), dt)
    base = node.op[6:]
    if base == "expm1":
        return [rw.op("onnx::Sub", [rw.op("onnx::Exp", [x]), rw.const(1.0, dtype=dt)])]
    if base == "log1p":
        return [rw.op("onnx::Log", [rw.op("onnx::Add", [x, rw.const(1.0, dtype=dt)])])]
    ln = math.log(2.0) if base == "log2" else math.log(10.0)
    return [rw.op("onnx::Div", [rw.op("onnx::Log", [x]), rw.const(ln, dtype=dt)])]


@rule("atan2")
def _atan2(node, rw):
    """atan2(y, x) = Atan(y / x), moved by +-pi where x < 0, +-pi/2 where x == 0 (0 at the origin)."""
    dt = rw.out_dtype(0)
    if not _is_float(dt) or not _onnx_dtype_ok(dt):
        return None
    y, x = rw.cast(rw.input(0), dt), rw.cast(rw.input(1), dt)
    zero = rw.const(0.0, dtype=dt)
    base = rw.op("onnx::Atan", [rw.op("onnx::Div", [y, x])])
    y_neg = rw.op("onnx::Less", [y, zero])
    pi = rw.op("onnx::Where", [y_neg, rw.const(-math.pi, dtype=dt), rw.const(math.pi, dtype=dt)])
    left = rw.op("onnx::Add", [base, pi])
    half = rw.op("onnx::Where", [y_neg, rw.const(-math.pi / 2, dtype=dt), rw.const(math.pi / 2, dtype=dt)])
    y_zero = rw.op("onnx::Equal", [y, zero])
    on_axis = rw.op("onnx::Where", [y_zero, zero, half])
    x_neg, x_zero = rw.op("onnx::Less", [x, zero]), rw.op("onnx::Equal", [x, zero])
    return [rw.op("onnx::Where", [x_zero, on_axis, rw.op("onnx::Where", [x_neg, left, base])])]


@rule("var.correction", "var.dim")
def _var(node, rw):
    """var = ReduceSum((x - mean)^2) / (N - correction) over the reduced dims (N known)."""
    x = rw.input(0)
    dt, shape = rw.out_dtype(0), rw.shape(x)
    if not _is_float(dt) or shape is None or not _all_ints(list(shape)):
        return None
    r = len(shape)
    dims = _dims_arg(rw) or list(range(r))
    n = 1
    for d in dims:
        n *= shape[_norm(d, r)] if r else 1
    if node.op == "aten::var.dim":
        corr = 1 if rw.arg("unbiased") in (None, True) else 0
    else:
        c = rw.arg("correction")
        corr = 1 if c is None else c
    if r == 0 or n - corr <= 0:
        return None  # torch's nan/inf conventions
    x = rw.cast(x, dt)
    mean = _reduce(rw, "onnx::ReduceMean", x, dims, True)
    d = rw.op("onnx::Sub", [x, mean])
    ss = _reduce(rw, "onnx::ReduceSum", rw.op("onnx::Mul", [d, d]), dims, bool(rw.arg("keepdim")))
    return [rw.op("onnx::Div", [ss, rw.const(float(n - corr), dtype=dt)])]


@rule("topk", "sort", "sort.stable")
def _topk_sort(node, rw):
    """topk and sort are TopK (ties: lower index first, which is torch's stable sort)."""
    x = rw.input(0)
    shape = rw.shape(x)
    if shape is None or not _onnx_dtype_ok(rw.dtype(x)) or rw.dtype(x) == torch.bool:
        return None
    r = len(shape)
    d = rw.arg("dim")
    d = -1 if d is None else int(d)
    if r == 0:
        return None
    n = shape[_norm(d, r)]
    if node.op == "aten::topk":
        k, largest, srt = int(rw.arg("k")), bool(rw.arg("largest")), bool(rw.arg("sorted"))
        if not srt:
            return None  # torch's order of an unsorted topk is unspecified
    else:
        if not isinstance(n, int):
            return None
        k, largest = n, bool(rw.arg("descending"))
    v, i = rw.op("onnx::TopK", [x, rw.const([k], dtype=torch.int64)],
                 {"axis": d, "largest": int(largest), "sorted": 1}, num_outputs=2)
    return [v, i]


@rule("scatter.src", "scatter.value", "scatter_add", "scatter_reduce.two")
def _scatter(node, rw):
    x, idx = rw.input(0), rw.input(1)
    dt = rw.dtype(x)
    xs, ids = rw.shape(x), rw.shape(idx)
    if dt is None or not _onnx_dtype_ok(dt) or xs is None or ids is None or len(xs) != len(ids) or not xs:
        return None
    if node.op == "aten::scatter.value":
        if not _all_ints(list(ids)):
            return None
        src = rw.op("onnx::Expand", [rw.const(rw.arg("value"), dtype=dt), rw.const(list(ids), dtype=torch.int64)])
    else:
        src = rw.cast(rw.input(2), dt)
        if rw.shape(src) != ids:
            return None  # torch reads a larger src's leading block; ONNX wants equal shapes
    reduction = "none"
    if node.op == "aten::scatter_add":
        reduction = "add"
    elif node.op == "aten::scatter_reduce.two":
        reduction = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min"}.get(rw.arg("reduce"))
        if reduction is None or not rw.arg("include_self"):
            return None
    return [rw.op("onnx::ScatterElements", [x, idx, src], {"axis": int(rw.arg("dim")), "reduction": reduction})]


@rule("index_put")
def _index_put(node, rw):
    """x[i0, i1, ...] = v with integer indices on the leading dims is a ScatterND (``accumulate``:
    reduction add) over the broadcast indices, with ``v`` expanded to the indexed shape."""
    x = rw.input(0)
    idx = [v for v in node.inputs[1:-1]]
    vals = node.inputs[-1]
    xs = rw.shape(x)
    shapes = [rw.shape(v) for v in idx]
    if xs is None or not idx or any(v is None or not _is_int(rw.dtype(v)) for v in idx) \
            or any(s is None or not _all_ints(list(s)) for s in shapes) or not _all_ints(list(xs)):
        return None
    try:
        b = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:
        return None
    ind = _nd_indices(rw, idx, shapes, b)
    upd_shape = list(b) + list(xs[len(idx):])
    dt = rw.dtype(x)
    upd = rw.op("onnx::Expand", [rw.cast(vals, dt), rw.const(upd_shape, dtype=torch.int64)])
    red = "add" if rw.arg("accumulate") else "none"
    return [rw.op("onnx::ScatterND", [x, ind, upd], {"reduction": red})]


def _scatter_along(rw, x, src, dim: int, start: int, stop: int):
    """``x`` with ``x[start:stop]`` along ``dim`` replaced by ``src`` (a Concat of three parts)."""
    i64 = torch.int64
    parts = []
    n = rw.shape(x)[dim]
    if start > 0:
        parts.append(rw.op("onnx::Slice", [x, rw.const([0], dtype=i64), rw.const([start], dtype=i64),
                                           rw.const([dim], dtype=i64)]))
    parts.append(src)
    if stop < n:
        parts.append(rw.op("onnx::Slice", [x, rw.const([stop], dtype=i64), rw.const([n], dtype=i64),
                                           rw.const([dim], dtype=i64)]))
    return parts[0] if len(parts) == 1 else rw.op("onnx::Concat", parts, {"axis": dim})


@rule("slice_scatter", "select_scatter")
def _slice_scatter(node, rw):
    x, src = rw.input(0), rw.input(1)
    xs = rw.shape(x)
    dt = rw.dtype(x)
    if xs is None or not xs or not _all_ints(list(xs)) or dt is None or not _onnx_dtype_ok(dt):
        return None
    r = len(xs)
    dim = _norm(int(rw.arg("dim")), r)
    n = xs[dim]
    src = rw.cast(src, dt)
    if node.op == "aten::select_scatter":
        i = rw.arg("index")
        if not isinstance(i, int) or not -n <= i < n:
            return None
        i %= n
        src = rw.op("onnx::Unsqueeze", [src, rw.const([dim], dtype=torch.int64)])
        return [_scatter_along(rw, x, src, dim, i, i + 1)]
    start, end, step = rw.arg("start"), rw.arg("end"), rw.arg("step")
    start = 0 if start is None else start
    end = n if end is None else end
    if step != 1 or not isinstance(start, int) or not isinstance(end, int):
        return None
    start, end = (max(0, min(n, v + n if v < 0 else v)) for v in (start, end))
    if end <= start:
        return [x]
    return [_scatter_along(rw, x, src, dim, start, end)]


@rule("diagonal")
def _diagonal(node, rw):
    """diagonal(x, offset, dim1, dim2): the two dims moved last and flattened, then a Gather of
    the diagonal's flat positions (known from the static shape)."""
    x = rw.input(0)
    xs = rw.shape(x)
    if xs is None or len(xs) < 2 or not _all_ints(list(xs)):
        return None
    r = len(xs)
    d1, d2, off = _norm(int(rw.arg("dim1")), r), _norm(int(rw.arg("dim2")), r), int(rw.arg("offset"))
    if d1 == d2:
        return None
    n1, n2 = xs[d1], xs[d2]
    row0, col0 = max(-off, 0), max(off, 0)
    length = min(n1 - row0, n2 - col0)
    if length <= 0:
        return None
    rest = [i for i in range(r) if i not in (d1, d2)]
    t = rw.op("onnx::Transpose", [x], {"perm": rest + [d1, d2]})
    flat = _reshape_to(rw, t, [xs[i] for i in rest] + [n1 * n2])
    idx = [(row0 + i) * n2 + col0 + i for i in range(length)]
    return [rw.op("onnx::Gather", [flat, rw.const(idx, dtype=torch.int64)], {"axis": len(rest)})]


@rule("grid_sampler_2d")
def _grid_sampler(node, rw):
    """GridSample: torch's mode and padding codes as ONNX's names."""
    mode = {0: "bilinear", 1: "nearest", 2: "bicubic"}.get(rw.arg("interpolation_mode"))
    pad = {0: "zeros", 1: "border", 2: "reflection"}.get(rw.arg("padding_mode"))
    x, grid = rw.input(0), rw.input(1)
    if mode is None or pad is None or not _is_float(rw.dtype(x)) or rw.dtype(grid) != rw.dtype(x):
        return None
    return [rw.op("onnx::GridSample", [x, grid], {"mode": mode, "padding_mode": pad,
                                                  "align_corners": int(bool(rw.arg("align_corners")))})]


@rule("upsample_nearest2d.vec", "upsample_bilinear2d.vec")
def _upsample(node, rw):
    """Resize: nearest is ``asymmetric``/``floor``, bilinear ``align_corners`` or
    ``pytorch_half_pixel``; the output size as given, else the scale factors."""
    x = rw.input(0)
    xs = rw.shape(x)
    dt = rw.dtype(x)
    if xs is None or len(xs) != 4 or not _is_float(dt):
        return None
    size, scales = rw.arg("output_size"), rw.arg("scale_factors")
    nearest = "nearest" in node.op
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"} \
        if nearest else {"mode": "linear", "coordinate_transformation_mode":
                         "align_corners" if rw.arg("align_corners") else "pytorch_half_pixel"}
    if size is not None:
        if not _all_ints(list(xs[:2])) or not _all_ints(list(size)):
            return None
        sizes = rw.const(list(xs[:2]) + list(size), dtype=torch.int64)
        return [rw.op("onnx::Resize", [x, None, None, sizes], attrs)]
    if scales is None:
        return None
    return [rw.op("onnx::Resize", [x, None, rw.const([1.0, 1.0] + [float(s) for s in scales],
                                                    dtype=torch.float32)], attrs)]


# ---------------------------------------------------------------------------------------------
# recurrent layers
# ---------------------------------------------------------------------------------------------

GRU_GATE_ORDER = (1, 0, 2)
"""ONNX GRU's gates (z, r, h) as indices into torch's (r, z, n)."""
LSTM_GATE_ORDER = (0, 3, 1, 2)
"""ONNX LSTM's gates (i, o, f, c) as indices into torch's (i, f, g, o)."""


def gate_rows(order: Sequence[int], hidden: int) -> torch.Tensor:
    """Row indices that reorder a ``[gates * hidden, ...]`` weight from torch's gate order to
    ONNX's (``order[k]``: the torch gate that is ONNX gate ``k``)."""
    return torch.cat([torch.arange(g * hidden, (g + 1) * hidden) for g in order])


def rnn_as_onnx(kind: str, op: Callable[..., Any], const: Callable[[Any], Any], x: Any, initial: Sequence[Any],
                params: Sequence[Any], *, layers: int, hidden: int, batch_first: bool) -> list[Any]:
    """A unidirectional torch GRU/LSTM (``kind``) with biases as one ONNX ``GRU``/``LSTM`` per
    layer: ``[output, h_n(, c_n)]``.  ``op(name, inputs, attrs, num_outputs)`` and
    ``const(tensor)`` build the nodes (the canonicalization rewriter's, or a frontend's).  The
    weights are reordered by a ``Gather`` of their rows (torch's gate order to ONNX's), the form
    the FX backend recognizes to call ``torch.gru``/``torch.lstm`` on the original weights."""
    order = GRU_GATE_ORDER if kind == "GRU" else LSTM_GATE_ORDER
    rows = const(gate_rows(order, hidden))
    axis0 = const(torch.tensor([0]))
    if batch_first:
        x = op("onnx::Transpose", [x], {"perm": [1, 0, 2]}, 1)
    finals: list[list[Any]] = [[] for _ in initial]
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = params[4 * layer:4 * layer + 4]
        w = op("onnx::Unsqueeze", [op("onnx::Gather", [w_ih, rows], {"axis": 0}, 1), axis0], {}, 1)
        r = op("onnx::Unsqueeze", [op("onnx::Gather", [w_hh, rows], {"axis": 0}, 1), axis0], {}, 1)
        cat = op("onnx::Concat", [op("onnx::Gather", [b_ih, rows], {"axis": 0}, 1),
                                  op("onnx::Gather", [b_hh, rows], {"axis": 0}, 1)], {"axis": 0}, 1)
        b = op("onnx::Unsqueeze", [cat, axis0], {}, 1)
        lo, hi = const(torch.tensor([layer])), const(torch.tensor([layer + 1]))
        states = [op("onnx::Slice", [s, lo, hi, axis0], {}, 1) for s in initial]
        attrs = {"hidden_size": hidden, **({"linear_before_reset": 1} if kind == "GRU" else {})}
        outs = op(f"onnx::{kind}", [x, w, r, b, None, *states], attrs, 1 + len(initial))
        x = op("onnx::Squeeze", [outs[0], const(torch.tensor([1]))], {}, 1)
        for k in range(len(initial)):
            finals[k].append(outs[1 + k])
    if batch_first:
        x = op("onnx::Transpose", [x], {"perm": [1, 0, 2]}, 1)
    return [x] + [f[0] if layers == 1 else op("onnx::Concat", f, {"axis": 0}, 1) for f in finals]


def rnn_supported(layers: Any, has_biases: Any, bidirectional: Any, train: Any, dropout: Any,
                  x_shape: Any, h_shape: Any, n_params: int) -> bool:
    """Whether :func:`rnn_as_onnx` spells this torch RNN call."""
    return (isinstance(layers, int) and bool(has_biases) and not bidirectional
            and not (train and float(dropout) > 0) and x_shape is not None and len(x_shape) == 3
            and h_shape is not None and len(h_shape) == 3 and isinstance(h_shape[2], int)
            and n_params == 4 * layers)


@rule("gru.input")
def _gru(node, rw):
    """Unidirectional ``aten::gru.input`` with biases, no training dropout -> one ONNX ``GRU``
    per layer (``linear_before_reset=1``: torch applies the reset gate after the recurrent
    matmul); see :func:`rnn_as_onnx`."""
    x, hx = rw.input(0), rw.input(1)
    params = [rw.input(i) for i in range(2, len(node.inputs))]
    layers = rw.arg("num_layers")
    if not rnn_supported(layers, rw.arg("has_biases"), rw.arg("bidirectional"), rw.arg("train"), rw.arg("dropout"),
                         rw.shape(x), rw.shape(hx), len(params)) \
            or not _is_float(rw.dtype(x)) or any(rw.dtype(p) != rw.dtype(x) for p in params + [hx]):
        return None

    def op(name, inputs, attrs, n):
        return rw.op(name, inputs, attrs, num_outputs=n)

    return rnn_as_onnx("GRU", op, lambda t: rw.const(t, dtype=torch.int64), x, [hx], params, layers=int(layers),
                       hidden=rw.shape(hx)[2], batch_first=bool(rw.arg("batch_first")))



# ---------------------------------------------------------------------------------------------

for _name, _rule in RULES.items():
    register_canonicalization(_name, _rule)
for _name in FLOAT_RESULT_OPS:
    attach(f"aten::{_name}", type_promotion="int_to_float", keep_existing=True)
for _name in ("logical_not", "isnan", "isinf"):
    attach(f"aten::{_name}", type_promotion="always_bool", keep_existing=True)

__all__ = ["RULES", "rule", "result_dtype", "dtype_arg", "FLOAT_RESULT_OPS", "INT64_MAX"]
