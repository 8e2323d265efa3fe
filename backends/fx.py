"""FX backend: IR -> ``torch.fx.GraphModule`` that runs at native speed.

The module is straight-line code with one FX node per IR op where possible, each calling the
fastest torch builtin directly: ATen ops call their ``OpOverload``; ONNX ops are mapped by the
rules below (``Gemm`` -> ``linear``/``addmm``, ``Conv`` -> ``conv2d``, ``BatchNormalization``
-> ``batch_norm``, ``Reshape`` -> ``reshape``...), with 0-d constants inlined as Python numbers
where that is exact (next to a float32/float64/int32/int64 tensor in an elementwise op: a 0-d
buffer of that dtype, which costs less per call than a number).  Only ops without a rule call
their registry implementation.  The generated code fetches parameters and buffers through the
modules' dicts rather than ``Module.__getattr__`` (see :func:`_fast_attr_fetches`).

Nothing is interpreted per call: shape arithmetic that a dynamic-shape export leaves in the
graph (``Shape`` -> ``Gather`` -> ``Concat`` -> ``Reshape``) is resolved while building into
Python ints (dims the IR types fix) and ``x.size(i)`` calls (symbolic dims), so ``reshape``
gets a plain size list (and the module stays traceable by ``torch.export``/``torch.compile``).
Patterns the canonical form spells with several ops (export's ``view -> addmm -> view`` around
``nn.Linear`` on N-d inputs, the reshapes around batched matmuls, attention, SiLU) are fused back
into the one call the original made by the ``fuse_for_fx`` pass, run on a copy of the graph.
Each op's lowering is its registry entry's ``fx_lower`` (the ``fx_rule`` definitions below set
those of the ONNX ops).  Ops that create tensors follow the device of the inputs, so
``.to(device)`` works like on a native module.

Weights are ``nn.Parameter``s and buffers registered under their dotted names in submodules,
so ``state_dict()`` keys match the original model's.  A stateful graph (buffers mutated in
``forward``: BatchNorm in training mode, counters) keeps its state in persistent buffers that
each call updates in place (``buffer.copy_(next)``), like the original module.  No Python
source is written to disk.
"""

from __future__ import annotations

import ast
import keyword
import operator
from typing import Any, Callable, Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from torchmdf.errors import ConversionError, TorchMDFError, UnsupportedOpError
from torchmdf.ir import Graph, Node, TensorType, Value, ValueRole
from torchmdf.ir.meta_keys import DEFAULT, PERSISTENT
from torchmdf.ops import registry
from torchmdf.ops.onnx_ops import axes_in_range, split_sizes
from torchmdf.passes.fuse_for_fx import fused_for_fx

Rule = Callable[["FxBuilder", Node, "_Args"], Any]


def fx_rule(*ops: str) -> Callable[[Rule], Rule]:
    """Make ``rule(builder, ir_node, args)`` the FX lowering (``OpDef.fx_lower``) of ``ops``.

    ``args[i]`` is the FX value of the node's i-th input (created on first access), or None.
    A rule returns an FX node (a tuple/list of them for several outputs), or None to fall
    back to the next option (the op's ``fx_target``, then its registry implementation).
    """
    return registry.fx_lowering(*ops)


def _builtin(*ops: str) -> Callable[[Rule], Rule]:
    """The built-in FX lowering of ``ops``: a default (never over one a user set)."""
    return registry.fx_lowering(*ops, keep_existing=True)


# -- run-time helpers (module level: GraphModules that call them pickle and deepcopy) -------


def _or_default(x, default):
    """Graph input defaults (MDF free input ports): use the file's value when not given."""
    return default if x is None else x


torch.fx.wrap("_or_default")


def _shape_tensor(x, start=0, end=None):
    """ONNX ``Shape`` as a tensor on ``x``'s device (only emitted where a tensor is needed)."""
    return torch.tensor(x.shape[start:end], dtype=torch.int64, device=x.device)


# -- building ---------------------------------------------------------------------------------


class _Lazy:
    """A named tensor of the root module, fetched with ``get_attr`` on first use."""

    __slots__ = ("target", "node")

    def __init__(self, target: str):
        self.target = target
        self.node: torch.fx.Node | None = None


class _Args(Sequence):
    """An IR node's inputs as FX values, resolved (``get_attr`` emitted) on access, so
    constants a rule reads at build time, or inlines as numbers, cost nothing at run time."""

    def __init__(self, b: FxBuilder, n: Node):
        self.b, self.n = b, n

    def __len__(self) -> int:
        return len(self.n.inputs)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        v = self.n.inputs[i]
        return None if v is None else self.b.get(v)


_NUMBER_BUFFER_DTYPES = (torch.float32, torch.float64, torch.int32, torch.int64)


class FxBuilder:
    """Builds the FX graph and the root module holding parameters and buffers."""

    def __init__(self, graph: Graph):
        self.ir = graph
        self.root = nn.Module()
        self.fx = torch.fx.Graph()
        self.env: dict[Value, Any] = {}
        self.shapes: dict[Value, _ShapeVal] = {}
        self.impure: set[torch.fx.Node] = set()
        self.updated_in_place: set[str] = set()  # state variables an op updates itself
        self.defaults: dict[str, str] = {}  # graph input name -> buffer holding its default
        self.prologue: list[str] = []  # lines run first in forward (input defaults, shape guards)
        self.placeholder_of: dict[Value, str] = {}
        self._sizes: dict[tuple[Value, int], Any] = {}
        self._number_buffers: dict[tuple[Any, ...], _Lazy] = {}
        self._device: Any = False  # False: not made yet; None: no tensor to follow
        self._reserved = set(dir(torch.fx.GraphModule))

    # -- FX node helpers -------------------------------------------------------------------
    def call(self, target: Callable[..., Any], args: Sequence[Any] = (), kwargs: dict | None = None) -> torch.fx.Node:
        return self.fx.call_function(target, tuple(args), kwargs or {})

    def method(self, name: str, args: Sequence[Any], kwargs: dict | None = None) -> torch.fx.Node:
        return self.fx.call_method(name, tuple(args), kwargs or {})

    def get(self, v: Value) -> Any:
        """The FX value of an IR value (a get_attr is emitted at its first use)."""
        x = self.env.get(v)
        if isinstance(x, _Lazy):
            if x.node is None:
                x.node = self.fx.get_attr(x.target)
            return x.node
        if x is None and v not in self.env:
            if v.tensor is not None and v.role == ValueRole.CONSTANT:
                return self.get(self.register_constant(v))
            raise ConversionError(f"value %{v.name} is used before it is defined")
        return x

    def register_constant(self, v: Value) -> Value:
        self.env[v] = _Lazy(self.constant_buffer(v.name, v.tensor))
        return v

    def constant_buffer(self, hint: str, t: torch.Tensor) -> str:
        """Hold ``t`` as a (non-persistent) buffer under ``_constants``; returns its path."""
        mod, leaf = self.module_for("_constants." + _attr_part(hint.replace(".", "_")))
        k = 1
        base = leaf
        while hasattr(mod, leaf):
            leaf = f"{base}_{k}"
            k += 1
        mod.register_buffer(leaf, t.clone(), persistent=False)
        return f"_constants.{leaf}"

    def module_for(self, dotted: str) -> tuple[nn.Module, str]:
        """The submodule that owns ``a.b.c`` (created on demand) and the leaf name."""
        *path, leaf = dotted.split(".")
        mod = self.root
        for p in path:
            sub = mod._modules.get(p)
            if sub is None:
                if hasattr(mod, p):
                    raise ConversionError(f"tensor name {dotted!r} clashes with attribute {p!r}")
                sub = nn.Module()
                mod.add_module(p, sub)
            mod = sub
        return mod, leaf

    def attr_name(self, name: str) -> str:
        """A dotted attribute path for a tensor name: keeps ``layer1.0.conv1.weight`` as it is
        (so ``state_dict`` keys match the original); only parts Python or GraphModule cannot
        hold are changed."""
        parts = [_attr_part(p) for p in name.split(".")]
        if parts[0] in self._reserved:
            parts[0] += "_"
        return ".".join(parts)

    def scalar(self, v: Value | None, other: Value | None) -> Any:
        """``v`` as a Python number when it is a 0-d constant and inlining it next to
        ``other`` gives the same result dtype and values as the tensor; else its FX value."""
        if v is None:
            return None
        t = v.tensor if v.role == ValueRole.CONSTANT else None
        if t is None or t.dim() != 0 or other is None or other.is_constant or t.dtype == torch.bool:
            return self.get(v)
        dt, rank = other.type.dtype, other.type.rank
        if dt is None or dt == torch.bool or t.is_complex() or dt.is_complex:
            return self.get(v)
        if not (dt == t.dtype or (rank is not None and rank >= 1)):
            return self.get(v)  # two 0-d tensors promote differently from tensor + number
        if t.is_floating_point() and not dt.is_floating_point:
            return self.get(v)
        return t.item()

    def number_operand(self, v: Value | None, other: Value | None) -> Any:
        """``v`` as an operand of an elementwise op (add, sub, mul, a comparison, where) next
        to ``other``: where :meth:`scalar` inlines a Python number and ``other`` is float32,
        float64, int32 or int64, a 0-d constant buffer of ``other``'s dtype holding the number
        as that op would cast it (shared by the uses of one value).  A Python number costs a
        call a wrapped 0-d tensor and, unless it is already ``other``'s dtype, a cast of it
        (several microseconds on a slow core, more than the op on a small tensor); the buffer
        gives the same dtype and values, and follows ``.to()`` like the other constants."""
        x = self.scalar(v, other)
        if isinstance(x, torch.fx.Node) or x is None or isinstance(x, bool) or other is None:
            return x
        dt = other.type.dtype
        if dt not in _NUMBER_BUFFER_DTYPES or not isinstance(x, (int, float)):
            return x
        t = torch.tensor(x, dtype=dt)
        if not (dt.is_floating_point and isinstance(x, float)) and t.item() != x:
            return x  # an int out of the dtype's range, or one a float cannot hold exactly
        key = (dt, type(x).__name__, repr(x))
        lazy = self._number_buffers.get(key)
        if lazy is None:
            hint = "num_" + repr(x).replace("-", "neg").replace(".", "_").replace("+", "")
            lazy = self._number_buffers[key] = _Lazy(self.constant_buffer(hint, t))
        if lazy.node is None:
            lazy.node = self.fx.get_attr(lazy.target)
        return lazy.node

    def size(self, v: Value, i: int) -> Any:
        """Dim ``i`` of ``v``: an int where the type fixes it, else an ``x.size(i)`` node."""
        shape = v.type.shape
        if shape is not None and isinstance(shape[i], int):
            return shape[i]
        key = (v, i)
        if key not in self._sizes:
            self._sizes[key] = self.method("size", (self.get(v), i))
        return self._sizes[key]

    def device(self) -> Any:
        """An FX node giving the device the module runs on (the first input's, else the first
        parameter's), for ops that create tensors; None when there is nothing to follow."""
        if self._device is False:
            src = next((v for v in self.ir.inputs if v in self.env), None)
            if src is None:
                src = next((v for v in list(self.ir.parameters.values()) + [s.current for s in self.ir.state]
                            if isinstance(self.env.get(v), _Lazy)), None)
            self._device = None if src is None else self.call(getattr, (self.get(src), "device"))
        return self._device

    # -- constants known at build time --------------------------------------------------------
    @staticmethod
    def const(v: Value | None) -> torch.Tensor | None:
        if v is not None and v.tensor is not None and v.role == ValueRole.CONSTANT:
            return v.tensor
        return None

    def const_ints(self, v: Value | None) -> list[int] | None:
        t = self.const(v)
        if t is None or t.is_floating_point() or t.is_complex() or t.numel() > 4096:
            return None
        return [int(x) for x in t.reshape(-1).tolist()]

    def shape_arg(self, v: Value | None) -> list[Any] | None:
        """A 1-D int tensor input as a Python list of ints and ``size`` nodes, if it is a
        constant or computed from shapes; else None."""
        sv = _shape_val(self, v)
        if sv is None:
            return None
        return [sv.items] if sv.scalar else list(sv.items)

    def scalar_arg(self, v: Value | None) -> Any:
        """A 0-d int input as an int or ``size`` node, if known at build time; else None."""
        sv = _shape_val(self, v)
        if sv is None:
            return None
        if sv.scalar:
            return sv.items
        return sv.items[0] if len(sv.items) == 1 else None


