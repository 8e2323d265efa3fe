"""FX backend: IR -> ``torch.fx.GraphModule`` that runs at native speed.

One FX node per IR op: ATen ops call their ``OpOverload`` directly, ONNX ops are mapped to
the fastest torch call (``Gemm`` -> ``F.linear``/``addmm``, ``Conv`` -> ``conv2d``, ``Reshape``
with a constant shape -> ``reshape`` ...), anything else calls the registry's torch
implementation.  Weights become ``nn.Parameter``s and buffers registered under their readable
(dotted) names, so ``state_dict()`` keys match the original model's.  No Python source is
written to disk and nothing is interpreted at run time.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Node, Value
from torchmdf.ops import registry

# -- ONNX op lowerings to direct torch calls -------------------------------------------------
# Each takes (builder, ir_node, args) where args are FX nodes (or None) for the IR inputs, and
# returns an FX node, or None to fall back to the registry impl.
_FX_RULES: dict[str, Callable[[FxBuilder, Node, list[Any]], Any]] = {}


def fx_rule(*ops: str):
    def deco(fn):
        for o in ops:
            _FX_RULES[o] = fn
        return fn

    return deco


def _const_tensor(v: Value | None) -> torch.Tensor | None:
    """The tensor of a constant (or parameter) IR value known at build time."""
    if v is not None and v.tensor is not None and v.role == "constant":
        return v.tensor
    return None


def _const_ints(v: Value | None) -> list[int] | None:
    t = _const_tensor(v)
    if t is None:
        return None
    return [int(x) for x in t.reshape(-1).tolist()]


class FxBuilder:
    """Builds the FX graph and the root module holding parameters and buffers."""

    def __init__(self, graph: Graph, root: nn.Module):
        self.ir = graph
        self.root = root
        self.fx = torch.fx.Graph()
        self.env: dict[Value, Any] = {}

    def call(self, target: Callable[..., Any], args: tuple = (), kwargs: dict | None = None,
             name: str | None = None) -> torch.fx.Node:
        n = self.fx.call_function(target, tuple(args), kwargs or {})
        if name:
            n.name = self.fx._graph_namespace.create_name(name, None)
        return n


@fx_rule("onnx::Gemm")
def _gemm(b: FxBuilder, n: Node, a: list[Any]):
    alpha, beta = n.attrs.get("alpha", 1.0), n.attrs.get("beta", 1.0)
    ta, tb = n.attrs.get("transA", 0), n.attrs.get("transB", 0)
    A, B, C = (a + [None, None, None])[:3]
    if ta:
        A = b.call(torch.t, (A,))
    c_val = n.inputs[2] if len(n.inputs) > 2 else None
    c_rank = c_val.type.rank if c_val is not None else None
    if alpha == 1.0 and (C is None or beta == 1.0) and tb and (C is None or c_rank == 1):
        return b.call(F.linear, (A, B, C))
    if tb:
        B = b.call(torch.t, (B,))
    if C is None:
        out = b.call(torch.matmul, (A, B))
        return out if alpha == 1.0 else b.call(operator.mul, (out, alpha))
    if c_rank in (1, 2):
        return b.call(torch.addmm, (C, A, B), {"beta": beta, "alpha": alpha}
                      if (alpha != 1.0 or beta != 1.0) else {})
    return None


_CONV_FX = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@fx_rule("onnx::Conv")
def _conv(b: FxBuilder, n: Node, a: list[Any]):
    w = n.inputs[1]
    nd = (w.type.rank - 2) if w.type.rank else (len(n.attrs["kernel_shape"]) if n.attrs.get("kernel_shape") else None)
    if nd not in _CONV_FX or n.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    pads = list(n.attrs.get("pads") or [0] * (2 * nd))
    if n.attrs.get("auto_pad") == "VALID":
        pads = [0] * (2 * nd)
    if pads[:nd] != pads[nd:]:
        return None
    X, W = a[0], a[1]
    B = a[2] if len(a) > 2 else None
    return b.call(_CONV_FX[nd], (X, W, B, tuple(n.attrs.get("strides") or [1] * nd), tuple(pads[:nd]),
                                 tuple(n.attrs.get("dilations") or [1] * nd), n.attrs.get("group", 1)))


_MAXPOOL_FX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVGPOOL_FX = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@fx_rule("onnx::MaxPool", "onnx::AveragePool")
def _pool(b: FxBuilder, n: Node, a: list[Any]):
    k = n.attrs.get("kernel_shape")
    if not k or n.attrs.get("auto_pad", "NOTSET") != "NOTSET" or len(n.outputs) != 1:
        return None
    nd = len(k)
    pads = list(n.attrs.get("pads") or [0] * (2 * nd))
    if pads[:nd] != pads[nd:]:
        return None
    strides = tuple(n.attrs.get("strides") or [1] * nd)
    ceil = bool(n.attrs.get("ceil_mode", 0))
    if n.op == "onnx::MaxPool":
        if n.attrs.get("storage_order", 0):
            return None
        dil = tuple(n.attrs.get("dilations") or [1] * nd)
        return b.call(_MAXPOOL_FX[nd], (a[0], tuple(k), strides, tuple(pads[:nd]), dil, ceil))
    if any(d != 1 for d in (n.attrs.get("dilations") or [1])):
        return None
    return b.call(_AVGPOOL_FX[nd], (a[0], tuple(k), strides, tuple(pads[:nd]), ceil,
                                    bool(n.attrs.get("count_include_pad", 0))))


@fx_rule("onnx::BatchNormalization")
def _bn(b: FxBuilder, n: Node, a: list[Any]):
    if n.attrs.get("training_mode", 0) or len(n.outputs) != 1:
        return None
    X, scale, B, mean, var = a[:5]
    return b.call(F.batch_norm, (X, mean, var, scale, B, False, 1 - n.attrs.get("momentum", 0.9),
                                 n.attrs.get("epsilon", 1e-5)))


@fx_rule("onnx::Reshape")
def _reshape(b: FxBuilder, n: Node, a: list[Any]):
    s = _const_ints(n.inputs[1])
    if s is None or (0 in s and not n.attrs.get("allowzero", 0)):
        return None
    return b.call(torch.reshape, (a[0], tuple(s)))


@fx_rule("onnx::Flatten")
def _flatten(b: FxBuilder, n: Node, a: list[Any]):
    axis = n.attrs.get("axis", 1)
    if axis == 1:
        return b.call(torch.flatten, (a[0], 1))
    return None


@fx_rule("onnx::Transpose")
def _transpose(b: FxBuilder, n: Node, a: list[Any]):
    perm = n.attrs.get("perm")
    if perm is None:
        return None
    return b.call(torch.permute, (a[0], tuple(perm)))


@fx_rule("onnx::Softmax", "onnx::LogSoftmax")
def _softmax(b: FxBuilder, n: Node, a: list[Any]):
    fn = torch.softmax if n.op == "onnx::Softmax" else torch.log_softmax
    return b.call(fn, (a[0], n.attrs.get("axis", -1)))


@fx_rule("onnx::Concat")
def _concat(b: FxBuilder, n: Node, a: list[Any]):
    return b.call(torch.cat, (list(a), n.attrs["axis"]))


@fx_rule("onnx::Unsqueeze")
def _unsqueeze(b: FxBuilder, n: Node, a: list[Any]):
    axes = _const_ints(n.inputs[1])
    if axes is None or len(axes) != 1 or axes[0] < 0:
        return None
    return b.call(torch.unsqueeze, (a[0], axes[0]))


@fx_rule("onnx::Squeeze")
def _squeeze(b: FxBuilder, n: Node, a: list[Any]):
    if len(n.inputs) < 2 or n.inputs[1] is None:
        return b.call(torch.squeeze, (a[0],))
    axes = _const_ints(n.inputs[1])
    if axes is None:
        return None
    return b.call(torch.squeeze, (a[0], tuple(axes)))


_REDUCE_FX = {"onnx::ReduceMean": torch.mean, "onnx::ReduceSum": torch.sum, "onnx::ReduceMax": torch.amax,
              "onnx::ReduceMin": torch.amin}


@fx_rule(*_REDUCE_FX)
def _reduce(b: FxBuilder, n: Node, a: list[Any]):
    axes = _const_ints(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] is not None else None
    if not axes:
        return None
    return b.call(_REDUCE_FX[n.op], (a[0], tuple(axes), bool(n.attrs.get("keepdims", 1))))


@fx_rule("onnx::Identity", "onnx::Dropout")
def _identity(b: FxBuilder, n: Node, a: list[Any]):
    if len(n.outputs) != 1:
        return None
    return a[0]


@fx_rule("onnx::Gather")
def _gather(b: FxBuilder, n: Node, a: list[Any]):
    idx = _const_tensor(n.inputs[1])
    axis = n.attrs.get("axis", 0)
    if idx is not None and idx.dim() == 0 and int(idx) >= 0:
        return b.call(torch.select, (a[0], axis, int(idx)))
    if n.inputs[1].type.dtype == torch.int64 and axis == 0 and n.inputs[0].role in ("parameter", "buffer"):
        return b.call(F.embedding, (a[1], a[0]))
    return None


@fx_rule("onnx::Slice")
def _slice(b: FxBuilder, n: Node, a: list[Any]):
    starts, ends = _const_ints(n.inputs[1]), _const_ints(n.inputs[2])
    axes = _const_ints(n.inputs[3]) if len(n.inputs) > 3 and n.inputs[3] is not None else None
    steps = _const_ints(n.inputs[4]) if len(n.inputs) > 4 and n.inputs[4] is not None else None
    rank = n.inputs[0].type.rank
    if starts is None or ends is None or rank is None:
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if any(s <= 0 for s in steps):
        return None
    idx: list[Any] = [slice(None)] * rank
    for s, e, ax, st in zip(starts, ends, axes, steps):
        e = None if e >= 2**62 else e
        idx[ax % rank] = slice(s, e, st if st != 1 else None)
    while idx and idx[-1] == slice(None):
        idx.pop()
    return b.call(operator.getitem, (a[0], tuple(idx)))


# -- the backend -----------------------------------------------------------------------------

def _module_for(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """The submodule that owns ``a.b.c`` (created on demand) and the leaf attribute name."""
    *path, leaf = dotted.split(".")
    mod = root
    for p in path:
        if not hasattr(mod, p):
            mod.add_module(p, nn.Module())
        sub = getattr(mod, p)
        if not isinstance(sub, nn.Module):
            raise ConversionError(f"parameter name {dotted!r} clashes with attribute {p!r}")
        mod = sub
    return mod, leaf


def _safe_attr_name(name: str) -> str:
    """Keep dotted names as they are (``layer1.0.conv1.weight``: state_dict keys then match
    the original model); only empty parts are replaced (FX uses getattr for odd parts)."""
    return ".".join(p if p else "_" for p in name.split("."))


def _named_target(fn: Callable[..., Any]) -> Callable[..., Any]:
    """FX cannot print lambdas; give them a name."""
    if getattr(fn, "__name__", "") == "<lambda>":
        def call(*args, **kwargs):
            return fn(*args, **kwargs)

        call.__name__ = "onnx_impl"
        call.__qualname__ = "onnx_impl"
        return call
    return fn


def _or_default(x, default):
    """Graph input defaults (MDF free input ports): use the file's value when not given."""
    return default if x is None else x


