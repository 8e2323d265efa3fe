"""ONNX ops (opset 18 semantics) implemented in torch.

Inputs follow the ONNX schema order (a missing optional input is ``None``), attributes are
keyword arguments with the schema's names and defaults (the entries' attribute schemas are read
from them).  ``fx_target`` lets the FX backend call the fastest torch function directly instead
of these wrappers.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .registry import OpDef, register

ONNX_OPSET = 18


def _reg(name: str, impl, inputs: Sequence[str], *, num_outputs=1, variadic=False, fx_target=None,
         pure=True, min_opset=None):
    """One ONNX op; its attribute schema is ``impl``'s keyword parameters (names, defaults)."""
    register(OpDef(name=f"onnx::{name}", impl=impl, input_names=tuple(inputs), onnx_name=name,
                   mdf_name=f"onnx::{name}", num_outputs=num_outputs, variadic=variadic,
                   fx_target=fx_target, pure=pure, min_opset=min_opset, doc=(impl.__doc__ or "").strip()))


# -- elementwise ---------------------------------------------------------------------------
_UNARY = {
    "Neg": torch.neg, "Abs": torch.abs, "Exp": torch.exp, "Log": torch.log, "Sqrt": torch.sqrt,
    "Reciprocal": torch.reciprocal, "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan,
    "Sinh": torch.sinh, "Cosh": torch.cosh, "Tanh": torch.tanh, "Asin": torch.asin, "Acos": torch.acos,
    "Atan": torch.atan, "Asinh": torch.asinh, "Acosh": torch.acosh, "Atanh": torch.atanh,
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Erf": torch.erf, "Floor": torch.floor,
    "Ceil": torch.ceil, "Sign": torch.sign, "Not": torch.logical_not, "Round": torch.round,
    "IsNaN": torch.isnan, "Softsign": F.softsign, "Identity": lambda x: x,
}
for _n, _f in _UNARY.items():
    _reg(_n, _f, ("X",) if _n in ("Neg", "Abs", "Relu", "Sigmoid", "Floor", "Ceil", "Not", "Reciprocal",
                                  "Sqrt", "Round", "IsNaN") else ("input",),
         fx_target=_f if _n != "Identity" else None)

_BINARY = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": None, "Pow": torch.pow,
    "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
    "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or,
    "Xor": torch.logical_xor,
}


def _div(A, B):
    """ONNX Div: integer division truncates for integer tensors."""
    if not A.is_floating_point() and not B.is_floating_point() and not A.is_complex():
        return torch.div(A, B, rounding_mode="trunc")
    return torch.div(A, B)


def pow_(X, Y):
    """ONNX Pow: the result has the base's type.  A 0-d exponent goes through torch's
    tensor-scalar kernel, the one ``aten::pow.Tensor_Scalar`` runs (bit-identical results)."""
    if isinstance(Y, torch.Tensor) and Y.dim() == 0 and Y.device.type == "cpu" and X.device.type == "cpu":
        out = torch.pow(X, Y.item())
    else:
        out = torch.pow(X, Y)
    return out if out.dtype == X.dtype else out.to(X.dtype)


for _n, _f in _BINARY.items():
    if _n == "Pow":
        _reg(_n, pow_, ("X", "Y"))
    elif _n == "Div":
        _reg(_n, _div, ("A", "B"))
    else:
        _reg(_n, _f, ("A", "B"), fx_target=_f)


def mod(A, B, fmod: int = 0):
    """ONNX Mod: Python semantics (sign of divisor) unless fmod=1."""
    return torch.fmod(A, B) if fmod else torch.remainder(A, B)


_reg("Mod", mod, ("A", "B"))


def is_inf(X, detect_negative: int = 1, detect_positive: int = 1):
    if detect_negative and detect_positive:
        return torch.isinf(X)
    if detect_negative:
        return torch.isneginf(X)
    if detect_positive:
        return torch.isposinf(X)
    return torch.zeros_like(X, dtype=torch.bool)


_reg("IsInf", is_inf, ("X",))
_reg("BitwiseAnd", torch.bitwise_and, ("A", "B"), fx_target=torch.bitwise_and)
_reg("BitwiseOr", torch.bitwise_or, ("A", "B"), fx_target=torch.bitwise_or)
_reg("BitwiseXor", torch.bitwise_xor, ("A", "B"), fx_target=torch.bitwise_xor)
_reg("BitwiseNot", torch.bitwise_not, ("X",), fx_target=torch.bitwise_not)


def where(condition, X, Y):
    return torch.where(condition.bool() if condition.dtype != torch.bool else condition, X, Y)


_reg("Where", where, ("condition", "X", "Y"))