def _attr_part(p: str) -> str:
    p = "".join(c if (c.isalnum() or c == "_") else "_" for c in p) or "_"
    if keyword.iskeyword(p):  # a value named "if" (an If's output) as a placeholder
        p += "_"
    return p


# -- shape values: int tensors computed from shapes, resolved at build time ------------------


class _ShapeVal:
    """A small int tensor known at build time as Python values: ``items`` is a list of ints and
    FX nodes (1-D), or one of them (0-d, ``scalar``)."""

    __slots__ = ("items", "scalar")

    def __init__(self, items: Any, scalar: bool):
        self.items = items
        self.scalar = scalar

    def as_list(self) -> list[Any]:
        return [self.items] if self.scalar else list(self.items)


def _shape_val(b: FxBuilder, v: Value | None) -> _ShapeVal | None:
    if v is None:
        return None
    sv = b.shapes.get(v)
    if sv is not None:
        return sv
    t = b.const(v)
    if t is not None and t.dim() <= 1 and t.numel() <= 64 and not t.is_floating_point() \
            and t.dtype != torch.bool and not t.is_complex():
        vals = [int(x) for x in t.reshape(-1).tolist()]
        return _ShapeVal(vals[0], True) if t.dim() == 0 else _ShapeVal(vals, False)
    return None


_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _arith(b: FxBuilder, fn: Callable[[Any, Any], Any], x: Any, y: Any) -> Any:
    if isinstance(x, int) and isinstance(y, int):
        return fn(x, y)
    return b.call(fn, (x, y))


def _trunc_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


_SHAPE_ARITH = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": None,
                "Max": max, "Min": min}


def _eval_shape(b: FxBuilder, n: Node) -> _ShapeVal | None:
    """The shape value of ``n``'s (single) output, when its inputs are shape values."""
    op = n.op
    dom, name = op.split("::", 1)
    name = name.split(".", 1)[0] if dom == "aten" else name
    if len(n.outputs) != 1:
        return None
    ins = n.inputs
    if name in ("Shape", "_shape_as_tensor"):
        x = ins[0]
        rank = x.type.rank if x is not None else None
        if rank is None:
            return None
        start, end = n.attrs.get("start", 0), n.attrs.get("end")
        idx = range(rank)[slice(start, end)]
        return _ShapeVal([b.size(x, i) for i in idx], False)
    if dom == "aten" and name == "sym_size":
        return None
    args = [_shape_val(b, v) for v in ins]
    if not args or args[0] is None:
        return None
    a0 = args[0]
    try:
        if name in ("Identity",) or (name == "Cast" and _cast_dtype(n) in _INT_DTYPES):
            return a0
        if name == "Gather" and n.attrs.get("axis", 0) == 0 and not a0.scalar:
            idx = args[1] if len(args) > 1 else None
            if idx is None or not all(isinstance(i, int) for i in idx.as_list()):
                return None
            if idx.scalar:
                return _ShapeVal(a0.items[idx.items], True)
            return _ShapeVal([a0.items[i] for i in idx.items], False)
        if name == "select" and not a0.scalar and n.attrs.get("dim", 0) == 0:
            return _ShapeVal(a0.items[int(n.attrs["index"])], True)
        if name == "Slice" and not a0.scalar:
            st = [_shape_val(b, v) for v in ins[1:]]
            vals = [s.as_list() if s is not None else None for s in st]
            if any(x is None or not all(isinstance(i, int) for i in x) for x in vals[:2]):
                return None
            axes = vals[2] if len(vals) > 2 and ins[3] is not None else [0]
            steps = vals[3] if len(vals) > 3 and ins[4] is not None else [1]
            if axes not in ([0], [-1]) or steps is None or not all(isinstance(s, int) for s in steps):
                return None
            return _ShapeVal(a0.items[slice(vals[0][0], vals[1][0], steps[0])], False)
        if name == "Concat" and n.attrs.get("axis", 0) in (0, -1):
            out: list[Any] = []
            for a in args:
                if a is None or a.scalar:
                    return None
                out += a.items
            return _ShapeVal(out, False)
        if name == "stack" and n.attrs.get("dim", 0) == 0:
            if any(a is None or not a.scalar for a in args):
                return None
            return _ShapeVal([a.items for a in args], False)
        if name == "Unsqueeze" and a0.scalar:
            axes = args[1].as_list() if len(args) > 1 and args[1] is not None else n.attrs.get("axes")
            return _ShapeVal([a0.items], False) if list(axes or []) in ([0], [-1]) else None
        if name == "Squeeze" and not a0.scalar and len(a0.items) == 1:
            return _ShapeVal(a0.items[0], True)
        if name == "Reshape" and len(args) > 1 and args[1] is not None:
            target = args[1].as_list()
            items = a0.as_list()
            if target in ([-1], [len(items)]):
                return _ShapeVal(items, False)
            if target == [] and len(items) == 1:
                return _ShapeVal(items[0], True)
            return None
        if name in _SHAPE_ARITH and len(args) == 2 and args[1] is not None:
            if n.outputs[0].type.dtype not in _INT_DTYPES:
                return None
            a1 = args[1]
            fn = _SHAPE_ARITH[name]
            if fn is None:
                if not all(isinstance(i, int) for i in a0.as_list() + a1.as_list()):
                    fn = operator.floordiv  # shape arithmetic: non-negative sizes
                else:
                    fn = _trunc_div
            if a0.scalar and a1.scalar:
                return _ShapeVal(_arith(b, fn, a0.items, a1.items), True)
            la, lb = a0.as_list(), a1.as_list()
            if len(la) == 1 and len(lb) > 1:
                la = la * len(lb)
            if len(lb) == 1 and len(la) > 1:
                lb = lb * len(la)
            if len(la) != len(lb):
                return None
            return _ShapeVal([_arith(b, fn, x, y) for x, y in zip(la, lb)], False)
    except (IndexError, TypeError, ValueError, ZeroDivisionError):
        return None
    return None


def _cast_dtype(n: Node) -> torch.dtype | None:
    to = n.attrs.get("to")
    if to is None:
        return None
    from torchmdf.ops.onnx_ops import onnx_to_torch_dtype

    try:
        return onnx_to_torch_dtype(int(to))
    except (KeyError, TypeError, ValueError):
        return None


