"""Control flow in the FX backend: nodes with regions (``onnx::If``, ``onnx::Loop``,
``torchmdf::While``) as torch's higher-order ops.

Each region becomes a sub-``GraphModule`` built by the same builder (:class:`RegionBuilder`,
one per region, so a nest of regions is built recursively; in practice the depth is bounded
by torch's eager dispatch of nested higher-order ops, which runs out of Python stack at about
90 nested Ifs -- far more than models have), registered on the module that
calls it and fetched with ``get_attr`` -- the form ``torch.export`` itself produces, so the
emitted module runs at native speed (only the taken branch runs; a loop iterates at run time)
and ``torch.export`` and ``torch.compile`` of it work.  FX graphs cannot close over values,
so every value of an enclosing scope a region reads (parameters and constants included) is
passed as an explicit operand: a region's placeholders are its own inputs, then the values it
captures, in one order shared by the regions of a node.

* ``onnx::If`` -> ``torch.ops.higher_order.cond(pred, then, else, captured)``: its autograd
  differentiates the taken branch only, so a branch not taken that would give NaN (``sqrt``
  of a negative) leaves the gradient finite.
* ``torchmdf::While`` -> ``torch.ops.higher_order.while_loop(cond, body, carried, captured)``.
* ``onnx::Loop`` without scan outputs -> ``while_loop`` carrying ``(i, keep, v...)`` with the
  condition ``keep and i < M``.
* ``onnx::Loop`` with scan outputs and a trip count known at build time (as ``int``/``size``;
  no ``cond`` input) -> ``torch.ops.higher_order.scan`` over ``arange(M)`` carrying ``v...``
  (the body's ``cond_in`` is a constant true made inside it: a carried bool has no gradient,
  which scan's autograd refuses): the scan outputs stacked along dim 0, exportable and
  differentiable.
* Any other ``onnx::Loop`` with scan outputs (a data-dependent trip count or a ``cond``) runs
  as a Python loop (:func:`run_loop`): correct and differentiable in eager mode, a graph break
  for ``torch.compile``, not exportable (its output length depends on the data).

A region output that is one of its placeholders is cloned (higher-order ops refuse outputs
aliasing inputs).
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import torch
import torch.fx

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph, Node, Value

from .fx import FxBuilder, _attr_part, _eliminate_dead_code, lower_nodes


class RegionBuilder(FxBuilder):
    """Builds one region's sub-``GraphModule``: values of enclosing scopes it reads become
    placeholders (``captured``), fetched from ``parent`` when the node is emitted."""

    def __init__(self, parent: FxBuilder, region: Graph):
        super().__init__(region)
        self.parent = parent
        self.captured: dict[Value, torch.fx.Node] = {}
        self.input_nodes: list[torch.fx.Node] = []

    def get(self, v: Value) -> Any:
        if v in self.env:
            return super().get(v)
        ph = self.captured.get(v)
        if ph is None:
            if v.graph is self.ir and v.tensor is None:  # a region's own weights come from the root
                raise ConversionError(f"value %{v.name} is used before it is defined")
            ph = self.captured[v] = self.fx.placeholder(_attr_part(v.name.replace(".", "_")))
        return ph

    def number_operand(self, v: Value | None, other: Value | None) -> Any:
        """A Python number, as before: a region's tensors come in as operands (``torch.cond``
        and friends trace the region with fake tensors and refuse a buffer of its own)."""
        return self.scalar(v, other)

    def device(self) -> Any:
        if self._device is False:
            src = self.ir.inputs[0] if self.ir.inputs else next(iter(self.ir.root.inputs), None)
            self._device = None if src is None else self.call(getattr, (self.get(src), "device"))
        return self._device


def _build(parent: FxBuilder, region: Graph, input_nodes: dict[int, Any] | None = None) -> RegionBuilder:
    """Lower ``region``'s nodes into a new :class:`RegionBuilder` (its inputs as placeholders,
    unless ``input_nodes`` maps an input index to something else); the outputs are left to the
    caller (:func:`_finish`)."""
    rb = RegionBuilder(parent, region)
    for k, v in enumerate(region.inputs):
        if input_nodes and k in input_nodes:
            rb.env[v] = input_nodes[k]
        else:
            ph = rb.fx.placeholder(_attr_part(v.name))
            rb.env[v] = ph
            rb.input_nodes.append(ph)
    lower_nodes(rb, region)
    return rb


def _out(rb: RegionBuilder, x: Any) -> Any:
    """An output of a region: a clone where it would alias an input."""
    if isinstance(x, torch.fx.Node) and x.op == "placeholder":
        return rb.method("clone", (x,))
    return x


def _finish(builders: Sequence[RegionBuilder], outputs: Sequence[Sequence[Any]],
            extra: Sequence[Value] = ()) -> list[Value]:
    """Give sibling regions the same captured operands (``extra`` first, then in order of
    first use), write their outputs, and return the captured values."""
    order: dict[Value, None] = dict.fromkeys(extra)
    for rb in builders:
        order.update(dict.fromkeys(rb.captured))
    captured = list(order)
    for rb, outs in zip(builders, outputs):
        seen: set[torch.fx.Node] = set()
        fixed = []
        for x in outs:
            x = _out(rb, x)
            if x in seen:  # one value returned twice: outputs may not alias each other either
                x = rb.method("clone", (x,))
            seen.add(x)
            fixed.append(x)
        rb.fx.output(tuple(fixed))
        _eliminate_dead_code(rb)
        for v in captured:
            rb.get(v)
        first = next(n for n in rb.fx.nodes if n.op != "placeholder")
        for ph in rb.input_nodes + [rb.captured[v] for v in captured]:
            first.prepend(ph)
    return captured


def _single_output(rb: RegionBuilder) -> None:
    """A while_loop's condition returns its one value bare, not in a tuple."""
    out = next(n for n in reversed(rb.fx.nodes) if n.op == "output")
    out.args = (out.args[0][0],)