def _nary(fn):
    def impl(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out

    return impl


_reg("Max", _nary(torch.maximum), ("data_0",), variadic=True)
_reg("Min", _nary(torch.minimum), ("data_0",), variadic=True)
_reg("Sum", _nary(torch.add), ("data_0",), variadic=True)


def mean(*xs):
    return _nary(torch.add)(*xs) / len(xs)


_reg("Mean", mean, ("data_0",), variadic=True)


# -- activations ---------------------------------------------------------------------------
def leaky_relu(X, alpha: float = 0.01):
    return F.leaky_relu(X, alpha)


def elu(X, alpha: float = 1.0):
    return F.elu(X, alpha)


def selu(X, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875):
    """torch's elu kernel with scale=gamma: the same numbers as torch.selu / aten::elu."""
    return torch.ops.aten.elu(X, alpha, gamma, 1.0)


def celu(X, alpha: float = 1.0):
    return F.celu(X, alpha)


def gelu(X, approximate: str = "none"):
    return F.gelu(X, approximate=approximate)


def softplus(X):
    return F.softplus(X)


def hard_sigmoid(X, alpha: float = 0.2, beta: float = 0.5):
    if alpha == 1.0 / 6.0 and beta == 0.5 and X.is_floating_point():
        return F.hardsigmoid(X)  # torch's hardsigmoid: the same function, its own arithmetic
    return torch.clamp(alpha * X + beta, 0, 1)


def hard_swish(X):
    return F.hardswish(X)


def prelu(X, slope):
    return torch.where(X < 0, X * slope, X)


def clip(input, min=None, max=None):  # noqa: A002 - ONNX names
    if min is None and max is None:
        return input
    return torch.clamp(input, min, max)


def softmax(input, axis: int = -1):
    return torch.softmax(input, axis)


def log_softmax(input, axis: int = -1):
    return torch.log_softmax(input, axis)


def hardmax(input, axis: int = -1):
    return F.one_hot(input.argmax(axis), input.shape[axis]).movedim(-1, axis).to(input.dtype)


for _n, _f, _ins in [("LeakyRelu", leaky_relu, ("X",)), ("Elu", elu, ("X",)), ("Selu", selu, ("X",)),
                     ("Celu", celu, ("X",)), ("Softplus", softplus, ("X",)),
                     ("HardSigmoid", hard_sigmoid, ("X",)), ("HardSwish", hard_swish, ("X",)),
                     ("PRelu", prelu, ("X", "slope")), ("Clip", clip, ("input", "min", "max")),
                     ("Softmax", softmax, ("input",)), ("LogSoftmax", log_softmax, ("input",)),
                     ("Hardmax", hardmax, ("input",))]:
    _reg(_n, _f, _ins)
_reg("Gelu", gelu, ("X",), min_opset=20)  # new in opset 20


# -- linear algebra --------------------------------------------------------------------------
def gemm(A, B, C=None, alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0):
    """Y = alpha * A' @ B' + beta * C"""
    if transA:
        A = A.t()
    if transB:
        B = B.t()
    if not (A.is_floating_point() or A.is_complex()) and (alpha != 1.0 or beta != 1.0):
        # integer Gemm with a float alpha/beta: computed in float64, the result keeps ONNX's T
        out = gemm(A.double(), B.double(), None if C is None else C.double(), alpha, beta)
        return out.to(A.dtype)
    if C is None:
        out = A @ B
        return out if alpha == 1.0 else alpha * out
    if C.dim() <= 2:
        return torch.addmm(C.expand(A.shape[0], B.shape[1]) if C.dim() < 2 else C, A, B, beta=beta, alpha=alpha) \
            if C.dim() == 2 or beta != 1.0 or alpha != 1.0 else torch.addmm(C, A, B)
    return alpha * (A @ B) + beta * C


_reg("Gemm", gemm, ("A", "B", "C"))
_reg("MatMul", torch.matmul, ("A", "B"), fx_target=torch.matmul)


def einsum(*inputs, equation: str):
    return torch.einsum(equation, *inputs)


_reg("Einsum", einsum, ("Inputs",), variadic=True)


# -- convolution and pooling ---------------------------------------------------------------
def _onnx_pads(pads, nd):
    """ONNX pads [b1, b2, ..., e1, e2, ...] -> (symmetric padding tuple | None, F.pad list)."""
    if pads and len(pads) != 2 * nd:  # ONNX: a begin and an end per spatial axis
        raise ValueError(f"pads {list(pads)} must have {2 * nd} entries for {nd} spatial dims")
    if not pads:
        return tuple([0] * nd), None
    begin, end = list(pads[:nd]), list(pads[nd:])
    if begin == end:
        return tuple(begin), None
    fpad: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        fpad += [b, e]
    return tuple([0] * nd), fpad


def _auto_pad(X, kernel, strides, dilations, auto_pad):
    nd = len(kernel)
    pads_b, pads_e = [], []
    for i in range(nd):
        size = X.shape[2 + i]
        out = math.ceil(size / strides[i])
        total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
        small, big = total // 2, total - total // 2
        if auto_pad == "SAME_UPPER":
            pads_b.append(small)
            pads_e.append(big)
        else:
            pads_b.append(big)
            pads_e.append(small)
    return pads_b + pads_e


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _check_kernel_shape(kernel_shape, W, op: str) -> None:
    """ONNX: ``kernel_shape``, when given, is W's spatial shape (shape inference reads it)."""
    if kernel_shape is not None and [int(k) for k in kernel_shape] != list(W.shape[2:]):
        raise ValueError(f"{op}: kernel_shape {list(kernel_shape)} is not the weight's spatial shape "
                         f"{list(W.shape[2:])}")


def conv(X, W, B=None, auto_pad: str = "NOTSET", dilations=None, group: int = 1, kernel_shape=None,
         pads=None, strides=None):
    _check_kernel_shape(kernel_shape, W, "Conv")
    nd = W.dim() - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _auto_pad(X, list(W.shape[2:]), strides, dilations, auto_pad)
    elif auto_pad == "VALID":
        pads = None
    padding, fpad = _onnx_pads(pads, nd)
    if fpad is not None:
        X = F.pad(X, fpad)
    return _CONV[nd](X, W, B, strides, padding, dilations, group)


_reg("Conv", conv, ("X", "W", "B"))


def conv_transpose(X, W, B=None, auto_pad: str = "NOTSET", dilations=None, group: int = 1,
                   kernel_shape=None, output_padding=None, output_shape=None, pads=None, strides=None):
    _check_kernel_shape(kernel_shape, W, "ConvTranspose")
    nd = W.dim() - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    padding, fpad = _onnx_pads(pads, nd)
    if fpad is not None:
        raise NotImplementedError("asymmetric pads in ConvTranspose")
    return _CONVT[nd](X, W, B, strides, padding, list(output_padding or [0] * nd), group, dilations)


_reg("ConvTranspose", conv_transpose, ("X", "W", "B"))

_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def max_pool(X, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations=None, kernel_shape=None,
             pads=None, storage_order: int = 0, strides=None):
    nd = len(kernel_shape)
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _auto_pad(X, kernel_shape, strides, dilations, auto_pad)
    padding, fpad = _onnx_pads(pads, nd)
    _check_pool_pads(pads, kernel_shape, "MaxPool")
    if fpad is not None:
        out = _MAXPOOL[nd](F.pad(X, fpad, value=-math.inf), list(kernel_shape), strides, list(padding), dilations,
                           bool(ceil_mode))
        return _without_windows_in_right_pads(out, X, pads, strides, nd) if ceil_mode else out
    return _MAXPOOL[nd](X, list(kernel_shape), strides, list(padding), dilations, bool(ceil_mode))


def _check_pool_pads(pads, kernel_shape, op: str) -> None:
    """onnxruntime refuses a pool's pad as large as its kernel ("Pad should be smaller than
    kernel"); shape inference and the padded windows disagreed there (long profile)."""
    if pads:
        nd = len(kernel_shape)
        if any(int(p) >= int(kernel_shape[i % nd]) for i, p in enumerate(pads)):
            raise ValueError(f"{op}: pads {list(pads)} must be smaller than the kernel {list(kernel_shape)}")


def _without_windows_in_right_pads(out, X, pads, strides, nd):
    """ONNX (as torch does for its own padding): in ceil mode, a window that starts in the right
    padding is dropped.  With asymmetric pads applied by ``F.pad`` the padding is data to torch,
    which kept such windows."""
    for d in range(nd):
        starts = -(-(X.shape[2 + d] + int(pads[d])) // int(strides[d]))  # windows starting before the pad
        if out.shape[2 + d] > starts:
            out = out.narrow(2 + d, 0, starts)
    return out


def average_pool(X, auto_pad: str = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
                 dilations=None, kernel_shape=None, pads=None, strides=None):
    nd = len(kernel_shape)
    strides = list(strides or [1] * nd)
    if dilations is not None and any(int(d) != 1 for d in dilations):
        # torch has no dilated average pooling; computing without the dilations gave another shape
        raise NotImplementedError(f"AveragePool with dilations {list(dilations)} (torch has no dilated average pool)")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _auto_pad(X, kernel_shape, strides, [1] * nd, auto_pad)
    padding, fpad = _onnx_pads(pads, nd)
    _check_pool_pads(pads, kernel_shape, "AveragePool")
    if fpad is None:
        return _AVGPOOL[nd](X, list(kernel_shape), strides, list(padding), bool(ceil_mode), bool(count_include_pad))
    # asymmetric pads, applied by F.pad: torch then counts them as data, so without
    # count_include_pad the sum is divided by the count of real elements (a pool of a mask of
    # ones: the same divisor on both sides cancels)
    zero = [0] * nd
    out = _AVGPOOL[nd](F.pad(X, fpad), list(kernel_shape), strides, zero, bool(ceil_mode), True)
    if not count_include_pad:
        ones = torch.ones((1, 1, *X.shape[2:]), dtype=X.dtype, device=X.device)
        out = out / _AVGPOOL[nd](F.pad(ones, fpad), list(kernel_shape), strides, zero, bool(ceil_mode), True)
    return _without_windows_in_right_pads(out, X, pads, strides, nd) if ceil_mode else out


def global_average_pool(X):
    if X.dim() <= 2:  # no spatial dims: torch reads an empty dim tuple as "every dim"
        return X.clone()
    return X.mean(dim=tuple(range(2, X.dim())), keepdim=True)


def global_max_pool(X):
    if X.dim() <= 2:
        return X.clone()
    return X.amax(dim=tuple(range(2, X.dim())), keepdim=True)


_reg("MaxPool", max_pool, ("X",))
_reg("AveragePool", average_pool, ("X",))
_reg("GlobalAveragePool", global_average_pool, ("X",))
_reg("GlobalMaxPool", global_max_pool, ("X",))


# -- normalization -------------------------------------------------------------------------
def batch_norm(X, scale, B, input_mean, input_var, epsilon: float = 1e-5, momentum: float = 0.9,
               training_mode: int = 0):
    return F.batch_norm(X, input_mean, input_var, scale, B, bool(training_mode), 1 - momentum, epsilon)


def layer_norm(X, Scale, B=None, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1):
    axis = axis % X.dim()
    return F.layer_norm(X, X.shape[axis:], Scale, B, epsilon)


def instance_norm(input, scale, B, epsilon: float = 1e-5):
    return F.instance_norm(input, weight=scale, bias=B, eps=epsilon)


def lp_normalization(input, axis: int = -1, p: int = 2):
    return F.normalize(input, p=p, dim=axis)


def group_norm(X, scale, bias, num_groups: int, epsilon: float = 1e-5, stash_type: int = 1):
    """GroupNormalization as opset 21 defines it: ``scale`` and ``bias`` per channel (C,).
    (Opset 18's per-group form is deprecated; models using it are written with opset 21.)"""
    return F.group_norm(X, int(num_groups), scale, bias, epsilon)


_reg("BatchNormalization", batch_norm, ("X", "scale", "B", "input_mean", "input_var"))
_reg("GroupNormalization", group_norm, ("X", "scale", "bias"), min_opset=21)  # opset 21's per-channel form
_reg("LayerNormalization", layer_norm, ("X", "Scale", "B"))
_reg("InstanceNormalization", instance_norm, ("input", "scale", "B"))
_reg("LpNormalization", lp_normalization, ("input",))


# -- shape manipulation --------------------------------------------------------------------
def _ints(t) -> list[int]:
    if isinstance(t, torch.Tensor):
        return [int(x) for x in t.reshape(-1).tolist()]
    return [int(x) for x in t]


def axes_in_range(axes, rank: int) -> bool:
    """Each axis once and within ``[-rank, rank)``, as ONNX requires (Python's ``%`` would
    wrap an axis out of range; a repeated one would be applied twice)."""
    return all(-rank <= a < rank for a in axes) and len({a % rank for a in axes}) == len(axes)


def split_sizes(size: int, n: int) -> list[int]:
    """ONNX Split into ``n`` outputs, as onnxruntime computes it: n - 1 chunks of
    ceil(size / n) and a smaller, possibly empty, last one (negative: the split is invalid)."""
    chunk = math.ceil(size / n)
    return [chunk] * (n - 1) + [size - chunk * (n - 1)]


def _shape_ints(t, op: str) -> list[int]:
    """A shape operand (Reshape, Expand, Tile, ConstantOfShape): ONNX takes a 1-D tensor;
    another rank is refused (flattening it computed a shape shape inference did not expect)."""
    if isinstance(t, torch.Tensor) and t.dim() != 1:
        raise ValueError(f"{op}: the shape input must be 1-D, got rank {t.dim()}")
    return _ints(t)


def reshape(data, shape, allowzero: int = 0):
    s = _shape_ints(shape, "Reshape")
    if not allowzero:
        s = [data.shape[i] if d == 0 else d for i, d in enumerate(s)]
    return torch.reshape(data, s)


def flatten(input, axis: int = 1):
    if not -input.dim() <= axis <= input.dim():
        raise ValueError(f"Flatten: axis {axis} out of range for rank {input.dim()}")
    axis = axis % max(input.dim(), 1) if axis < 0 else axis
    lead = 1
    for d in input.shape[:axis]:
        lead *= d
    return input.reshape(lead, -1) if input.numel() else input.reshape(lead, int(math.prod(input.shape[axis:])))


def transpose(data, perm=None):
    if perm is None:
        perm = list(reversed(range(data.dim())))
    return data.permute(*perm)


def concat(*inputs, axis: int):
    return torch.cat(inputs, axis)


def slice_(data, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    r = data.dim()
    # what ONNX refuses, refused (Python's % would wrap an axis, a repeated one would be sliced twice)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"Slice: starts, ends, axes and steps have {len(starts)}, {len(ends)}, {len(axes)} and "
                         f"{len(steps)} entries; they must have one each per sliced axis")
    if not axes_in_range(axes, r):
        raise ValueError(f"Slice: axes {axes} are out of range or repeated for rank {r}")
    if 0 in steps:
        raise ValueError("Slice: a step is 0")
    idx: list[Any] = [slice(None)] * data.dim()
    flips = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a % data.dim()
        n = data.shape[a]
        if st > 0:
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            idx[a] = slice(s, e, st)
        else:
            # negative step: flip, then slice forward
            s = max(-1, min(n - 1, s + n if s < 0 else s))
            e = max(-1, min(n - 1, e + n if e < 0 and e > -n - 1 else (e if e >= 0 else -1)))
            flips.append(a)
            idx[a] = slice(n - 1 - s, n - 1 - e, -st)
    if flips:
        data = torch.flip(data, flips)
    return data[tuple(idx)]


def gather(data, indices, axis: int = 0):
    if not -data.dim() <= axis < data.dim():  # Python's % would wrap it silently
        raise ValueError(f"Gather: axis {axis} out of range for rank {data.dim()}")
    axis = axis % data.dim()
    idx = torch.where(indices < 0, indices + data.shape[axis], indices).long()
    if idx.dim() == 0:
        return data.select(axis, int(idx)) if not isinstance(idx, torch.Tensor) or idx.device.type == "meta" \
            else torch.index_select(data, axis, idx.reshape(1)).squeeze(axis)
    out = torch.index_select(data, axis, idx.reshape(-1))
    return out.reshape(data.shape[:axis] + idx.shape + data.shape[axis + 1:])


def gather_elements(data, indices, axis: int = 0):
    return torch.gather(data, axis, torch.where(indices < 0, indices + data.shape[axis], indices).long())


def gather_nd(data, indices, batch_dims: int = 0):
    """ONNX GatherND: the last axis of ``indices`` addresses the leading dims of ``data``
    (after ``batch_dims`` shared batch dims); negative indices count from the end."""
    k = indices.shape[-1]
    idx = indices.long()
    if batch_dims == 0:
        parts = [torch.where(idx[..., i] < 0, idx[..., i] + data.shape[i], idx[..., i]) for i in range(k)]
        return data[tuple(parts)]
    b = batch_dims
    flat_data = data.reshape((-1,) + tuple(data.shape[b:]))
    flat_idx = idx.reshape((flat_data.shape[0], -1, k))
    outs = [gather_nd(flat_data[i], flat_idx[i]) for i in range(flat_data.shape[0])]
    out = torch.stack(outs) if outs else flat_data.new_empty((0,) + tuple(data.shape[b + k:]))
    return out.reshape(tuple(indices.shape[:-1]) + tuple(data.shape[b + k:]))


def squeeze(data, axes=None):
    if axes is None:
        return torch.squeeze(data)
    if any(not -data.dim() <= a < max(data.dim(), 1) for a in _ints(axes)):
        raise ValueError(f"Squeeze: axes {_ints(axes)} out of range for rank {data.dim()}")
    dims = tuple(a % max(data.dim(), 1) for a in _ints(axes))
    if any(data.shape[d] != 1 for d in dims if d < data.dim()):  # torch would keep them silently
        raise ValueError(f"Squeeze: axes {list(dims)} of shape {tuple(data.shape)} are not all 1")
    return torch.squeeze(data, dims)


def unsqueeze(data, axes):
    out = data
    rank = data.dim() + len(_ints(axes))
    if any(not -rank <= a < rank for a in _ints(axes)):  # Python's % would wrap them silently
        raise ValueError(f"Unsqueeze: axes {_ints(axes)} out of range for an output of rank {rank}")
    for a in sorted(a % rank for a in _ints(axes)):
        out = out.unsqueeze(a)
    return out


def expand(input, shape):
    s = _shape_ints(shape, "Expand")
    if any(d < 0 for d in s):
        raise ValueError(f"Expand: shape {s} has a negative entry")
    # ONNX Expand broadcasts both ways (a 1 in shape keeps the input's size)
    rank = max(len(s), input.dim())
    s = [1] * (rank - len(s)) + s
    ish = [1] * (rank - input.dim()) + list(input.shape)
    target = [b if a == 1 else a if b == 1 else b for a, b in zip(ish, s)]  # 1 broadcasts to 0 too
    return input.reshape(ish).expand(target)


def shape(data, start: int = 0, end: int | None = None):
    return torch.tensor(list(data.shape)[start:end], dtype=torch.int64)


def size(data):
    return torch.tensor(data.numel(), dtype=torch.int64)


def split(input, split=None, axis: int = 0, num_outputs: int | None = None):
    if split is not None and num_outputs is not None:
        raise ValueError("Split: give the split sizes or num_outputs, not both (ONNX)")
    if split is None and num_outputs is None:
        raise ValueError("Split: give the split sizes or num_outputs")
    if split is not None:
        return tuple(torch.split(input, _ints(split), axis))
    n = num_outputs
    sizes = split_sizes(input.shape[axis], n)  # torch.split(input, chunk) would give fewer than n
    if sizes[-1] < 0:
        raise ValueError(f"Split: {n} outputs of a dim of {input.shape[axis]} would make a negative last chunk")
    return tuple(torch.split(input, sizes, axis))


def tile(input, repeats):
    reps = _shape_ints(repeats, "Tile")
    if len(reps) != input.dim():  # torch's repeat would prepend dims; ONNX refuses
        raise ValueError(f"Tile: repeats has {len(reps)} entries for an input of rank {input.dim()}")
    return input.repeat(*reps)


def pad(data, pads, constant_value=None, axes=None, mode: str = "constant"):
    p = _ints(pads)
    nd = len(p) // 2
    ax = _ints(axes) if axes is not None else list(range(nd))
    r = data.dim()
    # what ONNX refuses, refused: a begin and an end per axis, each axis once and in range
    if len(p) != 2 * len(ax) or (axes is None and nd != r):
        raise ValueError(f"Pad: {len(p)} pads for {len(ax) if axes is not None else r} axes; it takes a begin "
                         "and an end per axis")
    if not axes_in_range(ax, r):
        raise ValueError(f"Pad: axes {ax} are out of range or repeated for rank {r}")
    full_b = [0] * data.dim()
    full_e = [0] * data.dim()
    for i, a in enumerate(ax):
        full_b[a % data.dim()] = p[i]
        full_e[a % data.dim()] = p[i + nd]
    fp: list[int] = []
    for b, e in zip(reversed(full_b), reversed(full_e)):
        fp += [b, e]
    if mode == "constant":
        value = 0.0 if constant_value is None else constant_value.item() \
            if isinstance(constant_value, torch.Tensor) else constant_value
        return F.pad(data, fp, value=value)
    # reflect / edge / wrap on any axes (F.pad only pads the trailing dims of batched input):
    # gather each padded axis with the mirrored / clamped / wrapped source indices
    out = data
    for a in range(data.dim()):
        b, e = full_b[a], full_e[a]
        if b == 0 and e == 0:
            continue
        n = out.shape[a]
        i = torch.arange(-b, n + e, device=data.device)
        if mode == "edge":
            i = i.clamp(0, n - 1)
        elif mode == "wrap":
            i = i % n
        else:  # reflect (the edge value is not repeated)
            period = max(2 * (n - 1), 1)
            i = i % period
            i = torch.where(i >= n, period - i, i)
        out = out.index_select(a, i)
    return out


def cast(input, to: int, saturate: int = 1):
    return input.to(onnx_to_torch_dtype(to))


def cast_like(input, target_type, saturate: int = 1):
    return input.to(target_type.dtype)


def constant(value=None, value_float=None, value_floats=None, value_int=None, value_ints=None):
    if value is not None:
        return torch.as_tensor(value)
    if value_float is not None:
        return torch.tensor(value_float, dtype=torch.float32)
    if value_floats is not None:
        return torch.tensor(value_floats, dtype=torch.float32)
    if value_int is not None:
        return torch.tensor(value_int, dtype=torch.int64)
    return torch.tensor(value_ints, dtype=torch.int64)


def constant_of_shape(input, value=None):
    v = torch.zeros(1, dtype=torch.float32) if value is None else torch.as_tensor(value).reshape(1)
    return torch.full(_shape_ints(input, "ConstantOfShape"), v.item(), dtype=v.dtype)


def range_(start, limit, delta):
    return torch.arange(start.item() if isinstance(start, torch.Tensor) else start,
                        limit.item() if isinstance(limit, torch.Tensor) else limit,
                        delta.item() if isinstance(delta, torch.Tensor) else delta,
                        dtype=start.dtype if isinstance(start, torch.Tensor) else None)


def trilu(input, k=None, upper: int = 1):
    kk = int(k) if k is not None else 0
    return torch.triu(input, kk) if upper else torch.tril(input, kk)


def cumsum(x, axis, exclusive: int = 0, reverse: int = 0):
    a = int(axis)
    if reverse:
        x = torch.flip(x, (a,))
    out = torch.cumsum(x, a)
    if exclusive:  # shift by one (out - x would round differently from a true exclusive scan)
        a = a % max(x.dim(), 1)
        n = x.shape[a]
        zero = torch.zeros_like(x.narrow(a, 0, min(1, n)))
        out = torch.cat([zero, out.narrow(a, 0, max(n - 1, 0))], a)
    return torch.flip(out, (a,)) if reverse else out


def dropout(data, ratio=None, training_mode=None, seed: int | None = None):
    return data


for _n, _f, _ins in [("Reshape", reshape, ("data", "shape")), ("Flatten", flatten, ("input",)),
                     ("Transpose", transpose, ("data",)), ("Slice", slice_, ("data", "starts", "ends", "axes", "steps")),
                     ("Gather", gather, ("data", "indices")), ("GatherElements", gather_elements, ("data", "indices")),
                     ("GatherND", gather_nd, ("data", "indices")),
                     ("Squeeze", squeeze, ("data", "axes")), ("Unsqueeze", unsqueeze, ("data", "axes")),
                     ("Expand", expand, ("input", "shape")), ("Shape", shape, ("data",)), ("Size", size, ("data",)),
                     ("Tile", tile, ("input", "repeats")), ("Pad", pad, ("data", "pads", "constant_value", "axes")),
                     ("Cast", cast, ("input",)), ("CastLike", cast_like, ("input", "target_type")),
                     ("Constant", constant, ()), ("ConstantOfShape", constant_of_shape, ("input",)),
                     ("Range", range_, ("start", "limit", "delta")), ("Trilu", trilu, ("input", "k")),
                     ("CumSum", cumsum, ("x", "axis")), ("Dropout", dropout, ("data", "ratio", "training_mode"))]:
    _reg(_n, _f, _ins)

_reg("Concat", concat, ("inputs",), variadic=True)
register(OpDef(name="onnx::Split", impl=split, input_names=("input", "split"), onnx_name="Split",
               mdf_name="onnx::Split",
               # -1: as many outputs as the ``split`` input has entries (known only at run time)
               num_outputs=lambda attrs, n: int(attrs.get("num_outputs") or attrs.get("_num_outputs") or -1)))


# -- reductions ----------------------------------------------------------------------------
def _reduce(fn_all, fn_dims):
    def impl(data, axes=None, keepdims: int = 1, noop_with_empty_axes: int = 0):
        ax = _ints(axes) if axes is not None else []
        if not ax:
            if noop_with_empty_axes:
                return data
            ax = list(range(data.dim()))
        r = max(data.dim(), 1)
        if not axes_in_range(ax, r):
            raise ValueError(f"axes {ax} are out of range or repeated for rank {data.dim()}")
        if fn_dims in _FLOAT_REDUCTIONS and not (data.is_floating_point() or data.is_complex()):
            # ONNX keeps the input's type (onnxruntime: computed, then truncated to the integer type)
            return fn_dims(data.double(), tuple(ax), bool(keepdims)).to(data.dtype)
        out = fn_dims(data, tuple(ax), bool(keepdims))
        # torch sums (and multiplies) int32/int8/bool into int64; ONNX keeps the input's type
        return out if out.dtype == data.dtype else out.to(data.dtype)

    return impl


_REDUCE = {
    "ReduceMean": lambda x, d, k: torch.mean(x, d, k),
    "ReduceSum": lambda x, d, k: torch.sum(x, d, k),
    "ReduceMax": lambda x, d, k: torch.amax(x, d, k),
    "ReduceMin": lambda x, d, k: torch.amin(x, d, k),
    "ReduceProd": lambda x, d, k: _prod(x, d, k),
    "ReduceL1": lambda x, d, k: torch.sum(torch.abs(x), d, k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(x * x, d, k)),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, d, k),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, k),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, d, k)),
}