# -- ONNX lowerings ---------------------------------------------------------------------------


def _rank(v: Value | None) -> int | None:
    return None if v is None else v.type.rank


@_builtin("onnx::Gemm")
def _gemm(b: FxBuilder, n: Node, a: _Args):
    alpha, beta = n.attrs.get("alpha", 1.0), n.attrs.get("beta", 1.0)
    ta, tb = n.attrs.get("transA", 0), n.attrs.get("transB", 0)
    A, Bv = a[0], a[1]
    dt = n.inputs[0].type.dtype if isinstance(n.inputs[0].type, TensorType) else None
    if (alpha != 1.0 or beta != 1.0) and (dt is None or not dt.is_floating_point):
        return None  # integers: the impl computes in float64 and keeps the integer type
    c_val = n.inputs[2] if len(n.inputs) > 2 else None
    if ta:
        A = b.call(torch.t, (A,))
    w_shape = n.inputs[1].type.shape
    c_shape = c_val.type.shape if c_val is not None else None
    bias_ok = c_val is None or (beta == 1.0 and c_shape is not None and len(c_shape) == 1 and w_shape is not None
                                and c_shape[0] == w_shape[0] and isinstance(c_shape[0], int))
    if alpha == 1.0 and tb and bias_ok:
        return b.call(F.linear, (A, Bv, a[2] if c_val is not None else None))
    if tb:
        Bv = b.call(torch.t, (Bv,))
    if c_val is None:
        out = b.call(torch.matmul, (A, Bv))
        return out if alpha == 1.0 else b.call(torch.mul, (out, alpha))
    if c_shape is not None and len(c_shape) <= 2:
        kw = {"beta": beta, "alpha": alpha} if (alpha != 1.0 or beta != 1.0) else {}
        return b.call(torch.addmm, (a[2], A, Bv), kw)
    return None


_CONV_FX = {1: torch.conv1d, 2: torch.conv2d, 3: torch.conv3d}
_CONVT_FX = {1: torch.conv_transpose1d, 2: torch.conv_transpose2d, 3: torch.conv_transpose3d}


def _spatial(n: Node, w: Value | None) -> int | None:
    if w is not None and w.type.rank:
        return w.type.rank - 2
    k = n.attrs.get("kernel_shape")
    return len(k) if k else None


def _sym_pads(n: Node, nd: int) -> list[int] | None:
    """Symmetric ONNX pads as torch padding, or None (auto_pad SAME / asymmetric)."""
    auto = n.attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return [0] * nd
    if auto not in ("NOTSET", None):
        return None
    pads = list(n.attrs.get("pads") or [0] * (2 * nd))
    if len(pads) != 2 * nd:
        return None  # the registry's impl refuses it
    return pads[:nd] if pads[:nd] == pads[nd:] else None


@_builtin("onnx::Conv", "onnx::ConvTranspose")
def _conv(b: FxBuilder, n: Node, a: _Args):
    transposed = n.op == "onnx::ConvTranspose"
    nd = _spatial(n, n.inputs[1])
    if nd not in _CONV_FX or (transposed and n.attrs.get("output_shape")):
        return None
    pads = _sym_pads(n, nd)
    if pads is None:
        return None
    ks, ws = n.attrs.get("kernel_shape"), n.inputs[1].type.shape
    if ks is not None and (ws is None or [int(k) for k in ks] != list(ws[2:])):
        return None  # the impl checks kernel_shape against the weight
    x, w = a[0], a[1]
    bias = a[2] if len(n.inputs) > 2 else None
    strides, dilations = tuple(n.attrs.get("strides") or [1] * nd), tuple(n.attrs.get("dilations") or [1] * nd)
    if transposed:
        return b.call(_CONVT_FX[nd], (x, w, bias, strides, tuple(pads), tuple(n.attrs.get("output_padding") or [0] * nd),
                                      n.attrs.get("group", 1), dilations))
    return b.call(_CONV_FX[nd], (x, w, bias, strides, tuple(pads), dilations, n.attrs.get("group", 1)))


_MAXPOOL_FX = {1: torch.max_pool1d, 2: torch.max_pool2d, 3: torch.max_pool3d}
_AVGPOOL_FX = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@_builtin("onnx::MaxPool", "onnx::AveragePool")
def _pool(b: FxBuilder, n: Node, a: _Args):
    k = n.attrs.get("kernel_shape")
    if not k or len(n.outputs) != 1:
        return None
    nd = len(k)
    pads = _sym_pads(n, nd)
    if pads is None or nd not in _MAXPOOL_FX:
        return None
    strides = tuple(n.attrs.get("strides") or [1] * nd)
    ceil = bool(n.attrs.get("ceil_mode", 0))
    if n.op == "onnx::MaxPool":
        if n.attrs.get("storage_order", 0):
            return None
        dil = tuple(n.attrs.get("dilations") or [1] * nd)
        return b.call(_MAXPOOL_FX[nd], (a[0], tuple(k), strides, tuple(pads), dil, ceil))
    if any(d != 1 for d in (n.attrs.get("dilations") or [1])):
        return None
    return b.call(_AVGPOOL_FX[nd], (a[0], tuple(k), strides, tuple(pads), ceil,
                                    bool(n.attrs.get("count_include_pad", 0))))


@_builtin("onnx::GlobalAveragePool", "onnx::GlobalMaxPool")
def _global_pool(b: FxBuilder, n: Node, a: _Args):
    rank = _rank(n.inputs[0])
    if rank is None or rank < 3:
        return None
    fn = torch.mean if n.op == "onnx::GlobalAveragePool" else torch.amax
    return b.call(fn, (a[0], tuple(range(2, rank)), True))


@_builtin("onnx::BatchNormalization")
def _bn(b: FxBuilder, n: Node, a: _Args):
    if n.attrs.get("training_mode", 0) or len(n.outputs) != 1:
        return None
    # torch.batch_norm is the builtin F.batch_norm ends in (no Python checks per call)
    return b.call(torch.batch_norm, (a[0], a[1], a[2], a[3], a[4], False, 1 - n.attrs.get("momentum", 0.9),
                                     n.attrs.get("epsilon", 1e-5), torch.backends.cudnn.enabled))


@_builtin("onnx::LayerNormalization")
def _layer_norm(b: FxBuilder, n: Node, a: _Args):
    x = n.inputs[0]
    if any(b.ir.is_live(o) for o in n.outputs[1:]):
        return None
    shape = x.type.shape
    if shape is None:
        return None
    axis = n.attrs.get("axis", -1) % len(shape)
    norm = shape[axis:]
    if not all(isinstance(d, int) for d in norm):
        return None
    x, w = a[0], a[1]
    bias = a[2] if len(n.inputs) > 2 else None
    out = b.call(torch.layer_norm, (x, tuple(norm), w, bias, n.attrs.get("epsilon", 1e-5)))
    return [out] + [None] * (len(n.outputs) - 1)


@_builtin("onnx::GroupNormalization")
def _group_norm(b: FxBuilder, n: Node, a: _Args):
    return b.call(torch.group_norm, (a[0], int(n.attrs["num_groups"]), a[1], a[2],
                                     n.attrs.get("epsilon", 1e-5), torch.backends.cudnn.enabled))


@_builtin("onnx::PRelu")
def _prelu(b: FxBuilder, n: Node, a: _Args):
    """torch.prelu when the slope is one value, or (C,) on a rank-2 input, or a (C,) weight
    reshaped to (C, 1, ..., 1) (the canonical form of nn.PReLU): the reshape is not run."""
    x, slope = n.inputs
    r, ss = _rank(x), slope.type.shape
    if r is None or ss is None or x.type.dtype != slope.type.dtype \
            or x.type.dtype is None or not x.type.dtype.is_floating_point:
        return None  # torch.prelu has no integer kernel: the registry's where() form runs
    if all(d == 1 for d in ss) and len(ss) <= max(r, 1):
        w = b.call(torch.reshape, (a[1], (1,))) if len(ss) != 1 else a[1]
        return b.call(torch.prelu, (a[0], w))
    if r == 2 and len(ss) == 1:
        return b.call(torch.prelu, (a[0], a[1]))
    p = slope.producer
    if p is not None and p.op == "onnx::Reshape" and r > 2 and list(ss) == [ss[0]] + [1] * (r - 2) \
            and p.inputs[0].type.shape is not None and len(p.inputs[0].type.shape) == 1:
        return b.call(torch.prelu, (a[0], b.get(p.inputs[0])))
    return None


@_builtin("onnx::MatMul")
def _matmul(b: FxBuilder, n: Node, a: _Args):
    return b.call(torch.matmul, (a[0], a[1]))


def _is_zero(d: Any) -> bool:
    return isinstance(d, int) and d == 0


@_builtin("onnx::Reshape", "aten::_reshape_from_tensor")
def _reshape(b: FxBuilder, n: Node, a: _Args):
    s = b.shape_arg(n.inputs[1])
    if s is None:
        return None
    if n.op == "onnx::Reshape" and not n.attrs.get("allowzero", 0) and any(_is_zero(d) for d in s):
        x = n.inputs[0]
        if x.type.rank is None:
            return None
        s = [b.size(x, i) if _is_zero(d) else d for i, d in enumerate(s)]
    return b.call(torch.reshape, (a[0], tuple(s)))


