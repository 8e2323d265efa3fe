"""Shape and dtype inference: fill ``value.type`` for every value of a graph.

Two tiers, so it stays fast on huge graphs and still covers every op:

1. per-op shape functions (the registry entries' ``OpDef.shape_fn``; this module attaches
   those of the built-in ONNX and common ATen ops): pure Python on :class:`TensorType`, symbolic dims carried as their
   names ("batch" flows through elementwise ops, matmuls, reshapes that keep it...);
2. otherwise the op's registry impl runs on ``meta`` tensors.  Symbolic and unknown dims are
   replaced by sentinel sizes, twice with different sentinels: an output dim that follows a
   symbol's sentinel in both runs *is* that symbol, one that is equal in both runs is a
   constant, anything else stays unknown.  (This is what a ShapeEnv would tell us for the
   common cases, at a fraction of the cost; results are memoized per op/types/attrs.)

A type the graph already declares (frontends copy torch's) is checked against the inferred
one: a disagreement is a :class:`ShapeError` naming the node.  What cannot be inferred stays
UNKNOWN, silently.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch

from torchmdf.errors import ShapeError, TorchMDFError
from torchmdf.ir import UNKNOWN, Graph, Node, TensorType, Value
from torchmdf.limits import static_numel
from torchmdf.ops import registry
from torchmdf.ops.aten_to_onnx import FLOAT_RESULT_OPS, INT64_MAX, dtype_arg, result_dtype
from torchmdf.ops.onnx_ops import onnx_to_torch_dtype

from ._infra import Pass, PassResult, register_pass

Types = Sequence[TensorType | None]
ShapeFn = registry.ShapeFn


def register_shape_function(name: str, fn: ShapeFn) -> ShapeFn:
    """Make ``fn(types, attrs, node)`` the ``shape_fn`` of op ``name``'s registry entry."""
    registry.attach(name, shape_fn=fn)
    return fn


def _shape(*names: str):
    """The built-in shape function of ``names``: a default (never over one a user set)."""
    return registry.shape_function(*names, keep_existing=True)


# ---------------------------------------------------------------------------------------------
# dim helpers
# ---------------------------------------------------------------------------------------------


def _bdim(a: Any, b: Any) -> Any:
    """Broadcast two dims.  Symbols are assumed != 1 (torch.export assumes the same)."""
    if a == b:
        return a
    if a == 1:
        return b
    if b == 1:
        return a
    if isinstance(a, int):
        if isinstance(b, int):
            raise ShapeError(f"cannot broadcast dims {a} and {b}")
        return a
    if isinstance(b, int):
        return b
    if a is None:
        return b
    if b is None:
        return a
    return None  # two different symbols


def broadcast_shapes(*shapes: tuple | None) -> tuple | None:
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out: list[Any] = [1] * rank
    for s in shapes:
        off = rank - len(s)
        for i, d in enumerate(s):
            out[off + i] = _bdim(out[off + i], d)
    return tuple(out)


def known_shape(v: Value | None) -> tuple | None:
    """The shape ``v`` is known to have: its tensor's where it holds one, else its type's."""
    if v is None:
        return None
    if v.tensor is not None:
        return tuple(v.tensor.shape)
    return v.type.shape


def _const(node: Node | None, i: int) -> torch.Tensor | None:
    """The tensor of input ``i`` when it is a constant (or weight) value."""
    if node is None or i >= len(node.inputs):
        return None
    v = node.inputs[i]
    return None if v is None else v.tensor


def _ints(t: torch.Tensor | None) -> list[int] | None:
    if t is None:
        return None
    return [int(x) for x in t.reshape(-1).tolist()]


def _norm_axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _prod(dims: Sequence[Any]) -> Any:
    return static_numel(dims)


def _rank_only(x: TensorType) -> TensorType:
    """``x``'s dtype and rank, every dim unknown."""
    return TensorType(x.dtype, None if x.shape is None else (None,) * len(x.shape))


def _t(t: TensorType | None) -> TensorType:
    return UNKNOWN if t is None else t


# ---------------------------------------------------------------------------------------------
# ONNX ops
# ---------------------------------------------------------------------------------------------

_ONNX_SAME = (
    "Neg Abs Exp Log Sqrt Reciprocal Sin Cos Tan Sinh Cosh Tanh Asin Acos Atan Asinh Acosh Atanh "
    "Relu Sigmoid Erf Floor Ceil Sign Not Round Softsign Identity LeakyRelu Elu Selu Celu Gelu "
    "Softplus HardSigmoid HardSwish Clip Softmax LogSoftmax Hardmax Trilu CumSum Dropout "
    "BitwiseNot LpNormalization InstanceNormalization BatchNormalization LayerNormalization GroupNormalization PRelu "
    "Mish ThresholdedRelu Shrink"
).split()