_FLOAT_REDUCTIONS = tuple(_REDUCE[n] for n in ("ReduceMean", "ReduceL2", "ReduceLogSumExp", "ReduceLogSum"))
"""Reductions torch computes only in floating point (or in floating point before the ONNX type)."""


def _prod(x, dims, keep):
    if x.dim() == 0:
        return x.clone()
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = torch.prod(x, d, keep)
    return x


for _n, _f in _REDUCE.items():
    _reg(_n, _reduce(None, _f), ("data", "axes"))


def argmax(data, axis: int = 0, keepdims: int = 1, select_last_index: int = 0):
    return torch.argmax(data, axis, bool(keepdims))


def argmin(data, axis: int = 0, keepdims: int = 1, select_last_index: int = 0):
    return torch.argmin(data, axis, bool(keepdims))


_reg("ArgMax", argmax, ("data",))
_reg("ArgMin", argmin, ("data",))


# -- dtype mapping --------------------------------------------------------------------------
_ONNX_TO_TORCH = {
    1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
    9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.uint32, 13: torch.uint64,
    14: torch.complex64, 15: torch.complex128, 16: torch.bfloat16,
}
_TORCH_TO_ONNX = {v: k for k, v in _ONNX_TO_TORCH.items()}


def onnx_to_torch_dtype(code: int) -> torch.dtype:
    """The torch dtype of an ONNX ``TensorProto`` data type code; a located error upstream
    (never a KeyError) for a code torchmdf does not know."""
    try:
        return _ONNX_TO_TORCH[int(code)]
    except (KeyError, TypeError, ValueError, OverflowError):
        from torchmdf.errors import ValidationError

        known = ", ".join(f"{k} ({str(v).replace('torch.', '')})" for k, v in _ONNX_TO_TORCH.items())
        raise ValidationError(f"unknown ONNX data type {code!r}", hint=f"the known types are {known}") from None