@_builtin("onnx::Flatten")
def _flatten(b: FxBuilder, n: Node, a: _Args):
    axis = n.attrs.get("axis", 1)
    rank = _rank(n.inputs[0])
    if axis < 0 and rank is not None:
        axis += rank
    if axis == 1 and rank is not None and rank >= 2:  # (rank 1: torch.flatten refuses dim 1)
        return b.call(torch.flatten, (a[0], 1))
    if axis == 0:
        return b.call(torch.reshape, (a[0], (1, -1)))
    return None


@_builtin("onnx::Transpose")
def _transpose(b: FxBuilder, n: Node, a: _Args):
    perm = n.attrs.get("perm")
    if perm is None:
        rank = _rank(n.inputs[0])
        if rank is None:
            return None
        perm = list(reversed(range(rank)))
    return b.call(torch.permute, (a[0], tuple(perm)))


@_builtin("onnx::Softmax", "onnx::LogSoftmax")
def _softmax(b: FxBuilder, n: Node, a: _Args):
    fn = torch.softmax if n.op == "onnx::Softmax" else torch.log_softmax
    return b.call(fn, (a[0], n.attrs.get("axis", -1)))


@_builtin("onnx::Concat")
def _concat(b: FxBuilder, n: Node, a: _Args):
    return b.call(torch.cat, (list(a), n.attrs["axis"]))


@_builtin("onnx::Split")
def _split(b: FxBuilder, n: Node, a: _Args):
    axis = n.attrs.get("axis", 0)
    if len(n.inputs) > 1 and n.inputs[1] is not None and n.attrs.get("num_outputs") is not None:
        return None  # sizes and a count: the impl refuses it
    sizes = b.shape_arg(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] is not None else None
    if sizes is None:
        k = n.attrs.get("num_outputs") or len(n.outputs)
        shape = n.inputs[0].type.shape
        if shape is None or not isinstance(shape[axis], int):
            return None
        sizes = split_sizes(shape[axis], k)
        if sizes[-1] < 0:
            return None  # the impl raises its error
    return b.call(torch.split, (a[0], sizes, axis))


def _axes(b: FxBuilder, n: Node, index: int) -> list[int] | None:
    """Axes given as a constant input (opset >= 13) or as an attribute (older files)."""
    if len(n.inputs) > index and n.inputs[index] is not None:
        return b.const_ints(n.inputs[index])
    ax = n.attrs.get("axes")
    return None if ax is None else [int(x) for x in ax]


@_builtin("onnx::Unsqueeze")
def _unsqueeze(b: FxBuilder, n: Node, a: _Args):
    axes = _axes(b, n, 1)
    if not axes:
        return None
    if len(axes) == 1:
        return b.call(torch.unsqueeze, (a[0], axes[0]))
    rank = _rank(n.inputs[0])
    if rank is None:
        return None
    out = a[0]
    for ax in sorted(x % (rank + len(axes)) for x in axes):
        out = b.call(torch.unsqueeze, (out, ax))
    return out


@_builtin("onnx::Squeeze")
def _squeeze(b: FxBuilder, n: Node, a: _Args):
    if (len(n.inputs) < 2 or n.inputs[1] is None) and n.attrs.get("axes") is None:
        return b.call(torch.squeeze, (a[0],))
    axes = _axes(b, n, 1)
    if axes is None:
        return None
    return b.call(torch.squeeze, (a[0], tuple(axes)))


@_builtin("onnx::Expand")
def _expand(b: FxBuilder, n: Node, a: _Args):
    s = b.shape_arg(n.inputs[1])
    xs = n.inputs[0].type.shape
    if s is None or xs is None:
        return None
    r = max(len(s), len(xs))
    new = r - len(xs)
    xs_p = [1] * new + list(xs)
    s_p = [1] * (r - len(s)) + s
    out: list[Any] = []
    for i, (xd, sd) in enumerate(zip(xs_p, s_p)):
        if i < new:
            out.append(sd)
        elif isinstance(sd, int):
            if sd == 1:
                out.append(-1)  # ONNX broadcasts both ways: 1 keeps the input's size
            elif isinstance(xd, int) and xd not in (1, sd):
                return None
            else:
                out.append(sd)
        elif xd == 1:
            out.append(sd)
        elif isinstance(xd, int):
            out.append(-1)  # the runtime size is 1 or xd: both keep xd
        else:
            return None
    if all(d == -1 for d in out):
        return a[0]
    return b.method("expand", (a[0], tuple(out)))


@_builtin("onnx::Shape")
def _shape(b: FxBuilder, n: Node, a: _Args):
    args: tuple[Any, ...] = (a[0],)
    start, end = n.attrs.get("start", 0), n.attrs.get("end")
    if start or end is not None:
        args += (start, end)
    return b.call(_shape_tensor, args)


@_builtin("onnx::ConstantOfShape")
def _constant_of_shape(b: FxBuilder, n: Node, a: _Args):
    s = b.shape_arg(n.inputs[0])
    if s is None:
        return None
    value = n.attrs.get("value")
    v = torch.zeros(1, dtype=torch.float32) if value is None else torch.as_tensor(value).reshape(-1)[:1]
    return b.call(torch.full, (tuple(s), v.item()), {"dtype": v.dtype, "device": b.device()})


@_builtin("onnx::Range")
def _range(b: FxBuilder, n: Node, a: _Args):
    vals = []
    for v in n.inputs:
        x = b.scalar_arg(v)
        if x is None:
            t = b.const(v)
            if t is None or t.numel() != 1:
                return None
            x = t.item()
        vals.append(x)
    dtype = n.inputs[0].type.dtype
    if dtype is None:
        return None
    return b.call(torch.arange, tuple(vals), {"dtype": dtype, "device": b.device()})


@_builtin("onnx::Constant")
def _constant(b: FxBuilder, n: Node, a: _Args):
    from torchmdf.ops.onnx_ops import constant

    v = Value(n.outputs[0].name or "constant", role=ValueRole.CONSTANT, tensor=constant(**n.attrs))
    return b.get(b.register_constant(v))


@_builtin("onnx::Tile")
def _tile(b: FxBuilder, n: Node, a: _Args):
    reps = b.shape_arg(n.inputs[1])
    if reps is None:
        return None
    return b.method("repeat", (a[0], tuple(reps)))


@_builtin("onnx::Pad")
def _pad(b: FxBuilder, n: Node, a: _Args):
    if n.attrs.get("mode", "constant") != "constant":
        return None
    pads = b.const_ints(n.inputs[1])
    rank = _rank(n.inputs[0])
    if pads is None or rank is None:
        return None
    value: Any = 0.0
    if len(n.inputs) > 2 and n.inputs[2] is not None:
        t = b.const(n.inputs[2])
        if t is None or t.numel() != 1:
            return None
        value = t.item()
    k = len(pads) // 2
    axes = _axes(b, n, 3) if len(n.inputs) > 3 and n.inputs[3] is not None else list(range(k))
    if axes is None or len(pads) != 2 * len(axes) or (len(n.inputs) <= 3 and k != rank) \
            or not axes_in_range(axes, rank):
        return None  # the registry's impl: its checks, its error
    begin, end = [0] * rank, [0] * rank
    for i, ax in enumerate(axes):
        begin[ax % rank], end[ax % rank] = pads[i], pads[i + k]
    fp: list[int] = []
    for d in reversed(range(rank)):
        fp += [begin[d], end[d]]
    while len(fp) > 2 and fp[-1] == 0 and fp[-2] == 0:
        fp = fp[:-2]
    return b.call(F.pad, (a[0], tuple(fp)), {"value": value} if value != 0 else {})


_REDUCE_FX = {"onnx::ReduceMean": torch.mean, "onnx::ReduceSum": torch.sum, "onnx::ReduceMax": torch.amax,
              "onnx::ReduceMin": torch.amin, "onnx::ReduceLogSumExp": torch.logsumexp}


@_builtin(*_REDUCE_FX)
def _reduce(b: FxBuilder, n: Node, a: _Args):
    dt = n.inputs[0].type.dtype if isinstance(n.inputs[0].type, TensorType) else None
    if n.op in ("onnx::ReduceMean", "onnx::ReduceLogSumExp", "onnx::ReduceSum") \
            and (dt is None or not (dt.is_floating_point or dt.is_complex)):
        return None  # integers: the registry's impl keeps the ONNX type (torch sums int32 into int64)
    axes = _axes(b, n, 1)
    keep = bool(n.attrs.get("keepdims", 1))
    if not axes:
        if n.attrs.get("noop_with_empty_axes", 0):
            return a[0]
        rank = _rank(n.inputs[0])
        if rank is None:
            return None
        axes = list(range(rank))
    return b.call(_REDUCE_FX[n.op], (a[0], tuple(axes), keep))


@_builtin("onnx::ArgMax", "onnx::ArgMin")
def _arg(b: FxBuilder, n: Node, a: _Args):
    if n.attrs.get("select_last_index", 0):
        return None
    fn = torch.argmax if n.op == "onnx::ArgMax" else torch.argmin
    return b.call(fn, (a[0], n.attrs.get("axis", 0), bool(n.attrs.get("keepdims", 1))))


@_builtin("onnx::Identity", "onnx::Dropout")
def _identity(b: FxBuilder, n: Node, a: _Args):
    if any(b.ir.is_live(o) for o in n.outputs[1:]):
        return None
    return [a[0]] + [None] * (len(n.outputs) - 1)