def _module(parent: FxBuilder, n: Node, rb: RegionBuilder, what: str) -> torch.fx.Node:
    """Register ``rb``'s GraphModule on the parent's module; a ``get_attr`` of it."""
    gm = torch.fx.GraphModule(rb.root, rb.fx, class_name=f"{what}_region")
    base = _attr_part(f"{n.outputs[0].name if n.outputs else n.op.split('::')[-1]}_{what}")
    mod, leaf = parent.module_for(f"_regions.{base}")
    name, k = leaf, 1
    while hasattr(mod, name):
        name = f"{leaf}_{k}"
        k += 1
    mod.add_module(name, gm)
    return parent.fx.get_attr(f"_regions.{name}")


def _scalar_bool(b: FxBuilder, v: Value) -> Any:
    x = b.get(v)
    if v.type.dtype is not torch.bool:
        x = b.call(torch.ne, (x, 0))
    if v.type.shape != ():
        x = b.method("reshape", (x, ()))
    return x


def _results(b: FxBuilder, out: torch.fx.Node, count: int, offset: int = 0) -> list[torch.fx.Node]:
    return [b.call(operator.getitem, (out, offset + i)) for i in range(count)]


# -- the ops -------------------------------------------------------------------------------------


def lower_if(b: FxBuilder, n: Node) -> list[Any]:
    then, other = (_build(b, r) for r in n.regions)
    captured = _finish([then, other], [[then.get(v) for v in n.regions[0].outputs],
                                       [other.get(v) for v in n.regions[1].outputs]])
    pred = _scalar_bool(b, n.inputs[0])
    t, f = _module(b, n, then, "then"), _module(b, n, other, "else")
    out = b.call(torch.ops.higher_order.cond, (pred, t, f, tuple(b.get(v) for v in captured)))
    return _results(b, out, len(n.outputs))


def lower_while(b: FxBuilder, n: Node) -> list[Any]:
    cond, body = (_build(b, r) for r in n.regions)
    captured = _finish([cond, body], [[_scalar_bool(cond, n.regions[0].outputs[0])],
                                      [body.get(v) for v in n.regions[1].outputs]])
    _single_output(cond)
    c, f = _module(b, n, cond, "cond"), _module(b, n, body, "body")
    out = b.call(torch.ops.higher_order.while_loop,
                 (c, f, tuple(b.get(v) for v in n.inputs), tuple(b.get(v) for v in captured)))
    return _results(b, out, len(n.outputs))


def _factory(b: FxBuilder, fn: Any, args: Sequence[Any], dtype: torch.dtype) -> torch.fx.Node:
    kw: dict[str, Any] = {"dtype": dtype}
    dev = b.device()
    if dev is not None:
        kw["device"] = dev
    return b.call(fn, tuple(args), kw)


def lower_loop(b: FxBuilder, n: Node) -> list[Any]:
    m, cond = n.inputs[0], n.inputs[1]
    body_ir = n.regions[0]
    k = len(n.inputs) - 2
    scans = len(body_ir.outputs) - 1 - k
    if scans == 0:
        return _loop_as_while(b, n)
    trips = b.scalar_arg(m) if m is not None and cond is None else None
    if trips is None:
        return _loop_in_python(b, n)
    # scan over arange(M) carrying v...: body(v..., i, captured...); without a cond input the
    # body's cond_in is always true, made inside the body (a carried bool would be a carry
    # without a gradient, which scan's autograd refuses)
    rb = RegionBuilder(b, body_ir)
    carry_phs = [rb.fx.placeholder(_attr_part(v.name)) for v in body_ir.inputs[2:]]
    i = rb.fx.placeholder(_attr_part(body_ir.inputs[0].name))
    rb.env[body_ir.inputs[0]] = i
    for v, ph in zip(body_ir.inputs[2:], carry_phs):
        rb.env[v] = ph
    rb.input_nodes = [*carry_phs, i]
    rb.env[body_ir.inputs[1]] = rb.call(torch.ones_like, (i,), {"dtype": torch.bool})
    lower_nodes(rb, body_ir)
    outs = [rb.get(v) for v in body_ir.outputs]
    captured = _finish([rb], [outs[1:]])
    f = _module(b, n, rb, "body")
    init = [b.get(v) for v in n.inputs[2:]]
    xs = _factory(b, torch.arange, [trips], torch.int64)
    out = b.call(torch.ops.higher_order.scan, (f, init, [xs], tuple(b.get(v) for v in captured)))
    return _results(b, out, k + scans)