def torch_to_onnx_dtype(dt: torch.dtype) -> int:
    return _TORCH_TO_ONNX[dt]


# -- random ops: impure (never folded, never deduplicated), sizes from attributes ----------------
def _generator(seed: Any, like: torch.Tensor | None = None) -> torch.Generator | None:
    """A generator seeded by the ``seed`` attribute (the same draws each call, as a fixed
    seed means in ONNX), or None: torch's global generator (``torch.manual_seed``)."""
    if seed is None:
        return None
    g = torch.Generator(device=like.device if like is not None else "cpu")
    g.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)
    return g


def _shape_attr(shape: Any) -> tuple[int, ...]:
    from torchmdf.limits import LIMITS

    dims = tuple(int(d) for d in (shape.tolist() if isinstance(shape, torch.Tensor) else shape or ()))
    if any(d < 0 for d in dims):
        raise ValueError(f"a random op's shape must be non-negative, got {list(dims)}")
    n = math.prod(dims)
    if n > LIMITS.max_elements:  # before allocating; the caller's error handling locates it
        raise ValueError(f"a random tensor of shape {list(dims)} would have {n:,} elements, more than "
                         f"torchmdf.limits.LIMITS.max_elements ({LIMITS.max_elements:,})")
    return dims


def random_uniform(dtype: int = 1, high: float = 1.0, low: float = 0.0, seed: Any = None, shape: Any = ()):
    """ONNX RandomUniform: ``shape`` values uniform in [low, high)."""
    dt = onnx_to_torch_dtype(dtype)
    out = torch.rand(_shape_attr(shape), generator=_generator(seed), dtype=dt)
    return out * (high - low) + low