@_builtin("onnx::Gather")
def _gather(b: FxBuilder, n: Node, a: _Args):
    data, ind = n.inputs[0], n.inputs[1]
    axis = n.attrs.get("axis", 0)
    rank = data.type.rank
    if axis < 0:
        if rank is None:
            return None
        axis += rank
    idx = b.const(ind)
    if idx is not None and idx.dim() == 0 and not idx.is_floating_point():
        return b.call(torch.select, (a[0], axis, int(idx)))
    if ind.type.dtype not in (torch.int64, torch.int32):
        return None
    if axis == 0 and data.role == ValueRole.PARAMETER and data.type.rank == 2 and ind.type.dtype == torch.int64:
        # an embedding table (nn.Embedding exported as Gather): the builtin the module calls
        return b.call(torch.embedding, (a[0], a[1]))
    # advanced indexing: same result shape as ONNX Gather, negative indices count from the end
    key = tuple([slice(None)] * axis + [a[1]])
    return b.call(operator.getitem, (a[0], key if axis else a[1]))


@_builtin("onnx::Slice")
def _slice(b: FxBuilder, n: Node, a: _Args):
    ins = list(n.inputs) + [None] * (5 - len(n.inputs))
    starts, ends = b.shape_arg(ins[1]), b.shape_arg(ins[2])
    axes = b.const_ints(ins[3]) if ins[3] is not None else None
    steps = b.const_ints(ins[4]) if ins[4] is not None else None
    rank = _rank(n.inputs[0])
    if starts is None or ends is None or (ins[3] is not None and axes is None) or (ins[4] is not None and steps is None):
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if any(s <= 0 for s in steps) or len({len(starts), len(ends), len(axes), len(steps)}) != 1:
        return None
    if any(ax < 0 for ax in axes):
        if rank is None:
            return None
        axes = [ax % rank for ax in axes]
    idx: list[Any] = [slice(None)] * (max(axes) + 1 if axes else 0)
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if isinstance(e, int) and e >= 2**62:
            e = None
        if isinstance(s, int) and s == 0:
            s = None
        idx[ax] = slice(s, e, st if st != 1 else None)
    while idx and idx[-1] == slice(None):
        idx.pop()
    if not idx:
        return a[0]
    return b.call(operator.getitem, (a[0], tuple(idx) if len(idx) > 1 else idx[0]))


@_builtin("onnx::Where")
def _where(b: FxBuilder, n: Node, a: _Args):
    c, x, y = n.inputs
    if c.type.dtype != torch.bool:
        return None
    return b.call(torch.where, (a[0], b.number_operand(x, y), b.number_operand(y, x)))


@_builtin("onnx::Cast")
def _cast(b: FxBuilder, n: Node, a: _Args):
    dt = _cast_dtype(n)
    if dt is None:
        return None
    if n.inputs[0].type.dtype == dt:
        return a[0]
    return b.method("to", (a[0], dt))


@_builtin("onnx::CastLike")
def _cast_like(b: FxBuilder, n: Node, a: _Args):
    return b.method("to", (a[0], b.call(getattr, (a[1], "dtype"))))


@_builtin("onnx::Clip")
def _clip(b: FxBuilder, n: Node, a: _Args):
    x = n.inputs[0]
    lo = n.inputs[1] if len(n.inputs) > 1 else None
    hi = n.inputs[2] if len(n.inputs) > 2 else None
    if lo is None and hi is None:
        return a[0]
    bounds = [b.scalar(v, x) if v is not None else None for v in (lo, hi)]
    if all(not isinstance(v, torch.fx.Node) for v in bounds):
        return b.call(torch.clamp, (a[0], *bounds))
    return b.call(torch.clamp, (a[0], a[1] if lo is not None else None, a[2] if hi is not None else None))


_ACT = {
    "onnx::LeakyRelu": (torch._C._nn.leaky_relu, (("alpha", 0.01),)),
    "onnx::Elu": (torch._C._nn.elu, (("alpha", 1.0),)),
    "onnx::Celu": (torch.celu, (("alpha", 1.0),)),
    "onnx::Selu": (torch._C._nn.elu, (("alpha", 1.67326319217681884765625),
                                      ("gamma", 1.05070102214813232421875), ("_one", 1.0))),
    "onnx::HardSwish": (torch._C._nn.hardswish, ()),
    "onnx::Softplus": (torch._C._nn.softplus, ()),
}


@_builtin("onnx::HardSigmoid")
def _hard_sigmoid(b: FxBuilder, n: Node, a: _Args):
    if n.attrs.get("alpha", 0.2) == 1.0 / 6.0 and n.attrs.get("beta", 0.5) == 0.5 \
            and n.inputs[0].type.dtype is not None and n.inputs[0].type.dtype.is_floating_point:
        return b.call(torch._C._nn.hardsigmoid, (a[0],))
    return None


@_builtin(*_ACT)
def _activation(b: FxBuilder, n: Node, a: _Args):
    fn, attrs = _ACT[n.op]
    return b.call(fn, (a[0], *(n.attrs.get(k, d) for k, d in attrs)))


@_builtin("onnx::Gelu")
def _gelu(b: FxBuilder, n: Node, a: _Args):
    approx = n.attrs.get("approximate", "none")
    return b.call(F.gelu, (a[0],), {"approximate": approx} if approx != "none" else {})


_BINARY_FX = {"onnx::Add": torch.add, "onnx::Sub": torch.sub, "onnx::Mul": torch.mul,
              "onnx::Equal": torch.eq, "onnx::Less": torch.lt, "onnx::Greater": torch.gt,
              "onnx::LessOrEqual": torch.le, "onnx::GreaterOrEqual": torch.ge}
_COMMUTATIVE = {torch.add, torch.mul, torch.eq}
_SWAPPED = {torch.lt: torch.gt, torch.gt: torch.lt, torch.le: torch.ge, torch.ge: torch.le}


@_builtin(*_BINARY_FX)
def _binary(b: FxBuilder, n: Node, a: _Args):
    fn = _BINARY_FX[n.op]
    x, y = n.inputs
    ya = b.scalar(y, x)
    if not isinstance(ya, torch.fx.Node) and ya is not None:
        return b.call(fn, (a[0], b.number_operand(y, x)))
    xa = b.scalar(x, y)
    if not isinstance(xa, torch.fx.Node) and xa is not None:
        xa = b.number_operand(x, y)
        if isinstance(xa, torch.fx.Node):  # a 0-d tensor of y's dtype: the op as written
            return b.call(fn, (xa, a[1]))
        if fn in _COMMUTATIVE:  # a + b == b + a exactly in IEEE arithmetic
            return b.call(fn, (a[1], xa))
        if fn in _SWAPPED:
            return b.call(_SWAPPED[fn], (a[1], xa))
        if fn is torch.sub:
            return b.call(torch.rsub, (a[1], xa))
    return b.call(fn, (a[0], a[1]))


@_builtin("onnx::Div")
def _div(b: FxBuilder, n: Node, a: _Args):
    x, y = n.inputs
    if x.type.dtype is None or not x.type.dtype.is_floating_point:
        return None
    return b.call(torch.div, (a[0], b.scalar(y, x)))


@_builtin("onnx::Pow")
def _pow(b: FxBuilder, n: Node, a: _Args):
    x, y = n.inputs
    if x.type.dtype is None or not x.type.dtype.is_floating_point:
        return None
    e = b.scalar(y, x)
    if isinstance(e, torch.fx.Node) and (y.type.dtype is None or y.type.dtype.is_floating_point
                                         and y.type.dtype != x.type.dtype):
        return None  # the registry impl casts back to the base's dtype
    return b.call(torch.pow, (a[0], e))


@_builtin("onnx::Mod")
def _mod(b: FxBuilder, n: Node, a: _Args):
    return b.call(torch.fmod if n.attrs.get("fmod", 0) else torch.remainder, (a[0], a[1]))


_NARY_FX = {"onnx::Max": torch.maximum, "onnx::Min": torch.minimum, "onnx::Sum": torch.add}


@_builtin(*_NARY_FX)
def _nary(b: FxBuilder, n: Node, a: _Args):
    out = a[0]
    for x in a[1:]:
        out = b.call(_NARY_FX[n.op], (out, x))
    return out


@_builtin("onnx::Einsum")
def _einsum(b: FxBuilder, n: Node, a: _Args):
    return b.call(torch.einsum, (n.attrs["equation"], *a))


@_builtin("onnx::Trilu")
def _trilu(b: FxBuilder, n: Node, a: _Args):
    k = 0
    if len(n.inputs) > 1 and n.inputs[1] is not None:
        ks = b.const_ints(n.inputs[1])
        if ks is None:
            return None
        k = ks[0]
    return b.call(torch.triu if n.attrs.get("upper", 1) else torch.tril, (a[0], k))


@_builtin("onnx::CumSum")
def _cumsum(b: FxBuilder, n: Node, a: _Args):
    ax = b.const_ints(n.inputs[1])
    if ax is None or n.attrs.get("exclusive", 0) or n.attrs.get("reverse", 0):
        return None
    return b.call(torch.cumsum, (a[0], ax[0]))