torch.fx.wrap("_or_default")


def emit_fx(graph: Graph, *, input_defaults: bool = False, output_dict: bool | None = None,
            class_name: str = "TorchMDFModule") -> torch.fx.GraphModule:
    """Build a GraphModule from ``graph``.

    ``input_defaults``: each input gets a default (its value in the MDF file, kept as a
    buffer ``_defaults.<name>``).  Outputs: the original pytree structure when
    ``graph.metadata`` has ``pytorch_out_spec``; a dict ``{name: tensor}`` when
    ``graph.output_names`` is set (MDF graphs) or ``output_dict``; else a tensor or tuple.
    """
    missing = [(n.op, n.location()) for n in graph if registry.lookup(n.op) is None]
    if missing:
        raise UnsupportedOpError(missing, hint="register the ops with torchmdf.ops.register()")
    if graph.state:
        raise ConversionError(f"graph '{graph.name}' has state; use torchmdf.simulate() or "
                              "emit_stateful_fx() for dynamical models")
    root = nn.Module()
    b = FxBuilder(graph, root)
    fx = b.fx

    # inputs
    in_names = []
    for v in graph.inputs:
        name = _safe_attr_name(v.name).replace(".", "_")
        ph = fx.placeholder(name, default_value=None if input_defaults else torch.fx.node.inspect.Signature.empty)
        in_names.append(ph.name)
        if input_defaults and v.meta.get("default") is not None:
            dname = f"_defaults.{name}"
            mod, leaf = _module_for(root, dname)
            mod.register_buffer(leaf, torch.as_tensor(v.meta["default"]), persistent=False)
            d = fx.get_attr(dname)
            ph_val = fx.call_function(_or_default, (ph, d))
            b.env[v] = ph_val
        else:
            b.env[v] = ph

    # parameters, buffers, constants
    for name, v in graph.parameters.items():
        if not v._uses and v not in graph.outputs:
            continue
        t = v.tensor
        # float64 is excluded: a 0-dim float64 tensor and a Python float promote differently
        if v.role == "constant" and t.dim() == 0 and t.dtype in (torch.float32, torch.int64) \
                and v not in graph.outputs and all(_scalar_ok(u, i) for u, i in v._uses):
            b.env[v] = t.item()
            continue
        target = _safe_attr_name(name)
        if v.role == "constant":
            target = f"_constants.{target.replace('.', '_')}"
        mod, leaf = _module_for(root, target)
        if hasattr(mod, leaf):
            target = f"{target}_{len(b.env)}"
            mod, leaf = _module_for(root, target)
        if v.role == "parameter":
            mod.register_parameter(leaf, nn.Parameter(t.clone() if not t.is_floating_point() else t.clone(),
                                                      requires_grad=t.is_floating_point() or t.is_complex()))
        else:
            mod.register_buffer(leaf, t.clone(), persistent=v.role == "buffer")
        b.env[v] = fx.get_attr(target)

    # nodes
    for n in graph:
        args = [None if v is None else b.env[v] for v in n.inputs]
        out = _lower_node(b, n, args)
        if len(n.outputs) == 1:
            b.env[n.outputs[0]] = out
        else:
            for i, o in enumerate(n.outputs):
                if o._uses or o in graph.outputs:
                    b.env[o] = fx.call_function(operator.getitem, (out, i))

    # outputs
    outs = [b.env[v] for v in graph.outputs]
    out_spec = graph.metadata.get("pytorch_out_spec")
    in_spec = graph.metadata.get("pytorch_in_spec")
    if graph.output_names is not None and (output_dict or output_dict is None) and not out_spec:
        fx.output({k: o for k, o in zip(graph.output_names, outs)})
    elif out_spec or in_spec:
        fx.output(tuple(outs) if len(outs) != 1 or out_spec else outs[0])
    elif len(outs) == 1:
        fx.output(outs[0])
    else:
        fx.output(tuple(outs))

    if out_spec or in_spec:
        _install_pytree_codegen(fx, in_names, in_spec, out_spec)
    gm = torch.fx.GraphModule(root, fx, class_name=class_name)
    for prefix in ("_defaults", "_constants"):  # GraphModule re-registers buffers as persistent
        sub = getattr(gm, prefix, None)
        if isinstance(sub, nn.Module):
            sub._non_persistent_buffers_set.update(dict(sub.named_buffers(recurse=False)))
    gm.meta["torchmdf_graph_name"] = graph.name
    return gm