def _loop_as_while(b: FxBuilder, n: Node) -> list[Any]:
    """``onnx::Loop`` without scan outputs: ``while_loop`` over ``(i, keep, v...)``."""
    m, cond = n.inputs[0], n.inputs[1]
    body_ir = n.regions[0]
    k = len(n.inputs) - 2
    body = _build(b, body_ir)
    i, keep = body.input_nodes[0], body.input_nodes[1]
    outs = [body.get(v) for v in body_ir.outputs]
    nxt = body.call(operator.add, (i, 1))
    keep_out = outs[0] if cond is not None else keep
    if cond is not None and body_ir.outputs[0].type.dtype is not torch.bool:
        keep_out = _scalar_bool(body, body_ir.outputs[0])
    # the condition: keep and i < M (M captured like any outer value)
    cg = RegionBuilder(b, body_ir)
    phs = [cg.fx.placeholder(name) for name in ("i", "keep", *[f"v{j}" for j in range(k)])]
    cg.input_nodes = list(phs)
    go = phs[1]
    if m is not None:
        go = cg.call(torch.logical_and, (go, cg.call(torch.lt, (phs[0], cg.get(m)))))
    captured = _finish([cg, body], [[go], [nxt, keep_out, *outs[1:1 + k]]])
    _single_output(cg)
    c, f = _module(b, n, cg, "cond"), _module(b, n, body, "body")
    keep0 = _scalar_bool(b, cond) if cond is not None else _factory(b, torch.ones, [()], torch.bool)
    i0 = _factory(b, torch.zeros, [()], torch.int64)
    out = b.call(torch.ops.higher_order.while_loop,
                 (c, f, (i0, keep0, *[b.get(v) for v in n.inputs[2:]]), tuple(b.get(v) for v in captured)))
    return _results(b, out, k, offset=2)


def run_loop(body: torch.nn.Module, trips: Any, cond: Any, k: int, *args: Any) -> tuple:
    """An ONNX Loop with scan outputs whose length depends on the data, in Python (eager)."""
    carried, captured = list(args[:k]), args[k:]
    keep = True if cond is None else bool(cond)
    limit = None if trips is None else int(trips)
    scans: list[tuple] = []
    i = 0
    while keep and (limit is None or i < limit):
        outs = body(torch.tensor(i), torch.tensor(keep), *carried, *captured)
        if cond is not None:
            keep = bool(outs[0])
        carried = list(outs[1:1 + k])
        scans.append(tuple(outs[1 + k:]))
        i += 1
    if not scans:
        raise ConversionError("a Loop with scan outputs ran zero iterations: the scan outputs' shape is unknown")
    return (*carried, *[torch.stack(s) for s in zip(*scans)])


torch.fx.wrap("run_loop")


def _loop_in_python(b: FxBuilder, n: Node) -> list[Any]:
    body_ir = n.regions[0]
    k = len(n.inputs) - 2
    body = _build(b, body_ir)
    captured = _finish([body], [[body.get(v) for v in body_ir.outputs]])
    f = _module(b, n, body, "body")
    m, cond = n.inputs[0], n.inputs[1]
    out = b.call(run_loop, (f, None if m is None else b.get(m), None if cond is None else b.get(cond), k,
                            *[b.get(v) for v in n.inputs[2:]], *[b.get(v) for v in captured]))
    b.impure.discard(out)
    return _results(b, out, len(n.outputs))


LOWERINGS = {"onnx::If": lower_if, "torchmdf::While": lower_while, "onnx::Loop": lower_loop}


def lower_region_node(b: FxBuilder, n: Node) -> list[Any]:
    """The FX code of a node with regions (the hook :func:`torchmdf.backends.fx._lower_node`
    calls)."""
    fn = LOWERINGS.get(n.op)
    if fn is None:
        raise ConversionError(f"{n.op} owns regions the FX backend cannot emit", location=n.location())
    return fn(b, n)


__all__ = ["lower_region_node", "RegionBuilder", "run_loop"]