@_builtin("aten::_native_batch_norm_legit_functional.default", "aten::_native_batch_norm_legit_functional")
def _bn_train(b: FxBuilder, n: Node, a: _Args):
    """Training-mode BatchNorm whose running statistics are module state: the builtin updates
    the buffers in place as ``nn.BatchNorm`` does (a separate ``copy_`` would bump their
    version and break a backward that saved them)."""
    if not n.attrs.get("training") or not isinstance(n.attrs.get("momentum"), (int, float)) \
            or any(b.ir.is_live(o) for o in n.outputs[1:3]):
        return None
    nexts = {sv.current: sv for sv in b.ir.state}
    svs = [nexts.get(n.inputs[3]), nexts.get(n.inputs[4])]
    if any(sv is None or sv.next is not o for sv, o in zip(svs, n.outputs[3:5])):
        return None
    x, w, bias, rm, rv = a[0], a[1], a[2], a[3], a[4]
    out = b.call(torch.batch_norm, (x, w, bias, rm, rv, True, n.attrs["momentum"], n.attrs.get("eps", 1e-5),
                                    torch.backends.cudnn.enabled))
    b.impure.add(out)
    for sv in svs:
        b.updated_in_place.add(sv.name)
    return [out, None, None, rm, rv]


# -- the backend -----------------------------------------------------------------------------


def _named_target(fn: Callable[..., Any]) -> Callable[..., Any]:
    """FX cannot print lambdas; give them a name."""
    if getattr(fn, "__name__", "") == "<lambda>":
        def call(*args, **kwargs):
            return fn(*args, **kwargs)

        call.__name__ = "onnx_impl"
        call.__qualname__ = "onnx_impl"
        return call
    return fn


class TorchMDFGraphModule(torch.fx.GraphModule):
    """A ``GraphModule`` that is called like any ``nn.Module``: without FX's per-call
    ``_WrappedCall`` layer (two extra Python frames, ~1 us; tracebacks still show the line of
    the generated code that failed)."""

    def recompile(self):
        cg = self._graph._codegen
        fast = isinstance(cg, _PrologueMixin)
        if fast:  # this module's parameters and buffers fetched without Module.__getattr__
            cg._torchmdf_attrs = _fast_attr_fetches(self)
        try:
            code = super().recompile()
        finally:
            if fast:
                cg._torchmdf_attrs = None
        cls = type(self)  # the per-instance class GraphModule makes: only this module changes
        if "__call__" in vars(cls):
            del cls.__call__  # resolves to the __call__ below (at call time: patches still apply)
        return code

    def __call__(self, *args, **kwargs):
        try:
            return torch.nn.Module.__call__(self, *args, **kwargs)
        except TorchMDFError:
            raise
        except Exception as e:  # name the IR node (MDF node, parameter, source line) that failed
            located = locate_runtime_error(self, e)
            if located is None:
                raise
            raise located from e


def locate_runtime_error(gm: torch.fx.GraphModule, e: BaseException) -> TorchMDFError | None:
    """An :class:`ExecutionError` for ``e`` raised inside ``gm``'s generated forward: the
    IR node the failing line came from (its provenance: MDF node and parameter, or module
    path and source line) and the shapes and dtypes of that line's operands, never their
    values.  None when the failure is not inside the generated code."""
    from torchmdf.errors import ExecutionError

    frame = lineno = None
    tb = e.__traceback__
    code = getattr(gm, "forward", None)
    code = getattr(code, "__code__", None)
    while tb is not None:
        if tb.tb_frame.f_code is code:
            frame, lineno = tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
    lmap = getattr(gm, "_lineno_map", None)
    if frame is None or not lmap:
        return None
    idx = lmap.get(lineno - code.co_firstlineno)
    node = None
    if idx is not None:
        for i, fn in enumerate(gm.graph.nodes):
            if i == idx:
                node = fn
                break
    if node is None:
        return None
    operands = []
    for a in node.all_input_nodes:
        x = frame.f_locals.get(a.name)
        if isinstance(x, torch.Tensor):
            operands.append(f"{a.name}: {list(x.shape)} {str(x.dtype).replace('torch.', '')}")
        elif x is not None:
            operands.append(f"{a.name}: {type(x).__name__}")
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = msg if len(msg) <= 300 else msg[:297] + "..."
    where = node.meta.get("torchmdf_location") or f"FX node {node.name}"
    return ExecutionError(f"{type(e).__name__} at run time: {msg}"
                          + (f" (operands {'; '.join(operands)})" if operands else ""), location=where)


def _stateful_ok(graph: Graph) -> bool:
    """State the module can keep in buffers: each variable has an initial tensor (torch
    buffers mutated in forward).  MDF dynamical models run with ``torchmdf.simulate``."""
    if graph.metadata.get("mdf_source") and not graph.signature.mutated_buffers:
        return False
    return all(sv.init is not None and sv.init_value is None for sv in graph.state)


def emit_fx(graph: Graph, *, input_defaults: bool = False, output_dict: bool | None = None,
            class_name: str = "TorchMDFModule", copy_weights: bool = True,
            shape_guards: bool | None = None) -> torch.fx.GraphModule:
    """Build a GraphModule from ``graph``.

    ``copy_weights=False``: the module takes the graph's parameter and buffer tensors as they
    are instead of copies (``compile(path)`` does this: the graph and its tensors, read from the
    file for that call, are the module's alone; memory-mapped external weights stay mapped).

    ``input_defaults``: each input gets a default (its value in the MDF file, kept as a
    non-persistent buffer ``_defaults.<name>``).  ``shape_guards`` (default: for graphs
    converted from a torch model): ``forward`` first checks the inputs' static dims (and that
    dims sharing a symbol agree) and raises a :class:`~torchmdf.errors.ShapeError` naming the
    expected and given shapes.  Outputs: the original pytree structure when
    ``graph.signature`` has ``out_spec`` (constant and scalar outputs put back, mutated
    inputs updated with ``copy_``); a dict ``{name: tensor}`` when ``graph.output_names`` is
    set (MDF graphs) or ``output_dict``; else a tensor or tuple.
    """
    missing = [(n.op, n.location()) for n in graph.walk() if registry.lookup(n.op) is None]
    if missing:
        raise UnsupportedOpError(missing, hint="register the ops with torchmdf.ops.register()")
    if graph.state and not _stateful_ok(graph):
        raise ConversionError(f"graph '{graph.name}' is a dynamical model (its state has no fixed initial "
                              "tensor); run it with torchmdf.simulate()")
    graph = fused_for_fx(graph)  # linear, matmul, attention, silu as the original called them
    b = FxBuilder(graph)
    fx = b.fx
    sig = graph.signature

    # inputs: one placeholder per leaf of the original call (constant leaves included)
    in_names = _add_inputs(b, input_defaults)

    # parameters and buffers: all registered (state_dict keys as in the original), fetched lazily;
    # a region's own weights too (names are unique across the nest), passed in as operands
    for name, v in ((k, x) for g_ in graph.graphs() for k, x in g_.parameters.items()):
        if v.role == ValueRole.CONSTANT:
            continue  # registered on first use as a tensor (0-d ones are often inlined)
        target = b.attr_name(name)
        mod, leaf = b.module_for(target)
        t = v.tensor.clone() if copy_weights else v.tensor
        if v.role == ValueRole.PARAMETER:
            mod.register_parameter(leaf, nn.Parameter(t, requires_grad=t.is_floating_point() or t.is_complex()))
        else:
            persistent = v.meta.get(PERSISTENT, True) is not False
            mod.register_buffer(leaf, t, persistent=persistent)
        b.env[v] = _Lazy(target)
    for sv in graph.state:
        target = b.attr_name(sv.name)
        mod, leaf = b.module_for(target)
        mod.register_buffer(leaf, sv.init.clone())
        b.env[sv.current] = _Lazy(target)

    lower_nodes(b, graph)

    outs = [b.get(v) for v in graph.outputs]
    for v in graph.outputs:  # a state's current value returned: keep it from the update below
        if v.role == ValueRole.STATE:
            i = graph.outputs.index(v)
            outs[i] = b.method("clone", (outs[i],))

    # state: the buffers are updated in place, like the original module's
    for sv in graph.state:
        if sv.next is None or sv.next is sv.current or sv.name in b.updated_in_place:
            continue
        nxt = b.get(sv.next)
        if sv.next.type.dtype is None or sv.next.type.dtype.is_floating_point:
            nxt = b.method("detach", (nxt,))
        b.impure.add(b.method("copy_", (b.get(sv.current), nxt)))

    # mutated user inputs: copy the new values in, drop them from the outputs
    mutations = sig.input_mutations
    if mutations:
        by_name = {v.name: v for v in graph.inputs}
        drop = set()
        for m in mutations:
            v = by_name.get(m.input)
            if v is None:
                raise ConversionError(f"mutated input {m.input!r} is not a graph input")
            b.impure.add(b.method("copy_", (b.get(v), outs[m.output])))
            drop.add(m.output)
        outs = [o for i, o in enumerate(outs) if i not in drop]

    out_spec = sig.out_spec
    in_spec = sig.in_spec
    if out_spec:
        for i in sig.scalar_outputs:
            if i < len(outs):
                outs[i] = b.method("item", (outs[i],))
        for i, val in sig.constant_outputs:
            outs.insert(i, val)
    if graph.output_names is not None and (output_dict or output_dict is None) and not out_spec:
        fx.output({k: o for k, o in zip(graph.output_names, outs)})
    elif output_dict:
        fx.output({f"output_{i}": o for i, o in enumerate(outs)})
    elif out_spec:
        fx.output(tuple(outs))
    elif len(outs) == 1:
        fx.output(outs[0])
    else:
        fx.output(tuple(outs))

    _eliminate_dead_code(b)
    if (out_spec or in_spec) and not output_dict:
        _install_pytree_codegen(fx, in_names, in_spec, out_spec)
    if shape_guards is None:
        shape_guards = sig.from_torch  # converted from a torch model
    if shape_guards:
        b.prologue += _shape_guards(b)
    _install_prologue(fx, b.prologue)
    gm = TorchMDFGraphModule(b.root, fx, class_name=class_name)
    # Take the root's hierarchy as it is: every parameter and buffer (used or not) in the
    # original order, with non-persistent buffers kept non-persistent.
    gm._modules = b.root._modules
    gm._parameters = b.root._parameters
    gm._buffers = b.root._buffers
    gm._non_persistent_buffers_set = b.root._non_persistent_buffers_set
    gm.meta["torchmdf_graph_name"] = graph.name
    gm.meta["torchmdf_input_defaults"] = dict(b.defaults)
    gm.meta["torchmdf_prologue"] = list(b.prologue)
    gm.meta["torchmdf_non_persistent"] = sorted(
        f"{prefix}{'.' if prefix else ''}{leaf}" for prefix, mod in gm.named_modules()
        for leaf in mod._non_persistent_buffers_set)
    gm._deepcopy_hooks = [_restore_non_persistent]
    return gm