@_shape(*(f"onnx::{n}" for n in _ONNX_SAME))
def _same(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [_t(types[0])]


@_shape("onnx::Add", "onnx::Sub", "onnx::Mul", "onnx::Div", "onnx::Pow", "onnx::Mod",
        "onnx::Max", "onnx::Min", "onnx::Sum", "onnx::Mean", "onnx::BitwiseAnd", "onnx::BitwiseOr",
        "onnx::BitwiseXor", "mdf::linear", "mdf::Relu")
def _bcast_same(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    ts = [_t(t) for t in types]
    shape = ts[0].shape if all(t.shape == ts[0].shape for t in ts) else broadcast_shapes(*(t.shape for t in ts))
    return [TensorType(_mixed_dtype(ts, node), shape)]


def _mixed_dtype(ts: list[TensorType], node: Node | None) -> torch.dtype | None:
    """Valid ONNX has one dtype for all inputs.  The IR's ONNX ops run with torch semantics,
    so mixed inputs (as an MDF expression gives, ``1 + x``) promote as torch does; Pow keeps
    the base's dtype, as its implementation does."""
    if node is not None and node.op == "onnx::Pow":
        return ts[0].dtype  # the base's, known or not (never the exponent's)
    known = [t.dtype for t in ts if t.dtype is not None]
    if len(known) != len(ts):  # an unknown input may promote the result (f32 + an unknown f64 is f64)
        return None
    if all(d == known[0] for d in known):
        return known[0]
    if any(t.shape is None for t in ts):
        return None
    from torchmdf.ops.aten_to_onnx import result_dtype

    return result_dtype([(t.dtype, len(t.shape)) for t in ts])


@_shape("onnx::Equal", "onnx::Less", "onnx::Greater", "onnx::LessOrEqual", "onnx::GreaterOrEqual",
        "onnx::And", "onnx::Or", "onnx::Xor")
def _compare(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    a, b = _t(types[0]), _t(types[1])
    return [TensorType(torch.bool, broadcast_shapes(a.shape, b.shape))]


@_shape("onnx::IsNaN", "onnx::IsInf")
def _is_pred(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(torch.bool, _t(types[0]).shape)]


@_shape("onnx::Where")
def _where(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    c, x, y = (_t(t) for t in types)
    return [TensorType(x.dtype or y.dtype, broadcast_shapes(c.shape, x.shape, y.shape))]


@_shape("onnx::Cast")
def _cast(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(onnx_to_torch_dtype(attrs["to"]), _t(types[0]).shape)]


@_shape("onnx::CastLike")
def _cast_like(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(_t(types[1]).dtype, _t(types[0]).shape)]


def _contract(k1: Any, k2: Any, what: str) -> None:
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        raise ShapeError(f"{what}: the inner dims differ ({k1} and {k2})")


def _matmul_shape(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None or b is None or not a or not b:
        return None
    _contract(a[-1], b[0] if len(b) == 1 else b[-2], f"cannot multiply shapes {list(a)} and {list(b)}")
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    batch = broadcast_shapes(a[:-2], b[:-2])
    return None if batch is None else batch + (a[-2], b[-1])


@_shape("onnx::MatMul", "mdf::MatMul", "aten::mm", "aten::bmm", "aten::matmul")
def _matmul(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    a, b = _t(types[0]), _t(types[1])
    if node is not None and node.op == "mdf::MatMul":  # numpy's promotion: both dtypes must be known
        from torchmdf.mdf.functions import numpy_result_type

        dt = None if a.dtype is None or b.dtype is None else \
            numpy_result_type(torch.empty((), dtype=a.dtype), torch.empty((), dtype=b.dtype))
        return [TensorType(dt, _matmul_shape(a.shape, b.shape))]
    return [TensorType(a.dtype or b.dtype, _matmul_shape(a.shape, b.shape))]


@_shape("onnx::Gemm")
def _gemm(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    a, b = _t(types[0]), _t(types[1])
    if a.shape is None or b.shape is None or len(a.shape) != 2 or len(b.shape) != 2:
        return [TensorType(a.dtype, None)]
    m = a.shape[1] if attrs.get("transA") else a.shape[0]
    n = b.shape[0] if attrs.get("transB") else b.shape[1]
    _contract(a.shape[0] if attrs.get("transA") else a.shape[1], b.shape[1] if attrs.get("transB") else b.shape[0],
              f"Gemm cannot multiply shapes {list(a.shape)} and {list(b.shape)}")
    return [TensorType(a.dtype, (m, n))]


def _pool_out(size: Any, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> Any:
    """Output size of a conv/pool window (torch's rule: a last window starting in the right
    padding is dropped in ceil mode)."""
    if not isinstance(size, int):
        return None
    span = size + pb + pe - d * (k - 1) - 1
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + pb:
            out -= 1
    else:
        out = span // s + 1
    return out


def _window(types: Types, attrs: dict, kernel: Sequence[int] | None, ceil_mode: bool, dtype=None,
            out_channels: Any = "same") -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None or kernel is None:
        return [TensorType(dtype or x.dtype, None if x.shape is None else None)]
    nd = len(kernel)
    if len(x.shape) != nd + 2:
        return [TensorType(dtype or x.dtype, None)]
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    spatial: list[Any] = []
    for i in range(nd):
        size = x.shape[2 + i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            spatial.append(-(-size // strides[i]) if isinstance(size, int) else None)
        elif auto == "VALID":
            spatial.append(_pool_out(size, kernel[i], strides[i], 0, 0, dil[i], ceil_mode))
        else:
            spatial.append(_pool_out(size, kernel[i], strides[i], pads[i], pads[i + nd], dil[i], ceil_mode))
    c = x.shape[1] if out_channels == "same" else out_channels
    return [TensorType(dtype or x.dtype, (x.shape[0], c, *spatial))]


@_shape("onnx::Conv")
def _conv(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    w = _t(types[1])
    if w.shape is None:
        return [TensorType(_t(types[0]).dtype, None)]
    kernel = attrs.get("kernel_shape") or list(w.shape[2:])
    if not all(isinstance(k, int) for k in kernel):
        return [TensorType(_t(types[0]).dtype, None)]
    return _window(types, attrs, kernel, False, out_channels=w.shape[0])


@_shape("onnx::ConvTranspose")
def _conv_transpose(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    x, w = _t(types[0]), _t(types[1])
    if x.shape is None or w.shape is None or attrs.get("output_shape") or \
            attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    nd = len(w.shape) - 2
    group = attrs.get("group", 1)
    kernel = attrs.get("kernel_shape") or list(w.shape[2:])
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    opad = list(attrs.get("output_padding") or [0] * nd)
    spatial = []
    for i in range(nd):
        s = x.shape[2 + i]
        k = kernel[i]
        spatial.append((s - 1) * strides[i] - pads[i] - pads[i + nd] + dil[i] * (k - 1) + opad[i] + 1
                       if isinstance(s, int) and isinstance(k, int) else None)
    c = w.shape[1] * group if isinstance(w.shape[1], int) else None
    return [TensorType(x.dtype, (x.shape[0], c, *spatial))]


@_shape("onnx::MaxPool", "onnx::AveragePool")
def _pool(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return _window(types, attrs, attrs.get("kernel_shape"), bool(attrs.get("ceil_mode", 0)))


@_shape("onnx::GlobalAveragePool", "onnx::GlobalMaxPool")
def _global_pool(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None or len(x.shape) < 2:
        return [TensorType(x.dtype, None)]
    return [TensorType(x.dtype, x.shape[:2] + (1,) * (len(x.shape) - 2))]


def reshape_shape(in_shape: tuple | None, target: Sequence[int], allowzero: bool = False) -> tuple | None:
    """Output shape of a reshape to ``target`` (ONNX 0 = copy unless allowzero, -1 = infer),
    keeping symbols that the reshape carries through."""
    out: list[Any] = []
    neg = -1
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if in_shape is None or i >= len(in_shape):
                return None
            out.append(in_shape[i])
        elif d == -1:
            neg = i
            out.append(-1)
        else:
            out.append(d)
    if neg < 0:
        return tuple(out)
    if in_shape is None:
        out[neg] = None
        return tuple(out)
    # cancel what input and output share, then the rest must divide
    rest_in = list(in_shape)
    known_out = [d for i, d in enumerate(out) if i != neg]
    num, den = 1, 1
    for d in known_out:
        if d in rest_in and not isinstance(d, int):
            rest_in.remove(d)
        elif isinstance(d, int):
            den *= d
        else:
            out[neg] = None
            return tuple(out)
    syms = [d for d in rest_in if not isinstance(d, int)]
    for d in rest_in:
        if isinstance(d, int):
            num *= d
    if not syms:
        out[neg] = num // den if den and num % den == 0 else None
    elif len(syms) == 1 and syms[0] is not None and num == den:
        out[neg] = syms[0]
    else:
        out[neg] = None
    return tuple(out)


@_shape("onnx::Reshape")
def _reshape(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, target = _t(types[0]), _ints(_const(node, 1))
    if target is None:
        s = _t(types[1]).shape
        rank = s[0] if s is not None and len(s) == 1 and isinstance(s[0], int) else None
        return [TensorType(x.dtype, None if rank is None else (None,) * rank)]
    return [TensorType(x.dtype, reshape_shape(x.shape, target, bool(attrs.get("allowzero", 0))))]


@_shape("onnx::Flatten")
def _flatten(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [TensorType(x.dtype, (None, None))]
    axis = _norm_axis(attrs.get("axis", 1), len(x.shape))
    a, b = x.shape[:axis], x.shape[axis:]
    pa = _prod(a)
    pb = _prod(b)
    if pa is None and len(a) == 1:
        pa = a[0]
    if pb is None and len(b) == 1:
        pb = b[0]
    return [TensorType(x.dtype, (pa, pb))]


@_shape("onnx::Transpose")
def _transpose(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [x]
    perm = attrs.get("perm") or list(reversed(range(len(x.shape))))
    return [TensorType(x.dtype, tuple(x.shape[p] for p in perm))]


@_shape("onnx::Concat")
def _concat(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    ts = [_t(t) for t in types]
    dtype = next((t.dtype for t in ts if t.dtype is not None), None)
    shapes = [t.shape for t in ts]
    if any(s is None for s in shapes):
        rank = next((len(s) for s in shapes if s is not None), None)
        return [TensorType(dtype, None if rank is None else (None,) * rank)]
    rank = len(shapes[0])
    axis = _norm_axis(attrs["axis"], rank)
    out: list[Any] = []
    for i in range(rank):
        ds = [s[i] for s in shapes]
        if i == axis:
            out.append(sum(ds) if all(isinstance(d, int) for d in ds) else None)
        else:
            out.append(next((d for d in ds if isinstance(d, int)), ds[0]))
    return [TensorType(dtype, tuple(out))]


def _slice_len(n: Any, s: int, e: int, st: int) -> Any:
    if isinstance(n, int):
        return len(range(n)[slice(s, e, st)])
    if st == 1 and s == 0 and e >= INT64_MAX // 2:
        return n
    return None


@_shape("onnx::Slice")
def _slice(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    starts, ends = _ints(_const(node, 1)), _ints(_const(node, 2))
    if x.shape is None or starts is None or ends is None:
        return [_rank_only(x)]
    rank = len(x.shape)
    axes = _ints(_const(node, 3)) if len(node.inputs) > 3 and node.inputs[3] is not None else list(range(len(starts)))
    steps = _ints(_const(node, 4)) if len(node.inputs) > 4 and node.inputs[4] is not None else [1] * len(starts)
    if axes is None or steps is None:
        return [TensorType(x.dtype, (None,) * rank)]
    out = list(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _norm_axis(a, rank)
        out[a] = _slice_len(x.shape[a], s, e, st)
    return [TensorType(x.dtype, tuple(out))]


@_shape("onnx::Gather")
def _gather(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, idx = _t(types[0]), _t(types[1])
    if x.shape is None or idx.shape is None:
        return [TensorType(x.dtype, None)]
    a = _norm_axis(attrs.get("axis", 0), len(x.shape))
    return [TensorType(x.dtype, x.shape[:a] + idx.shape + x.shape[a + 1:])]


@_shape("onnx::GatherND")
def _gather_nd(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, idx = _t(types[0]), _t(types[1])
    b = attrs.get("batch_dims", 0)
    if x.shape is None or idx.shape is None or not isinstance(idx.shape[-1], int):
        return [TensorType(x.dtype, None)]
    return [TensorType(x.dtype, idx.shape[:-1] + x.shape[b + idx.shape[-1]:])]


@_shape("onnx::GatherElements")
def _gather_elements(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(_t(types[0]).dtype, _t(types[1]).shape)]


@_shape("onnx::Squeeze")
def _squeeze(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [x]
    if len(types) < 2 or types[1] is None:
        if all(isinstance(d, int) for d in x.shape):
            return [TensorType(x.dtype, tuple(d for d in x.shape if d != 1))]
        return [TensorType(x.dtype, None)]
    axes = _ints(_const(node, 1))
    if axes is None:
        return [TensorType(x.dtype, None)]
    drop = {_norm_axis(a, len(x.shape)) for a in axes}
    if any(isinstance(x.shape[i], int) and x.shape[i] != 1 for i in drop if i < len(x.shape)):
        raise ShapeError(f"Squeeze: axes {sorted(drop)} of shape {x.shape} are not all 1")
    return [TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in drop))]


@_shape("onnx::Unsqueeze")
def _unsqueeze(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, axes = _t(types[0]), _ints(_const(node, 1))
    if x.shape is None or axes is None:
        return [TensorType(x.dtype, None)]
    rank = len(x.shape) + len(axes)
    ins = {_norm_axis(a, rank) for a in axes}
    it = iter(x.shape)
    return [TensorType(x.dtype, tuple(1 if i in ins else next(it) for i in range(rank)))]


@_shape("onnx::Expand")
def _expand(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, target = _t(types[0]), _ints(_const(node, 1))
    if target is None:
        return [TensorType(x.dtype, None)]
    if any(d < 0 for d in target):
        raise ShapeError(f"Expand: shape {target} has a negative entry")
    return [TensorType(x.dtype, broadcast_shapes(x.shape, tuple(target)))]


@_shape("onnx::Tile")
def _tile(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, reps = _t(types[0]), _ints(_const(node, 1))
    if x.shape is None or reps is None:
        return [_rank_only(x)]
    if len(reps) != len(x.shape):
        raise ShapeError(f"Tile: repeats has {len(reps)} entries for an input of rank {len(x.shape)}")
    return [TensorType(x.dtype, tuple(d * r if isinstance(d, int) else (d if r == 1 else None)
                                      for d, r in zip(x.shape, reps)))]


@_shape("onnx::Shape")
def _shape_op(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [TensorType(torch.int64, (None,))]
    n = len(range(len(x.shape))[attrs.get("start", 0):attrs.get("end")])
    return [TensorType(torch.int64, (n,))]


@_shape("onnx::Size")
def _size_op(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(torch.int64, ())]


@_shape("onnx::Split")
def _split(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    x = _t(types[0])
    n_out = len(node.outputs) if node is not None else attrs.get("num_outputs")
    if n_out is None:
        return None
    if x.shape is None:
        return [TensorType(x.dtype, None)] * n_out
    axis = _norm_axis(attrs.get("axis", 0), len(x.shape))
    sizes = _ints(_const(node, 1)) if len(types) > 1 and types[1] is not None else None
    if sizes is None:
        n = x.shape[axis]
        if isinstance(n, int):
            chunk = -(-n // n_out)
            sizes = [min(chunk, max(n - i * chunk, 0)) for i in range(n_out)]
        else:
            sizes = [None] * n_out
    return [TensorType(x.dtype, x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes]


@_shape("onnx::ConstantOfShape")
def _constant_of_shape(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    v = attrs.get("value")
    dtype = torch.float32 if v is None else torch.as_tensor(v).dtype  # as the impl: [0] is int64
    shape = _ints(_const(node, 0))
    if shape is None:
        s = _t(types[0]).shape
        return [TensorType(dtype, (None,) * s[0] if s and isinstance(s[0], int) else None)]
    return [TensorType(dtype, tuple(shape))]


@_shape("onnx::Range")
def _range(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    dtype = _t(types[0]).dtype
    vals = [_const(node, i) for i in range(3)]
    if any(v is None for v in vals):
        return [TensorType(dtype, (None,))]
    start, limit, delta = (float(v) for v in vals)
    return [TensorType(dtype, (max(math.ceil((limit - start) / delta), 0),))]


@_shape("onnx::Pad")
def _pad(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x, pads = _t(types[0]), _ints(_const(node, 1))
    if x.shape is None or pads is None:
        return [_rank_only(x)]
    rank = len(x.shape)
    nd = len(pads) // 2
    axes = _ints(_const(node, 3)) if len(types) > 3 and types[3] is not None else list(range(nd))
    if axes is None:
        return [TensorType(x.dtype, (None,) * rank)]
    out = list(x.shape)
    for i, a in enumerate(axes):
        a = _norm_axis(a, rank)
        add = pads[i] + pads[i + nd]
        out[a] = out[a] + add if isinstance(out[a], int) else (out[a] if add == 0 else None)
    return [TensorType(x.dtype, tuple(out))]


def _reduced(x: TensorType, axes: list[int] | None, keep: bool, noop: bool = False) -> TensorType:
    if x.shape is None:
        return TensorType(x.dtype, None)
    rank = len(x.shape)
    if not axes:
        if noop:
            return x
        axes = list(range(rank))
    ax = {_norm_axis(a, rank) for a in axes}
    if keep:
        return TensorType(x.dtype, tuple(1 if i in ax else d for i, d in enumerate(x.shape)))
    return TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in ax))


@_shape("onnx::ReduceMean", "onnx::ReduceSum", "onnx::ReduceMax", "onnx::ReduceMin", "onnx::ReduceProd",
        "onnx::ReduceL1", "onnx::ReduceL2", "onnx::ReduceSumSquare", "onnx::ReduceLogSumExp",
        "onnx::ReduceLogSum")
def _reduce(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    x = _t(types[0])
    has_axes = len(types) > 1 and types[1] is not None
    axes = _ints(_const(node, 1)) if has_axes else []
    if axes is None:
        keep = bool(attrs.get("keepdims", 1))
        if keep:
            return [_rank_only(x)]
        return [TensorType(x.dtype, None)]
    return [_reduced(x, axes, bool(attrs.get("keepdims", 1)), bool(attrs.get("noop_with_empty_axes", 0)))]


@_shape("onnx::ArgMax", "onnx::ArgMin")
def _argmax(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    r = _reduced(_t(types[0]), [attrs.get("axis", 0)], bool(attrs.get("keepdims", 1)))
    return [TensorType(torch.int64, r.shape)]


@_shape("onnx::Constant")
def _constant(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    try:
        from torchmdf.ops.onnx_ops import constant

        return [TensorType.of(constant(**attrs))]
    except Exception:  # noqa: BLE001 - unusual attribute form: leave it to the fallback
        return None


# ---------------------------------------------------------------------------------------------
# ATen ops (the common ones; the rest go to the meta fallback)
# ---------------------------------------------------------------------------------------------

_ATEN_SAME_DTYPE = (
    "relu neg abs clone alias detach lift_fresh_copy sign floor ceil round trunc hardtanh leaky_relu "
    "elu gelu silu hardswish hardsigmoid relu6 celu selu mish softplus logical_not bitwise_not "
    "_softmax _log_softmax tril triu dropout"
).split()


@_shape(*(f"aten::{n}" for n in _ATEN_SAME_DTYPE + sorted(FLOAT_RESULT_OPS) + ["isnan", "isinf"]))
def _aten_unary(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    """The input's shape; the dtype as the entry's ``type_promotion`` says."""
    x = _t(types[0])
    d = registry.lookup(node.op) if node is not None else None
    promotion = d.type_promotion if d is not None else None
    if promotion == "always_bool":
        return [TensorType(torch.bool, x.shape)]
    dt = x.dtype
    if promotion == "int_to_float" and dt is not None and not (dt.is_floating_point or dt.is_complex):
        return [TensorType(torch.get_default_dtype(), x.shape)]
    return [x]


_ATEN_ARITH = ("add.Tensor", "sub.Tensor", "mul.Tensor", "maximum", "minimum", "pow.Tensor_Tensor",
               "remainder.Tensor", "fmod.Tensor", "bitwise_and.Tensor", "bitwise_or.Tensor",
               "bitwise_xor.Tensor", "atan2", "div.Tensor_mode")
_ATEN_ARITH_SCALAR = ("add.Scalar", "sub.Scalar", "mul.Scalar", "pow.Tensor_Scalar", "remainder.Scalar",
                      "fmod.Scalar", "bitwise_and.Scalar", "bitwise_or.Scalar", "bitwise_xor.Scalar",
                      "div.Scalar_mode")
_ATEN_CMP = ("eq.Tensor", "ne.Tensor", "lt.Tensor", "le.Tensor", "gt.Tensor", "ge.Tensor",
             "logical_and", "logical_or", "logical_xor")
_ATEN_CMP_SCALAR = ("eq.Scalar", "ne.Scalar", "lt.Scalar", "le.Scalar", "gt.Scalar", "ge.Scalar")


def _dtype_of_binary(node: Node | None, types: Types, attrs: dict, scalar_attr: str | None) -> Any:
    ts = [(t.dtype, t.rank) for t in (_t(x) for x in types) if t is not None]
    if any(d is None or r is None for d, r in ts):
        return None
    scalars = [attrs[scalar_attr]] if scalar_attr and scalar_attr in attrs else []
    return result_dtype(ts, scalars)


def _binary_shape(types: Types) -> tuple | None:
    shapes = [_t(t).shape for t in types if t is not None]
    return broadcast_shapes(*shapes) if shapes else None


@_shape(*(f"aten::{n}" for n in _ATEN_ARITH))
def _aten_arith(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    dt = _dtype_of_binary(node, types, attrs, None)
    if node is not None and node.op == "aten::atan2" and dt is not None and not dt.is_floating_point:
        dt = torch.get_default_dtype()
    return [TensorType(dt, _binary_shape(types[:2]))]


@_shape(*(f"aten::{n}" for n in _ATEN_ARITH_SCALAR))
def _aten_arith_scalar(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    key = "exponent" if node is not None and node.op == "aten::pow.Tensor_Scalar" else "other"
    return [TensorType(_dtype_of_binary(node, types[:1], attrs, key), _t(types[0]).shape)]


@_shape("aten::div.Tensor")
def _aten_div(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    dt = _dtype_of_binary(node, types, attrs, None)
    if dt is not None and not (dt.is_floating_point or dt.is_complex):
        dt = torch.get_default_dtype()
    return [TensorType(dt, _binary_shape(types[:2]))]


@_shape("aten::div.Scalar")
def _aten_div_scalar(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    dt = _dtype_of_binary(node, types[:1], attrs, "other")
    if dt is not None and not (dt.is_floating_point or dt.is_complex):
        dt = torch.get_default_dtype()
    return [TensorType(dt, _t(types[0]).shape)]


@_shape(*(f"aten::{n}" for n in _ATEN_CMP))
def _aten_cmp(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(torch.bool, _binary_shape(types[:2]))]


@_shape(*(f"aten::{n}" for n in _ATEN_CMP_SCALAR))
def _aten_cmp_scalar(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    return [TensorType(torch.bool, _t(types[0]).shape)]


@_shape("aten::where.self")
def _aten_where(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    dt = _dtype_of_binary(node, types[1:3], attrs, None)
    return [TensorType(dt, _binary_shape(types[:3]))]


@_shape("aten::_to_copy")
def _aten_to_copy(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    x = _t(types[0])
    dt = dtype_arg(attrs.get("dtype"))
    if dt is None and attrs.get("dtype") is not None:
        return None
    return [TensorType(dt or x.dtype, x.shape)]


@_shape("aten::view", "aten::_unsafe_view", "aten::reshape")
def _aten_view(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType] | None:
    size = attrs.get("size", attrs.get("shape"))
    if size is None or not all(isinstance(d, int) for d in size):
        return None
    return [TensorType(_t(types[0]).dtype, reshape_shape(_t(types[0]).shape, size, allowzero=True))]


@_shape("aten::permute")
def _aten_permute(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [x]
    r = len(x.shape)
    return [TensorType(x.dtype, tuple(x.shape[_norm_axis(d, r)] for d in attrs["dims"]))]


@_shape("aten::t")
def _aten_t(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    return [x if x.shape is None or len(x.shape) < 2 else TensorType(x.dtype, x.shape[::-1])]


@_shape("aten::unsqueeze")
def _aten_unsqueeze(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    if x.shape is None:
        return [x]
    d = _norm_axis(attrs["dim"], len(x.shape) + 1)
    return [TensorType(x.dtype, x.shape[:d] + (1,) + x.shape[d:])]


@_shape("aten::addmm")
def _aten_addmm(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    a, b = _t(types[1]), _t(types[2])
    return [TensorType(a.dtype or b.dtype, _matmul_shape(a.shape, b.shape))]


@_shape("aten::_native_batch_norm_legit_no_training", "aten::native_batch_norm", "aten::_native_batch_norm_legit")
def _aten_batch_norm(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    """In eval mode the CPU kernels return empty saved statistics (the meta kernels do not)."""
    x = _t(types[0])
    stat = TensorType(x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32, None)
    if node is not None and node.op != "aten::_native_batch_norm_legit_no_training":
        if attrs.get("training", False):
            c = x.shape[1] if x.shape is not None and len(x.shape) > 1 else None
            return [x, TensorType(stat.dtype, (c,)), TensorType(stat.dtype, (c,))]
    return [x, TensorType(stat.dtype, (0,)), TensorType(stat.dtype, (0,))]


@_shape("aten::native_layer_norm")
def _aten_layer_norm(types: Types, attrs: dict, node: Node | None = None) -> list[TensorType]:
    x = _t(types[0])
    k = len(attrs.get("normalized_shape", ()))
    stat_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if x.shape is None:
        return [x, TensorType(stat_dtype, None), TensorType(stat_dtype, None)]
    s = x.shape[:len(x.shape) - k] + (1,) * k
    return [x, TensorType(stat_dtype, s), TensorType(stat_dtype, s)]


# ---------------------------------------------------------------------------------------------
# the meta-tensor fallback
# ---------------------------------------------------------------------------------------------

_SENTINELS = ((10007, 10009, 10037, 10039, 10061, 10067, 10069, 10079, 10091, 10093, 10099, 10103),
              (20011, 20021, 20023, 20029, 20047, 20051, 20063, 20071, 20089, 20101, 20107, 20113))
_MEMO: dict[Any, Any] = {}
_MEMO_LIMIT = 4096
_NO_RESULT = object()


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, torch.Tensor):
        return ("t", id(v))
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


def _metaify_attrs(attrs: dict) -> dict:
    if "device" not in attrs:
        return attrs
    out = dict(attrs)
    out["device"] = torch.device("meta")
    return out


def _run_meta(opdef: registry.OpDef, node: Node, types: Types, dims: dict[Any, int],
              real_consts: bool) -> list[Any] | None:
    args: list[Any] = []
    for v, t in zip(node.inputs, types):
        if v is None:
            args.append(None)
            continue
        if v.tensor is not None and real_consts and v.tensor.numel() <= 64:
            args.append(v.tensor)
            continue
        t = _t(t)
        shape = [d if isinstance(d, int) else dims[(id(v), i) if d is None else d] for i, d in enumerate(t.shape)]
        args.append(torch.empty(shape, dtype=t.dtype, device="meta"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = opdef.run(args, _metaify_attrs(node.attrs))
    res = []
    for r in out:
        if isinstance(r, torch.Tensor):
            res.append((r.dtype, tuple(int(d) for d in r.shape)))
        elif isinstance(r, bool):
            res.append((torch.bool, ()))
        elif isinstance(r, int):
            res.append((torch.int64, ()))
        elif isinstance(r, float):
            res.append((torch.float32, ()))
        else:
            return None
    return res


def _fallback(node: Node, types: Types) -> list[TensorType] | None:
    opdef = registry.lookup(node.op)
    if opdef is None or not node.outputs:
        return None
    for v, t in zip(node.inputs, types):
        if v is not None and v.tensor is None and (t is None or t.dtype is None or t.shape is None):
            return None
    try:
        key = (node.op, tuple(types), _hashable(node.attrs),
               tuple(None if v is None or v.tensor is None else id(v.tensor) for v in node.inputs),
               len(node.outputs))
        hash(key)
    except TypeError:
        key = None
    if key is not None:
        hit = _MEMO.get(key)
        if hit is not None:
            return None if hit is _NO_RESULT else hit
    result = _fallback_uncached(opdef, node, types)
    if key is not None:
        if len(_MEMO) > _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = _NO_RESULT if result is None else result
    return result


def _fallback_uncached(opdef: registry.OpDef, node: Node, types: Types) -> list[TensorType] | None:
    # every non-int dim gets a sentinel: symbols by name, unknown dims one each
    keys: list[Any] = []
    for v, t in zip(node.inputs, types):
        if v is None or v.tensor is not None or t is None:
            continue
        for i, d in enumerate(t.shape):
            if not isinstance(d, int):
                k = (id(v), i) if d is None else d
                if k not in keys:
                    keys.append(k)
    if len(keys) > len(_SENTINELS[0]):
        return None
    runs: list[list[Any]] = []
    for attempt in range(2 if keys else 1):
        dims = {k: _SENTINELS[attempt][j] for j, k in enumerate(keys)}
        res = None
        for real in (True, False):
            try:
                res = _run_meta(opdef, node, types, dims, real)
                break
            except Exception:  # noqa: BLE001 - the op cannot run on these inputs: try the next way
                res = None
        if res is None:
            return None
        runs.append(res)
    if len(runs[0]) != len(node.outputs):
        return None
    out: list[TensorType] = []
    for j, (dt, shape) in enumerate(runs[0]):
        if len(runs) == 1:
            out.append(TensorType(dt, shape))
            continue
        shape2 = runs[1][j][1]
        if len(shape2) != len(shape):
            out.append(TensorType(dt, None))
            continue
        dims_out: list[Any] = []
        for a, b in zip(shape, shape2):
            if a == b:
                dims_out.append(a)
                continue
            hit = None
            for i, k in enumerate(keys):
                if a == _SENTINELS[0][i] and b == _SENTINELS[1][i]:
                    hit = k if isinstance(k, str) else None
                    break
            dims_out.append(hit)
        out.append(TensorType(dt, tuple(dims_out)))
    return out


# ---------------------------------------------------------------------------------------------
# merging with declared types, and the pass
# ---------------------------------------------------------------------------------------------


def merge_types(declared: TensorType, inferred: TensorType, node: Node | None = None,
                value: Value | None = None) -> TensorType:
    """The more precise of two types; raises :class:`ShapeError` where they contradict."""
    if declared == inferred or inferred is UNKNOWN:
        return declared
    if declared is UNKNOWN:
        return inferred
    where = node.location() if node is not None else None
    what = f"%{value.name}" if value is not None else "value"
    dt = declared.dtype
    if dt is None:
        dt = inferred.dtype
    elif inferred.dtype is not None and inferred.dtype != dt:
        raise ShapeError(f"{what} is declared {declared} but the op produces {inferred}", location=where)
    ds, is_ = declared.shape, inferred.shape
    if ds is None:
        shape = is_
    elif is_ is None:
        shape = ds
    elif len(ds) != len(is_):
        raise ShapeError(f"{what} is declared {declared} but the op produces {inferred}", location=where)
    else:
        dims = []
        for a, b in zip(ds, is_):
            if isinstance(a, int) and isinstance(b, int) and a != b:
                raise ShapeError(f"{what} is declared {declared} but the op produces {inferred}",
                                 location=where)
            dims.append(b if a is None or (isinstance(b, int) and not isinstance(a, int)) else a)
        shape = tuple(dims)
    return TensorType(dt, shape)


def infer_node(node: Node, *, fallback: bool = True, strict: bool = True) -> bool:
    """Infer ``node``'s output types from its inputs' and merge them in; True if a type
    changed.  ``strict``: a shape function's result that contradicts a declared type raises a
    located :class:`ShapeError`; otherwise the declared type is kept.  Results of the meta
    fallback only fill in what is unknown: meta kernels sometimes disagree with the CPU ones
    (eval-mode batch norm's saved statistics), so they are not trusted to contradict."""
    d = registry.lookup(node.op)
    fn = d.shape_fn if d is not None else None
    types = [None if v is None else v.type for v in node._inputs]
    out = None
    if fn is not None:
        try:
            out = fn(types, node.attrs, node)
        except ShapeError as e:
            if strict:
                raise ShapeError(e.raw_message, location=node.location()) from None
            out = None
        except TorchMDFError as e:  # a bad attribute (an unknown ONNX type...): say where
            raise type(e)(e.raw_message, location=e.location or node.location(), hint=e.hint) from None
        except Exception:  # noqa: BLE001 - a shape function that cannot handle this instance
            out = None
    from_fn = out is not None
    if out is None or (fallback and _needs_fallback(out)):
        fb = _fallback(node, types) if fallback else None
        if fb is not None:
            out = fb if out is None else [merge_types(a, b) if _compatible(a, b) else a
                                          for a, b in zip(out, fb)]
    if out is None:
        return False
    strict = strict and from_fn
    changed = False
    for o, t in zip(node.outputs, out):
        cur = o.type
        if cur == t:
            continue
        if strict:
            new = merge_types(cur, t, node, o)
        else:  # keep what was declared where the two disagree
            new = merge_types(cur, t) if _compatible(cur, t) else cur
        if new != cur:
            o.type = new
            changed = True
    return changed


def _needs_fallback(out: list[TensorType]) -> bool:
    for t in out:
        if t.dtype is None or t.shape is None:
            return True
    return False


def _compatible(a: TensorType, b: TensorType) -> bool:
    try:
        merge_types(a, b)
        return True
    except ShapeError:
        return False


def infer_graph(graph: Graph, *, fallback: bool = True, strict: bool = True) -> bool:
    if graph.has_regions:  # control flow: regions are typed from their nodes (passes/_regions.py)
        from ._regions import infer_nested

        return infer_nested(graph, lambda n: infer_node(n, fallback=fallback, strict=strict))
    modified = False
    for node in graph:
        if infer_node(node, fallback=fallback, strict=strict):
            modified = True
    return modified


@register_pass("infer_shapes")
class InferShapes(Pass):
    """Fill in the dtype and shape of every value (see the module docstring).

    ``fallback=False`` skips the meta-tensor fallback (shape functions only)."""

    def __init__(self, fallback: bool = True):
        self.fallback = fallback

    def call(self, graph: Graph) -> PassResult:
        return PassResult(graph, infer_graph(graph, fallback=self.fallback))


__all__ = ["InferShapes", "infer_node", "infer_graph", "merge_types", "broadcast_shapes", "known_shape",
           "register_shape_function", "reshape_shape"]
