"""The MDF standard functions (``mdf::linear`` ...) as registry entries.  Their arguments
are all tensor inputs because MDF lets any argument be an expression; the formulas are those
of ``modeci_mdf.functions.standard``."""

from __future__ import annotations

import torch

from .registry import op


def _s(fn, scale):
    return fn if scale is None else scale * fn


@op("mdf::linear", input_names=("variable0", "slope", "intercept"), mdf_name="linear")
def linear(variable0, slope, intercept):
    """variable0 * slope + intercept"""
    return variable0 * slope + intercept


@op("mdf::logistic", input_names=("variable0", "gain", "bias", "offset"), mdf_name="logistic")
def logistic(variable0, gain, bias, offset):
    """1/(1 + exp(-1*gain*(variable0 + bias) + offset))"""
    return 1 / (1 + torch.exp(-1 * gain * (variable0 + bias) + offset))


@op("mdf::exponential", input_names=("variable0", "scale", "rate", "bias", "offset"), mdf_name="exponential")
def exponential(variable0, scale, rate, bias, offset):
    """scale * exp((rate * variable0) + bias) + offset"""
    return scale * torch.exp((rate * variable0) + bias) + offset


def _scaled(name: str, fn) -> None:
    def impl(variable0, scale):
        return scale * fn(variable0)

    impl.__doc__ = f"scale * {name}(variable0)"
    op(f"mdf::{name}", input_names=("variable0", "scale"), mdf_name=name)(impl)


for _name, _fn in [("sin", torch.sin), ("cos", torch.cos), ("tan", torch.tan), ("sinh", torch.sinh),
                   ("cosh", torch.cosh), ("tanh", torch.tanh), ("arcsin", torch.asin),
                   ("arccos", torch.acos), ("arctan", torch.atan)]:
    _scaled(_name, _fn)


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


@op("mdf::MatMul", input_names=("A", "B"), mdf_name="MatMul")
def matmul(A, B):
    """A @ B (operands of different dtypes promote as in numpy, which modeci_mdf uses: an int64
    and a float64 array multiply in float64, where torch.matmul raises)"""
    if A.dtype != B.dtype:
        t = numpy_result_type(A, B)
        A, B = A.to(t), B.to(t)
    return torch.matmul(A, B)


@op("mdf::Relu", input_names=("A",), mdf_name="Relu")
def relu(A):
    """A * (A > 0)"""
    return A * (A > 0)


STANDARD_FUNCTIONS = ("linear", "logistic", "exponential", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                      "arcsin", "arccos", "arctan", "MatMul", "Relu")