def random_normal(dtype: int = 1, mean: float = 0.0, scale: float = 1.0, seed: Any = None, shape: Any = ()):
    """ONNX RandomNormal: ``shape`` values from N(mean, scale^2)."""
    dt = onnx_to_torch_dtype(dtype)
    return torch.randn(_shape_attr(shape), generator=_generator(seed), dtype=dt) * scale + mean


def random_uniform_like(input, dtype: int | None = None, high: float = 1.0, low: float = 0.0, seed: Any = None):
    """ONNX RandomUniformLike: uniform values of the input's shape (and dtype, unless given)."""
    dt = onnx_to_torch_dtype(dtype) if dtype is not None else input.dtype
    out = torch.rand(input.shape, generator=_generator(seed, input), dtype=dt, device=input.device)
    return out * (high - low) + low


def random_normal_like(input, dtype: int | None = None, mean: float = 0.0, scale: float = 1.0, seed: Any = None):
    """ONNX RandomNormalLike: normal values of the input's shape (and dtype, unless given)."""
    dt = onnx_to_torch_dtype(dtype) if dtype is not None else input.dtype
    return torch.randn(input.shape, generator=_generator(seed, input), dtype=dt, device=input.device) * scale + mean


def bernoulli(input, dtype: int | None = None, seed: Any = None):
    """ONNX Bernoulli: 1 with probability ``input``, else 0."""
    dt = onnx_to_torch_dtype(dtype) if dtype is not None else input.dtype
    p = input if input.is_floating_point() else input.double()
    return torch.bernoulli(p, generator=_generator(seed, input)).to(dt)