def _restore_non_persistent(gm: torch.fx.GraphModule) -> None:
    """GraphModule's deepcopy re-registers every buffer as persistent: put the flags back."""
    for name in gm.meta.get("torchmdf_non_persistent", ()):
        owner, _, leaf = name.rpartition(".")
        mod = gm.get_submodule(owner) if owner else gm
        if leaf in mod._buffers:
            mod._non_persistent_buffers_set.add(leaf)


def _add_inputs(b: FxBuilder, input_defaults: bool) -> list[str]:
    """Placeholders for the graph inputs, plus one (with its value as the default) for each
    constant input ``torch.export`` specialized, in the original order where it is known."""
    graph, fx = b.ir, b.fx
    const_inputs: dict[str, str] = graph.signature.constant_inputs
    order = graph.signature.input_order
    by_name = {v.name: v for v in graph.inputs}
    if not order or set(order) != set(by_name) | set(const_inputs):
        order = [v.name for v in graph.inputs] + [k for k in const_inputs if k not in by_name]
    names: list[str] = []
    used: set[str] = set()
    for key in order:
        v = by_name.get(key)
        name = _attr_part(key)
        if name in used or name in ("self",):
            name = f"{name}_{len(used)}"
        used.add(name)
        if v is None:  # a constant leaf: accepted, its value was fixed at export
            ph = fx.placeholder(name, default_value=_literal(const_inputs[key]))
            names.append(ph.name)
            continue
        default = v.meta.get(DEFAULT) if input_defaults else None
        ph = fx.placeholder(name, default_value=None if default is not None else torch.fx.node.inspect.Signature.empty)
        names.append(ph.name)
        b.env[v] = ph
        b.placeholder_of[v] = ph.target  # the argument's name in forward's signature
        if default is not None:
            # in the prologue of forward: free when the caller passes the input
            target = f"_defaults.{name}"
            mod, leaf = b.module_for(target)
            mod.register_buffer(leaf, torch.as_tensor(default), persistent=False)
            b.defaults[v.name] = target
            b.prologue.append(f"if {ph.target} is None: {ph.target} = self.{target}")
    return names


# -- the prologue of forward: input defaults and shape guards --------------------------------


def _shape_guards(b: FxBuilder) -> list[str]:
    """One ``if`` per input with a known rank: its static dims, and dims whose symbol an
    earlier dim has, compared with a few int comparisons (no call unless they differ)."""
    graph = b.ir
    lines: list[str] = []
    first: dict[str, tuple[str, int]] = {}
    for v in graph.inputs:
        ph = b.placeholder_of.get(v)
        shape = v.type.shape
        if ph is None or shape is None or any(d is None for d in shape):
            continue
        conds: list[str] = []
        if all(isinstance(d, int) for d in shape):
            conds.append(f"{ph}.shape != {tuple(shape)!r}")
        else:
            conds.append(f"{ph}.dim() != {len(shape)}")
            for i, d in enumerate(shape):
                if isinstance(d, int):
                    conds.append(f"{ph}.shape[{i}] != {d}")
                elif d in first and first[d][0] != ph:
                    other, j = first[d]
                    conds.append(f"{ph}.shape[{i}] != {other}.shape[{j}]")
        for i, d in enumerate(shape):
            if isinstance(d, str):
                first.setdefault(d, (ph, i))
        expected = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        lines.append(f"if {' or '.join(conds)}: _input_shape_error({v.name!r}, {expected!r}, {ph}, "
                     f"{any(isinstance(d, str) for d in shape)!r})")
    return lines


def _input_shape_error(name: str, expected: str, x: Any, dynamic: bool) -> None:
    """Raised by a converted module's ``forward`` for an input of another shape."""
    from torchmdf.errors import ShapeError

    given = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    hint = ("the named dims may vary, the numbers may not; give a dim a name with dynamic_shapes to let it vary"
            if dynamic else
            "convert with dynamic dims to call it with other sizes: torchmdf.compile(model, example_inputs=..., "
            "dynamic_batch=True) for the batch dim, or dynamic_shapes={'x': {0: torch.export.Dim('batch')}} "
            "(as torch.export takes it) for any dims")
    raise ShapeError(f"given shape {given}, but the module was converted for shape {expected}",
                     location=f"input {name!r}", hint=hint)


class _PrologueMixin:
    """Adds ``_torchmdf_prologue`` lines at the start of the generated ``forward``, and while
    a :class:`TorchMDFGraphModule` recompiles, writes its ``get_attr`` lines as
    :func:`_fast_attr_fetches` gives them."""

    _torchmdf_prologue: list[str] = []
    _torchmdf_attrs: dict[str, tuple[str, str]] | None = None

    def _gen_python_code(self, nodes, root_module, namespace, **kwargs):  # noqa: D102 - torch.fx hook
        code = super()._gen_python_code(nodes, root_module, namespace, **kwargs)
        fast = self._torchmdf_attrs
        if fast and root_module == "self" and not kwargs.get("verbose") and not kwargs.get("colored"):
            code.src = _rewrite_attr_fetches(code.src, fast)
        return code

    def gen_fn_def(self, free_vars, maybe_return_annotation):  # noqa: D102 - torch.fx hook
        head = super().gen_fn_def(free_vars, maybe_return_annotation)
        return head + "".join("\n    " + line for line in self._torchmdf_prologue)

    def additional_globals(self):  # noqa: D102 - torch.fx hook
        return list(super().additional_globals()) + [("_input_shape_error", _input_shape_error)]


class _PrologueCodeGen(_PrologueMixin, torch.fx.graph.CodeGen):
    pass


try:
    from torch.fx.graph import _PyTreeCodeGen as _TorchPyTreeCodeGen

    class _PyTreeCodeGen(_TorchPyTreeCodeGen):
        """torch.fx's pytree codegen, binding the leaves of inputs that have a default
        (a file's default value): torch.fx writes ``x = None, = tree_flatten_spec(...)``."""

        def gen_var_bindings(self, fn_args, free_vars, expanded_def):  # noqa: D102 - torch.fx hook
            return super().gen_var_bindings(fn_args, [v.split(" = ", 1)[0] for v in free_vars], expanded_def)

    class _ProloguePyTreeCodeGen(_PrologueMixin, _PyTreeCodeGen):
        pass
except ImportError:  # pragma: no cover - older torch
    _PyTreeCodeGen = _ProloguePyTreeCodeGen = None  # type: ignore[assignment,misc]


class _PrologueTracer(torch.fx.Tracer):
    """The tracer ``torch.fx`` re-traces a pickled module's code with: the prologue's checks
    are skipped while tracing (their nodes erased), then the prologue is put back."""

    def to_bool(self, obj):  # noqa: D102 - torch.fx hook
        self.__dict__.setdefault("_torchmdf_conds", []).append(obj.node)
        return False

    def trace(self, root, concrete_args=None):  # noqa: D102 - torch.fx hook
        graph = super().trace(root, concrete_args)
        todo = list(self.__dict__.pop("_torchmdf_conds", []))
        while todo:
            n = todo.pop()
            if n.graph is graph and not n.users and n.op in ("call_function", "call_method"):
                todo.extend(a for a in n.all_input_nodes)
                graph.erase_node(n)
        lines = (getattr(root, "meta", None) or {}).get("torchmdf_prologue")
        if lines:
            _install_prologue(graph, lines)
        return graph


def _install_prologue(fx: torch.fx.Graph, lines: list[str]) -> None:
    """Our codegen (even without prologue lines: it also writes the fast attribute fetches)."""
    fx._tracer_cls = _PrologueTracer
    cg = fx._codegen
    if type(cg) is torch.fx.graph.CodeGen:
        new = _PrologueCodeGen()
    elif _PyTreeCodeGen is not None and type(cg) is _PyTreeCodeGen:
        new = _ProloguePyTreeCodeGen(cg.pytree_info)
    else:  # pragma: no cover - a codegen this backend did not install
        raise ConversionError(f"cannot add input checks to a {type(cg).__name__}")
    new.__dict__.update(cg.__dict__)
    new._torchmdf_prologue = list(lines)
    fx._codegen = new


