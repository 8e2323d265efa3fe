"""torch.fx frontend: a ``GraphModule`` (or an ``nn.Module`` that ``symbolic_trace`` can
trace) -> IR.

``call_module`` of the standard leaf modules (Linear, Conv, BatchNorm, activations, pooling
...) and ``call_function``/``call_method`` of torch functions, Tensor methods and Python
operators are mapped onto ATen overloads, chosen by matching the call against each
overload's schema; ``get_attr`` becomes a named parameter/buffer.  Every call that has no
mapping is collected and reported at once.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import torch
import torch.fx
from torch import nn

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Provenance, TensorType, Value, ValueRole
from torchmdf.ir._signature import dumps_spec
from torchmdf.ops.aten_schema import match_overload

from ._fx_walk import FxGraphWalker, Unsupported

_OPERATORS = {
    operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.truediv: "div",
    operator.floordiv: "floor_divide", operator.pow: "pow", operator.neg: "neg", operator.matmul: "matmul",
    operator.mod: "remainder", operator.eq: "eq", operator.ne: "ne", operator.lt: "lt", operator.le: "le",
    operator.gt: "gt", operator.ge: "ge", operator.and_: "logical_and", operator.or_: "logical_or",
    operator.invert: "bitwise_not", operator.abs: "abs", operator.iadd: "add", operator.imul: "mul",
    operator.isub: "sub", operator.itruediv: "div",
}
_RENAME = {"truediv": "div", "sigmoid_": "sigmoid", "relu_": "relu", "softmax": "softmax",
           "log_softmax": "log_softmax", "contiguous": None, "dropout": None, "alpha_dropout": None,
           "feature_alpha_dropout": None, "dropout1d": None, "dropout2d": None, "dropout3d": None}
"""Function/method names whose aten spelling differs; None = identity at inference."""

_VARARG_METHODS = {"view", "reshape", "permute", "repeat", "expand", "tile", "flip"}
_TENSORS = (Value, torch.Tensor)


def _fx_attr(name: str, val: Any) -> Any:
    return list(val) if isinstance(val, tuple) else val


class _Lowerer(FxGraphWalker):
    origin = "fx"
    reported_errors = (TypeError, ValueError)

    def __init__(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any] | None):
        super().__init__()
        self.gm = gm
        self.g = Graph(type(gm).__name__ if type(gm).__name__ != "GraphModule" else "main")
        self.env: dict[torch.fx.Node, Any] = {}
        self.example_inputs = list(example_inputs) if example_inputs is not None else None
        self.params: dict[int, Value] = {}
        self.param_names = {id(p): n for n, p in gm.named_parameters()}
        self.buffer_names = {id(b): n for n, b in gm.named_buffers()}

    def location(self, node: torch.fx.Node) -> str:
        prov = self.provenance(node)
        return f"fx node '{node.name}'" + (f" [{prov}]" if str(prov) else "")

    # -- values -------------------------------------------------------------------------------
    def tensor_value(self, t: torch.Tensor, hint: str) -> Value:
        key = id(t)
        if key in self.params:
            return self.params[key]
        if key in self.param_names:
            v = self.g.add_parameter(self.param_names[key], t, role=ValueRole.PARAMETER)
        elif key in self.buffer_names:
            v = self.g.add_parameter(self.buffer_names[key], t, role=ValueRole.BUFFER)
        else:
            v = self.g.add_parameter(hint, t, role=ValueRole.CONSTANT)
        self.params[key] = v
        return v

    def as_value(self, x: Any) -> Value | None:
        if x is None:
            return None
        if isinstance(x, Value):
            return x
        if isinstance(x, torch.Tensor):
            return self.tensor_value(x, "const")
        if isinstance(x, (bool, int, float)):
            return self.g.add_constant(x)
        raise TypeError(f"cannot use {type(x).__name__} as a tensor")

    # -- ops ----------------------------------------------------------------------------------
    def emit(self, name: str, args: Sequence[Any], kwargs: dict[str, Any], prov: Provenance) -> Any:
        """Emit the aten overload of ``name`` that matches (args, kwargs)."""
        if getattr(torch.ops.aten, name, None) is None:
            raise Unsupported(f"{name}")
        match = match_overload(name, args, kwargs, _TENSORS)
        if match is None:
            raise Unsupported(f"aten::{name} with these arguments")
        ov_name, sig, bound = match
        inputs, attrs = sig.split(bound, self.as_value, _fx_attr)
        op = f"aten::{name}" if ov_name == "default" else f"aten::{name}.{ov_name}"
        nret = max(sig.num_returns, 1)
        node = self.g.create_node(op, inputs, attrs, num_outputs=nret, provenance=prov)
        return node.outputs[0] if nret == 1 else tuple(node.outputs)

    # -- the walk -------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.g
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for i, n in enumerate(placeholders):
            ty = TensorType()
            if self.example_inputs is not None and i < len(self.example_inputs) \
                    and isinstance(self.example_inputs[i], torch.Tensor):
                ty = TensorType.of(self.example_inputs[i])
            self.env[n] = g.add_input(n.target, ty)
        self.walk(self.gm, self.env)
        self.raise_unsupported("use torchmdf.compile(...) on the nn.Module (torch.export frontend), "
                               "or register the missing ops")
        g.verify()
        return g

    def output(self, n: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> None:
        if self.unsupported:
            return
        g = self.g
        outs = torch.fx.node.map_arg(n.args[0], lambda a: env.get(a))
        flat, spec = torch.utils._pytree.tree_flatten(outs)
        if any(not isinstance(v, Value) for v in flat):
            raise ConversionError("model output is not a tensor or structure of tensors",
                                  location=f"fx node {n.name}")
        g.outputs = list(flat)
        g.signature.out_spec = dumps_spec(spec)

    def get_attr(self, n: torch.fx.Node, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return self.tensor_value(obj, str(n.target))
        return obj

    @staticmethod
    def _call_args(n: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> tuple[Any, Any]:
        return (torch.fx.node.map_arg(n.args, lambda a: env[a]),
                torch.fx.node.map_arg(n.kwargs, lambda a: env[a]))

    def call_module(self, n: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        args, kwargs = self._call_args(n, env)
        mod = self.gm.get_submodule(str(n.target))
        return self.lower_module(mod, str(n.target), args, kwargs, self.provenance(n))

    def call_method(self, n: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        args, kwargs = self._call_args(n, env)
        name = str(n.target)
        if name in ("size", "dim") and args and isinstance(args[0], Value) and args[0].type.shape:
            shape = args[0].type.shape
            if name == "dim":
                return len(shape)
            if len(args) > 1:
                d = shape[args[1]]
                if isinstance(d, int):
                    return d
            elif all(isinstance(d, int) for d in shape):
                return torch.Size(shape)
        if name in _VARARG_METHODS and len(args) > 2 and all(isinstance(a, int) for a in args[1:]):
            args = (args[0], list(args[1:]))
        elif name in _VARARG_METHODS and len(args) == 2 and isinstance(args[1], int):
            args = (args[0], [args[1]])
        return self.call(name, args, kwargs, self.provenance(n))

    def call_function(self, n: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        args, kwargs = self._call_args(n, env)
        prov = self.provenance(n)
        t = n.target
        if isinstance(t, torch._ops.OpOverload):
            pkt = t._schema.name.split("::", 1)[1]
            return self.emit(pkt, args, kwargs, prov)
        if t is operator.getitem:
            return self.getitem(args[0], args[1], prov)
        if t in _OPERATORS:
            if all(not isinstance(a, Value) for a in args):
                return t(*args)  # Python arithmetic on shapes
            if t in (operator.truediv,) and not isinstance(args[0], Value):
                return self.emit("mul", [self.emit("reciprocal", [args[1]], {}, prov), args[0]], {}, prov)
            if not isinstance(args[0], Value):  # 2 - x, 2 * x
                if t is operator.sub:
                    return self.emit("rsub", [args[1], args[0]], {}, prov)
                if t in (operator.add, operator.mul):
                    args = (args[1], args[0])
            return self.call(_OPERATORS[t], args, kwargs, prov)
        if t in (getattr, math.sqrt):
            return t(*args)
        name = getattr(t, "__name__", str(t))
        return self.call(name, args, kwargs, prov)

    def call(self, name: str, args, kwargs, prov):
        if name in _RENAME:
            if _RENAME[name] is None:
                return args[0] if args else kwargs.get("input")
            name = _RENAME[name]
        if name.endswith("_") and not name.startswith("_") and hasattr(torch.ops.aten, name[:-1]):
            name = name[:-1]  # in-place op on a temporary: the functional form is equivalent here
        kwargs = dict(kwargs)
        kwargs.pop("inplace", None)  # in place on a temporary == functional form here
        if "input" in kwargs:
            args = (kwargs.pop("input"), *args)
        if name == "softmax" or name == "log_softmax":
            kwargs.pop("_stacklevel", None)
            kwargs.pop("dtype", None)
            dim = kwargs.pop("dim", args[1] if len(args) > 1 else None)
            return self.emit("_" + name, [args[0], dim, False], {}, prov)
        if name == "linear" and len(args) == 2 and "bias" not in kwargs:
            args = (*args, None)
        if name in ("mean", "sum", "amax", "amin") and "dim" in kwargs and isinstance(kwargs["dim"], int):
            kwargs["dim"] = [kwargs["dim"]]
        if name in ("mean", "sum") and len(args) > 1 and isinstance(args[1], int):
            args = (args[0], [args[1]], *args[2:])
        if name in ("cat", "concat", "stack") and "dim" in kwargs:
            args = (*args, kwargs.pop("dim"))
        return self.emit(name, args, kwargs, prov)

    def getitem(self, obj, idx, prov):
        if isinstance(obj, (tuple, list, torch.Size)):
            return obj[idx]
        if not isinstance(obj, Value):
            return obj[idx]
        items = idx if isinstance(idx, tuple) else (idx,)
        out = obj
        dim = 0
        for it in items:
            if isinstance(it, int):
                out = self.emit("select", [out, dim, it], {}, prov)
            elif isinstance(it, slice):
                if it != slice(None):
                    start = 0 if it.start is None else it.start
                    end = 2**63 - 1 if it.stop is None else it.stop
                    out = self.emit("slice", [out, dim, start, end, it.step or 1], {}, prov)
                dim += 1
            elif it is None:
                out = self.emit("unsqueeze", [out, dim], {}, prov)
                dim += 1
            else:
                raise TypeError(f"unsupported index {it!r}")
        return out

    def lower_module(self, mod: nn.Module, path: str, args, kwargs, prov):
        x = args[0] if args else kwargs.get("input")
        p = self.tensor_value
        if isinstance(mod, nn.Linear):
            b = p(mod.bias, f"{path}.bias") if mod.bias is not None else None
            return self.emit("linear", [x, p(mod.weight, f"{path}.weight"), b], {}, prov)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and mod.padding_mode == "zeros":
            nd = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(mod)]
            b = p(mod.bias, f"{path}.bias") if mod.bias is not None else None
            pad = mod.padding if isinstance(mod.padding, str) else list(mod.padding)
            return self.emit(f"conv{nd}d", [x, p(mod.weight, f"{path}.weight"), b, list(mod.stride), pad,
                                            list(mod.dilation), mod.groups], {}, prov)
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            training = mod.training or mod.running_mean is None
            w = p(mod.weight, f"{path}.weight") if mod.weight is not None else None
            b = p(mod.bias, f"{path}.bias") if mod.bias is not None else None
            rm = p(mod.running_mean, f"{path}.running_mean") if mod.running_mean is not None else None
            rv = p(mod.running_var, f"{path}.running_var") if mod.running_var is not None else None
            if training:
                raise Unsupported(f"{type(mod).__name__} in training mode (call .eval())")
            return self.emit("batch_norm", [x, w, b, rm, rv, False, mod.momentum or 0.1, mod.eps, False],
                             {}, prov)
        if isinstance(mod, nn.LayerNorm):
            w = p(mod.weight, f"{path}.weight") if mod.weight is not None else None
            b = p(mod.bias, f"{path}.bias") if getattr(mod, "bias", None) is not None else None
            return self.emit("layer_norm", [x, list(mod.normalized_shape), w, b, mod.eps], {}, prov)
        if isinstance(mod, nn.Embedding):
            return self.emit("embedding", [p(mod.weight, f"{path}.weight"), x], {}, prov)
        simple = {nn.ReLU: ("relu", []), nn.Sigmoid: ("sigmoid", []), nn.Tanh: ("tanh", []),
                  nn.SiLU: ("silu", []), nn.Mish: ("mish", []),
                  nn.Hardswish: ("hardswish", []), nn.Hardsigmoid: ("hardsigmoid", [])}
        if type(mod) in simple and simple[type(mod)] is not None:
            name, extra = simple[type(mod)]
            return self.emit(name, [x, *extra], {}, prov)
        if isinstance(mod, nn.Softplus):
            return self.emit("softplus", [x, mod.beta, mod.threshold], {}, prov)
        if isinstance(mod, nn.GELU):
            return self.emit("gelu", [x], {"approximate": mod.approximate}, prov)
        if isinstance(mod, nn.LeakyReLU):
            return self.emit("leaky_relu", [x, mod.negative_slope], {}, prov)
        if isinstance(mod, nn.ELU):
            return self.emit("elu", [x, mod.alpha], {}, prov)
        if isinstance(mod, nn.Hardtanh):
            return self.emit("hardtanh", [x, mod.min_val, mod.max_val], {}, prov)
        if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
            name = "_softmax" if isinstance(mod, nn.Softmax) else "_log_softmax"
            return self.emit(name, [x, mod.dim if mod.dim is not None else -1, False], {}, prov)
        if isinstance(mod, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)):
            if isinstance(mod, nn.Identity) or not mod.training:
                return x
        if isinstance(mod, nn.Flatten):
            return self.emit("flatten", [x, mod.start_dim, mod.end_dim], {}, prov)
        if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) and not mod.return_indices:
            nd = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(mod)]
            k, s, pd, dl = (_tup(v, nd) for v in (mod.kernel_size, mod.stride or mod.kernel_size, mod.padding,
                                                  mod.dilation))
            return self.emit(f"max_pool{nd}d", [x, k, s, pd, dl, mod.ceil_mode], {}, prov)
        if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            nd = {nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}[type(mod)]
            k, s, pd = (_tup(v, nd) for v in (mod.kernel_size, mod.stride or mod.kernel_size, mod.padding))
            return self.emit(f"avg_pool{nd}d", [x, k, s, pd, mod.ceil_mode, mod.count_include_pad], {}, prov)
        if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
            nd = 1 if isinstance(mod, nn.AdaptiveAvgPool1d) else 2
            out = _tup(mod.output_size, nd)
            return self.emit(f"adaptive_avg_pool{nd}d", [x, out], {}, prov)
        raise Unsupported(f"module {type(mod).__module__}.{type(mod).__name__}")


def _tup(v: Any, nd: int) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v] * nd


def lower_fx(gm: torch.fx.GraphModule | nn.Module, example_inputs: Sequence[Any] | None = None) -> Graph:
    """Lower a GraphModule (or a module ``symbolic_trace`` can trace) into the IR."""
    if not isinstance(gm, torch.fx.GraphModule):
        try:
            gm = torch.fx.symbolic_trace(gm)
        except Exception as e:  # noqa: BLE001 - tracing failures are user-facing
            raise UnsupportedOpError([(f"symbolic_trace of {type(gm).__name__}", _where(e))],
                                     message="torch.fx cannot trace this module:",
                                     hint="use torchmdf.compile(model, example_inputs=...) which goes "
                                     "through torch.export") from e
    if example_inputs is not None:
        from torch.fx.passes.shape_prop import ShapeProp

        try:
            ShapeProp(gm).propagate(*example_inputs)
        except Exception:  # noqa: BLE001 - types stay unknown; conversion still works
            pass
    return _Lowerer(gm, example_inputs).run()


def _where(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


__all__ = ["lower_fx"]