def _scalar_ok(user: Node, index: int) -> bool:
    """Can a 0-dim constant be inlined as a Python number at this use?"""
    if user.op in _SCALAR_OK_ONNX:
        return True
    return False


_SCALAR_OK_ONNX = {"onnx::Add", "onnx::Sub", "onnx::Mul", "onnx::Pow"}


def _is_flat_inputs(spec, n: int) -> bool:
    """True when the spec is ``((leaf, ..., leaf), {})``: plain positional tensors."""
    from torch.utils import _pytree as pytree

    return spec == pytree.tree_flatten((tuple(range(n)), {}))[1]


def _install_pytree_codegen(fx: torch.fx.Graph, in_names: list[str], in_spec: str | None,
                            out_spec: str | None) -> None:
    """Accept and return the original model's structures.  Plain positional inputs and a
    single tensor or flat tuple output need no pytree code (that would cost time per call)."""
    from torch.utils import _pytree as pytree

    try:
        from torch.fx.graph import _PyTreeCodeGen, _PyTreeInfo
    except ImportError:  # pragma: no cover - older torch: flat calling convention
        return
    ispec = pytree.treespec_loads(in_spec) if in_spec else None
    ospec = pytree.treespec_loads(out_spec) if out_spec else None
    if ispec is not None and ispec.num_leaves != len(in_names):
        ispec = None
    flat_in = ispec is None or _is_flat_inputs(ispec, len(in_names))
    out_node = next(n for n in reversed(fx.nodes) if n.op == "output")
    outs = out_node.args[0]
    if ospec is not None:
        leaf = pytree.tree_flatten(0)[1]
        flat_tuple = pytree.tree_flatten(tuple(range(ospec.num_leaves)))[1]
        if ospec == leaf and len(outs) == 1:
            out_node.args = (outs[0],)
            ospec = None
        elif ospec == flat_tuple:
            ospec = None
    if flat_in and ospec is None:
        return
    if ispec is None:
        ispec = pytree.tree_flatten((tuple(range(len(in_names))), {}))[1]
    fx._codegen = _PyTreeCodeGen(_PyTreeInfo(in_names, ispec, ospec))


def _lower_node(b: FxBuilder, n: Node, args: list[Any]) -> Any:
    rule = _FX_RULES.get(n.op)
    if rule is not None:
        out = rule(b, n, args)
        if out is not None:
            return out
    d = registry.get(n.op, n.location())
    if n.op.startswith("aten::"):
        sig = registry.aten_signature(d.fx_target)
        cargs, ckw = sig.build_call(args, n.attrs)
        return b.call(d.fx_target, tuple(cargs), ckw)
    return b.call(_named_target(d.impl), tuple(args), dict(n.attrs))


__all__ = ["emit_fx", "fx_rule", "FxBuilder"]