def multinomial(input, dtype: int = 6, sample_size: int = 1, seed: Any = None):
    """ONNX Multinomial: ``sample_size`` class indices per row of unnormalized log-probabilities."""
    probs = torch.softmax(input.double(), dim=-1)
    out = torch.multinomial(probs, int(sample_size), replacement=True, generator=_generator(seed, input))
    return out.to(onnx_to_torch_dtype(dtype))


for _n, _f, _ins in [("RandomUniform", random_uniform, ()), ("RandomNormal", random_normal, ()),
                     ("RandomUniformLike", random_uniform_like, ("input",)),
                     ("RandomNormalLike", random_normal_like, ("input",)),
                     ("Bernoulli", bernoulli, ("input",)), ("Multinomial", multinomial, ("input",))]:
    _reg(_n, _f, _ins, pure=False)


# -- recurrent layers (what torch.onnx.export writes for nn.LSTM / nn.GRU) ------------------------
_RNN_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def _rnn(op: str, step, X, W, R, B, sequence_lens, initial, *, activations, clip, direction, layout,
         n_gates: int, n_states: int):
    """The direction loop shared by ONNX LSTM and GRU: ``step(x_t, states, d, w, r, wb, rb, clip)``
    gives the new states (hidden first); returns Y and the final states, ONNX-shaped."""
    if activations is not None and [a.lower() for a in activations] != \
            [a.lower() for a in _RNN_DEFAULT_ACTIVATIONS[op]] * (2 if direction == "bidirectional" else 1):
        raise ValueError(f"ONNX {op}: only the default activations are implemented, not {activations}")
    if sequence_lens is not None and bool((sequence_lens != X.shape[1 - layout]).any()):
        raise ValueError(f"ONNX {op}: sequence_lens shorter than the sequence are not implemented")
    if layout:
        X = X.transpose(0, 1)
        initial = [None if s is None else s.transpose(0, 1) for s in initial]
    num_dir, hidden = W.shape[0], R.shape[-1]
    batch = X.shape[1]
    ys, finals = [], [[] for _ in range(n_states)]
    for d in range(num_dir):
        wb, rb = (B[d].chunk(2) if B is not None else
                  (X.new_zeros(n_gates * hidden), X.new_zeros(n_gates * hidden)))
        states = [initial[k][d] if initial[k] is not None else X.new_zeros(batch, hidden) for k in range(n_states)]
        reverse = direction == "reverse" or d == 1
        steps = range(X.shape[0] - 1, -1, -1) if reverse else range(X.shape[0])
        out = [None] * X.shape[0]
        for t in steps:
            states = step(X[t], states, d, W[d], R[d], wb, rb, clip)
            out[t] = states[0]
        ys.append(torch.stack(out) if out else X.new_zeros(0, batch, hidden))
        for k in range(n_states):
            finals[k].append(states[k])
    Y = torch.stack(ys, 1)  # [seq, num_dir, batch, hidden]
    finals = [torch.stack(f) for f in finals]
    if layout:
        return (Y.permute(2, 0, 1, 3), *(f.transpose(0, 1) for f in finals))
    return (Y, *finals)