_FETCHED = "_attr_"  # the generated code's temporary for a fetched parameter or buffer


def _fast_attr_fetches(gm: torch.fx.GraphModule) -> dict[str, tuple[str, str]]:
    """For each ``get_attr`` node of ``gm`` that reads a parameter or buffer through plain
    submodules: its name -> (FX's ``self.a.b.w``, the same fetch through the modules'
    ``_modules`` / ``_parameters`` / ``_buffers`` dicts).  ``Module.__getattr__`` is reached
    only after a failed normal lookup (an AttributeError raised and caught per level: about 2 us
    each on a slow core, more than a small op costs); the dicts are what it reads.  The fetch
    falls back to ``self.a.b.w`` when the dict no longer holds the tensor (a parametrization
    added later, a parameter turned into a plain attribute), so it is never wrong, only slower."""
    out: dict[str, tuple[str, str]] = {}
    nodes = list(gm.graph.nodes)
    if any(n.name == _FETCHED for n in nodes):
        return out
    from torch.fx.graph import _format_target

    for n in nodes:
        if n.op != "get_attr" or not isinstance(n.target, str):
            continue
        *path, leaf = n.target.split(".")
        mod: Any = gm
        expr = "self"
        for p in path:
            sub = mod._modules.get(p)
            if not isinstance(sub, nn.Module) or hasattr(type(mod), p) or p in mod.__dict__:
                mod = None
                break
            expr += f"._modules[{p!r}]"
            mod = sub
        if mod is None or hasattr(type(mod), leaf) or leaf in mod.__dict__:
            continue
        where = "_parameters" if leaf in mod._parameters else "_buffers" if leaf in mod._buffers else None
        if where is None:
            continue
        plain = _format_target("self", n.target)
        out[n.name] = (plain, f"{_FETCHED} if ({_FETCHED} := {expr}.{where}.get({leaf!r})) is not None else {plain}")
    return out


def _rewrite_attr_fetches(src: str, fetches: dict[str, tuple[str, str]]) -> str:
    """``src`` with each line ``name = self.a.b.w`` (the start of a line: FX may append
    ``;  x = None``) fetching as ``fetches[name]`` says; lines keep their numbers."""
    lines = src.split("\n")
    for i, line in enumerate(lines):
        body = line.lstrip()
        name, sep, rest = body.partition(" = ")
        f = fetches.get(name) if sep else None
        if f is None or not rest.startswith(f[0]) or rest[len(f[0]):len(f[0]) + 1] not in ("", ";"):
            continue
        lines[i] = line[:len(line) - len(body)] + f"{name} = {f[1]}{rest[len(f[0]):]}"
    return "\n".join(lines)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _eliminate_dead_code(b: FxBuilder) -> None:
    """Drop FX nodes nobody reads (shape tensors whose values were resolved at build time,
    unused get_attrs); updates and impure ops stay."""
    for node in reversed(list(b.fx.nodes)):
        if node.op in ("placeholder", "output") or node.users or node in b.impure:
            continue
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload) \
                and node.target._schema.is_mutable:
            continue
        b.fx.erase_node(node)


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
        from torch.fx.graph import _PyTreeInfo
    except ImportError:  # pragma: no cover - older torch: flat calling convention
        return
    if _PyTreeCodeGen is None:  # pragma: no cover - older torch
        return
    from torchmdf.mdf.torchmdf_metadata import load_treespec

    ispec = load_treespec(in_spec) if in_spec else None  # never pytree's loader on file text
    ospec = load_treespec(out_spec) if out_spec else None
    if ispec is not None and ispec.num_leaves != len(in_names):
        ispec = None
    flat_in = ispec is None or _is_flat_inputs(ispec, len(in_names))
    out_node = next(n for n in reversed(fx.nodes) if n.op == "output")
    outs = out_node.args[0]
    if ospec is not None:
        if ospec.num_leaves != len(outs):
            ospec = None
        elif ospec == pytree.tree_flatten(0)[1]:
            out_node.args = (outs[0],)
            ospec = None
        elif ospec == pytree.tree_flatten(tuple(range(ospec.num_leaves)))[1]:
            ospec = None
    if flat_in and ospec is None:
        return
    if ispec is None:
        ispec = pytree.tree_flatten((tuple(range(len(in_names))), {}))[1]
    fx._codegen = _PyTreeCodeGen(_PyTreeInfo(_orig_arg_names(ispec, in_names), ispec, ospec))


def _orig_arg_names(ispec: Any, leaf_names: list[str]) -> list[str]:
    """The forward's own argument names for ``(args, kwargs)`` spec ``ispec``: a plain tensor
    argument keeps its leaf's name, a structured one the common stem of its leaves' names
    (``pair_0``, ``pair_1`` -> ``pair``), keyword arguments their keys."""
    import os

    if not (ispec.num_children == 2 and ispec.child(0).type is tuple and ispec.child(1).type is dict):
        return list(leaf_names)
    names: list[str] = []
    k = 0
    children = [ispec.child(0).child(i) for i in range(ispec.child(0).num_children)]
    for i, ch in enumerate(children):
        leaves = leaf_names[k:k + ch.num_leaves]
        k += ch.num_leaves
        if ch.is_leaf():
            names.append(leaves[0])
            continue
        stem = os.path.commonprefix(leaves).rstrip("_0123456789") if leaves else ""
        name = stem if stem.isidentifier() and stem not in leaf_names and stem not in names else f"arg{i}"
        names.append(name)
    names += [str(key) for key in ispec.child(1).context]
    return names


def lower_nodes(b: FxBuilder, graph: Graph) -> None:
    """Lower every node of ``graph`` (the root or a region) into ``b``; a failure is located at
    its IR node, and each FX node remembers where it came from (for run-time errors)."""
    fx = b.fx
    for n in graph:
        mark = len(fx.nodes)
        try:
            _lower_node(b, n)
        except TorchMDFError as e:
            if e.location:
                raise
            raise type(e)(e.raw_message, location=n.location(), hint=e.hint) from e
        except Exception as e:  # noqa: BLE001 - name the node whose lowering failed
            raise ConversionError(f"cannot build the torch code of {n.op}: {type(e).__name__}: {e}",
                                  location=n.location()) from e
        new = len(fx.nodes) - mark
        if new > 0:  # where each FX node came from, for run-time errors
            it = reversed(fx.nodes)
            loc = n.location()
            for _ in range(new):
                next(it).meta.setdefault("torchmdf_location", loc)


def _lower_node(b: FxBuilder, n: Node) -> None:
    """The op's entry decides: its ``fx_lower``, else its ``fx_target``, else its ``impl``;
    control flow is emitted by :mod:`torchmdf.backends.fx_control_flow`."""
    if n.regions:
        from .fx_control_flow import lower_region_node

        for o, x in zip(n.outputs, lower_region_node(b, n)):
            b.env[o] = x
        return
    sv = _eval_shape(b, n)
    if sv is not None:
        b.shapes[n.outputs[0]] = sv
    a = _Args(b, n)
    d = registry.get(n.op, n.location())
    out = d.fx_lower(b, n, a) if d.fx_lower is not None else None
    if out is None:
        out = _generic(b, n, a, d)
    if not d.pure and isinstance(out, torch.fx.Node):
        b.impure.add(out)
    if isinstance(out, (list, tuple)):
        for o, x in zip(n.outputs, out):
            if x is not None:
                b.env[o] = x
    elif len(n.outputs) == 1 and not callable(d.num_outputs):
        b.env[n.outputs[0]] = out
    else:  # several results, or an op of a variable count (Split) whose code returns a sequence
        for i, o in enumerate(n.outputs):
            if b.ir.is_live(o):
                b.env[o] = b.call(operator.getitem, (out, i))


def _generic(b: FxBuilder, n: Node, a: _Args, d: Any) -> torch.fx.Node:
    """ATen ops call their overload (factory ops on the module's device); others call the
    op's ``fx_target`` or, last, its registry implementation."""
    args = list(a)
    if n.op.startswith("aten::"):
        sig = registry.aten_signature(d.fx_target)
        cargs, ckw = sig.build_call(args, n.attrs)
        if "device" in sig.arg_names:
            k = sig.arg_names.index("device")
            dev = b.device()
            if k < len(cargs):
                cargs[k] = dev if dev is not None else cargs[k]
            elif dev is not None:
                ckw["device"] = dev
        return b.call(d.fx_target, tuple(cargs), ckw)
    if d.fx_target is not None:
        if d.fx_args is not None:
            fa, fk = d.fx_args(args, dict(n.attrs))
            return b.call(d.fx_target, tuple(fa), dict(fk))
        if not n.attrs:
            return b.call(d.fx_target, tuple(args))
    attrs = {k: b.fx.get_attr(b.constant_buffer(f"{n.outputs[0].name}_{k}", v)) if isinstance(v, torch.Tensor) else v
             for k, v in n.attrs.items()}  # a tensor attribute (ConstantOfShape's value): a buffer
    return b.call(_named_target(d.impl), tuple(args), attrs)


__all__ = ["emit_fx", "fx_rule", "FxBuilder", "TorchMDFGraphModule", "locate_runtime_error", "lower_nodes"]