def _clipped(x, clip):
    return x if clip is None else x.clamp(-clip, clip)


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None,
         activation_alpha=None, activation_beta=None, activations=None, clip: float | None = None,
         direction: str = "forward", hidden_size: int | None = None, input_forget: int = 0, layout: int = 0):
    """ONNX LSTM (gates i, o, f, c; peepholes P), default activations."""
    if input_forget:
        raise ValueError("ONNX LSTM: input_forget=1 is not implemented")

    def step(x, states, d, w, r, wb, rb, clip):
        h, c = states
        i, o, f, g = (x @ w.T + h @ r.T + wb + rb).chunk(4, -1)
        if P is not None:
            pi, po, pf = P[d].chunk(3)
            i, f = i + pi * c, f + pf * c
        i, f, g = torch.sigmoid(_clipped(i, clip)), torch.sigmoid(_clipped(f, clip)), torch.tanh(_clipped(g, clip))
        c = f * c + i * g
        if P is not None:
            o = o + po * c
        return [torch.sigmoid(_clipped(o, clip)) * torch.tanh(c), c]

    return _rnn("LSTM", step, X, W, R, B, sequence_lens, [initial_h, initial_c], activations=activations, clip=clip,
                direction=direction, layout=layout, n_gates=4, n_states=2)


def gru(X, W, R, B=None, sequence_lens=None, initial_h=None, activation_alpha=None, activation_beta=None,
        activations=None, clip: float | None = None, direction: str = "forward", hidden_size: int | None = None,
        layout: int = 0, linear_before_reset: int = 0):
    """ONNX GRU (gates z, r, h), default activations."""
    def step(x, states, d, w, r, wb, rb, clip):
        (h,) = states
        wz, wr, wh = (x @ w.T + wb).chunk(3, -1)
        rz, rr, rh = r.chunk(3, 0)
        rbz, rbr, rbh = rb.chunk(3)
        z = torch.sigmoid(_clipped(wz + h @ rz.T + rbz, clip))
        rt = torch.sigmoid(_clipped(wr + h @ rr.T + rbr, clip))
        if linear_before_reset:
            n = torch.tanh(_clipped(wh + rt * (h @ rh.T + rbh), clip))
        else:
            n = torch.tanh(_clipped(wh + (rt * h) @ rh.T + rbh, clip))
        return [(1 - z) * n + z * h]

    return _rnn("GRU", step, X, W, R, B, sequence_lens, [initial_h], activations=activations, clip=clip,
                direction=direction, layout=layout, n_gates=3, n_states=1)


_reg("LSTM", lstm, ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"), num_outputs=3)
_reg("GRU", gru, ("X", "W", "R", "B", "sequence_lens", "initial_h"), num_outputs=2)


# -- scatters (torch.onnx.export writes them for in-place index assignment; ATen's scatter*/index_put)
# -- sorting, scatter, resize (ATen coverage: the forms of topk/sort, scatter*, index_put, upsample)
def _unsupported(op: str, what: str):
    from ..errors import ConversionError

    return ConversionError(f"onnx::{op}: {what} is not supported")


def top_k(X, K, axis: int = -1, largest: int = 1, sorted: int = 1):  # noqa: A002 - ONNX names
    """ONNX TopK: the ``K`` largest (smallest) along ``axis``, equal values by lower index first."""
    k = int(K.reshape(-1)[0]) if isinstance(K, torch.Tensor) else int(K)
    if X.shape[axis] == k and sorted:  # a full sort: stable, as ONNX orders ties
        v, i = torch.sort(X, dim=axis, descending=bool(largest), stable=True)
        return v, i
    v, i = torch.topk(X, k, dim=axis, largest=bool(largest), sorted=bool(sorted))
    return v, i


_SCATTER_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def scatter_elements(data, indices, updates, axis: int = 0, reduction: str = "none"):
    """ONNX ScatterElements: ``data`` with ``updates`` written (or combined by ``reduction``)
    at ``indices`` along ``axis``; negative indices count from the end."""
    idx = torch.where(indices < 0, indices + data.shape[axis], indices).long()
    if reduction == "none":
        return torch.scatter(data, axis, idx, updates)
    if reduction not in _SCATTER_REDUCE:
        raise _unsupported("ScatterElements", f"reduction={reduction!r}")
    return torch.scatter_reduce(data, axis, idx, updates, _SCATTER_REDUCE[reduction], include_self=True)


def scatter_nd(data, indices, updates, reduction: str = "none"):
    """ONNX ScatterND: the last axis of ``indices`` addresses the leading dims of ``data``."""
    if reduction != "none" and reduction not in _SCATTER_REDUCE:
        raise _unsupported("ScatterND", f"reduction={reduction!r}")
    k = indices.shape[-1]
    lead, rest = tuple(data.shape[:k]), tuple(data.shape[k:])
    idx = indices.long()
    lin = torch.zeros(idx.shape[:-1], dtype=torch.long, device=data.device)
    for i, n in enumerate(lead):
        lin = lin * n + torch.where(idx[..., i] < 0, idx[..., i] + n, idx[..., i])
    flat = data.reshape((-1,) + rest)
    upd = updates.reshape((-1,) + rest).to(data.dtype)
    lin = lin.reshape(-1)
    if reduction == "none":
        out = flat.index_copy(0, lin, upd)
    elif reduction == "add":
        out = flat.index_add(0, lin, upd)
    else:
        with warnings.catch_warnings():  # "index_reduce() is in beta"
            warnings.simplefilter("ignore", UserWarning)
            out = flat.index_reduce(0, lin, upd, _SCATTER_REDUCE[reduction], include_self=True)
    return out.reshape(data.shape)


_RESIZE_MODES = {("nearest", "asymmetric"): ("nearest", None),
                 ("linear", "align_corners"): ("linear", True),
                 ("linear", "pytorch_half_pixel"): ("linear", False),
                 ("linear", "half_pixel"): ("linear", False),
                 ("cubic", "align_corners"): ("bicubic", True),
                 ("cubic", "pytorch_half_pixel"): ("bicubic", False)}


def resize(X, roi=None, scales=None, sizes=None, antialias: int = 0, axes=None,
           coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0, keep_aspect_ratio_policy: str = "stretch",
           mode: str = "nearest", nearest_mode: str = "round_prefer_floor"):
    """ONNX Resize of the spatial dims (N and C kept), in the forms torch's ``interpolate`` has:
    nearest (asymmetric, floor), linear and cubic (align_corners or pytorch_half_pixel)."""
    key = (mode, coordinate_transformation_mode)
    form = _RESIZE_MODES.get(key)
    if form is None or (mode == "nearest" and nearest_mode != "floor") or antialias or axes is not None \
            or (mode == "cubic" and cubic_coeff_a != -0.75) or exclude_outside:
        raise _unsupported("Resize", f"mode={mode!r} with coordinate_transformation_mode="
                           f"{coordinate_transformation_mode!r}, nearest_mode={nearest_mode!r}")
    nd = X.dim() - 2
    kind, align = form
    if kind == "linear":
        kind = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(nd, "")
        if not kind:
            raise _unsupported("Resize", f"linear mode on {nd} spatial dims")
    if sizes is not None and sizes.numel():
        size = [int(s) for s in sizes.reshape(-1).tolist()]
        if size[:2] != list(X.shape[:2]):
            raise _unsupported("Resize", "resizing the batch or channel dim")
        return F.interpolate(X, size=size[2:], mode=kind, align_corners=align)
    sc = [float(s) for s in scales.reshape(-1).tolist()]
    if sc[:2] != [1.0, 1.0]:
        raise _unsupported("Resize", "resizing the batch or channel dim")
    return F.interpolate(X, scale_factor=sc[2:], mode=kind, align_corners=align, recompute_scale_factor=False)


_reg("TopK", top_k, ("X", "K"), num_outputs=2)
_reg("ScatterElements", scatter_elements, ("data", "indices", "updates"))
_reg("ScatterND", scatter_nd, ("data", "indices", "updates"))
_reg("Resize", resize, ("X", "roi", "scales", "sizes"))


def grid_sample(X, grid, align_corners: int = 0, mode: str = "bilinear", padding_mode: str = "zeros"):
    """ONNX GridSample (opset 16-19 mode names) on 4-d input: torch's ``grid_sample``."""
    if mode not in ("bilinear", "nearest", "bicubic") or padding_mode not in ("zeros", "border", "reflection"):
        raise _unsupported("GridSample", f"mode={mode!r}, padding_mode={padding_mode!r}")
    return F.grid_sample(X, grid, mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners))


_reg("GridSample", grid_sample, ("X", "grid"), min_opset=16)
