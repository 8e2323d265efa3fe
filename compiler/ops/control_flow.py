"""Control-flow ops: nodes that own regions (see :mod:`torchmdf.ir._regions`).

* ``onnx::If(cond)``: regions ``then_branch`` and ``else_branch``, no inputs, as many outputs
  as the node; only the taken branch runs.
* ``onnx::Loop(M, cond, v_initial...)`` with ONNX semantics: ``M`` (trip count) and ``cond``
  may be absent (None); region ``body(iteration_num, cond_in, v_in...) -> (cond_out,
  v_out..., scan_outputs...)``; the node's outputs are the final loop-carried values, then
  each scan output stacked over the iterations along a new dim 0.
* ``torchmdf::While(v_initial...)``, like ``torch.while_loop``: regions ``cond(v...) ->
  (keep_going,)`` and ``body(v...) -> (v'...)``; the outputs are the final values.

Each op's :class:`RegionSemantics` (its ``OpDef.regions``) says in one place how its regions
are checked, run, typed and simplified; the interpreter, the verifier, shape inference and
constant folding read it.  ``run`` and ``infer`` are generators driven by
:func:`torchmdf.ir._regions.drive`: they yield ``(region, inputs)`` to have a region visited
and are sent its outputs, so nesting costs no Python recursion.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch

from ..errors import ConversionError
from ..ir import Node, TensorType, ValueRole
from ..ir._regions import RegionCoroutine, inline_region, walk_nodes
from ..ir.meta_keys import MAX_ITERATIONS
from . import registry


@dataclasses.dataclass(frozen=True)
class RegionSemantics:
    """What an op's regions mean."""

    check: Callable[[Node], str | None]
    """The structural rules (region count, arities): a message for the verifier, or None."""
    run: Callable[[Node, list[Any]], RegionCoroutine]
    """Evaluate: yields ``(region, input tensors)``, is sent the region's output tensors,
    returns the node's output tensors."""
    infer: Callable[[Node, Callable[[Node], None]], RegionCoroutine]
    """Type inference ``infer(node, reset)``: yields ``(region, input types)``, is sent the
    region's output types, returns the node's output types; ``reset(node)`` puts the types
    inside the node's regions back to what they were before inference (for another round)."""
    static_region: Callable[[Node], int | None] | None = None
    """The index of a region the node statically amounts to (an If on a constant), or None."""


def _refuse(name: str) -> Callable[..., Any]:
    def impl(*args: Any, **kwargs: Any) -> Any:
        raise ConversionError(f"{name} owns regions: it runs through torchmdf.interpreter, not on "
                              "tensors alone", hint="a backend that supports control flow runs it")

    return impl


# -- types -------------------------------------------------------------------------------------


def join_types(a: TensorType, b: TensorType, symbol: str) -> TensorType:
    """A type for a value that is ``a`` or ``b``: equal dims kept, a differing one becomes the
    symbol ``f"{symbol}_{axis}"``, a differing rank or dtype unknown."""
    if a == b:
        return a
    dtype = a.dtype if a.dtype == b.dtype else None
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return TensorType(dtype, None)
    dims = tuple(x if x == y else f"{symbol}_{i}" for i, (x, y) in enumerate(zip(a.shape, b.shape)))
    return TensorType(dtype, dims)


_I64 = TensorType(torch.int64, ())
_BOOL = TensorType(torch.bool, ())
MAX_TYPE_ITERATIONS = 8
"""Rounds of loop-carried type widening before the carried shapes are given up as unknown."""


def _carried_fixed_point(node: Node, init: Sequence[TensorType], visit: Callable[[list[TensorType]], Any],
                         reset: Callable[[Node], None]) -> RegionCoroutine:
    """Iterate a loop's body types to a fixed point: the carried types start as ``init``;
    after each round (``visit(types)``, a generator returning the carried output types) a
    dim that changed becomes a symbol named after the node's output.  Types inside the loop
    are reset before each new round, so they describe every iteration, not the first."""
    types = list(init)
    for round_ in range(MAX_TYPE_ITERATIONS):
        outs = yield from visit(types)
        new = [join_types(t, o, node.outputs[k].name if k < len(node.outputs) else f"v{k}")
               for k, (t, o) in enumerate(zip(types, outs))]
        if new == types:
            break
        if round_ == MAX_TYPE_ITERATIONS - 2:  # still changing: give up the changing shapes
            new = [t if t == old else TensorType(t.dtype, None) for t, old in zip(new, types)]
        types = new
        reset(node)
    return types


# -- If ------------------------------------------------------------------------------------------


def _if_check(n: Node) -> str | None:
    if len(n.inputs) != 1 or n.inputs[0] is None:
        return "an If takes one input, its condition"
    if len(n.regions) != 2:
        return f"an If has two regions (then_branch, else_branch), not {len(n.regions)}"
    for r in n.regions:
        if r.inputs:
            return f"region '{r.name}' of an If takes no inputs, not {len(r.inputs)}"
        if len(r.outputs) != len(n.outputs):
            return (f"region '{r.name}' returns {len(r.outputs)} values but the If has "
                    f"{len(n.outputs)} outputs")
    return None


def _if_run(n: Node, args: list[Any]) -> RegionCoroutine:
    taken = n.regions[0 if bool(args[0]) else 1]
    outs = yield (taken, [])
    return outs


def _if_infer(n: Node, reset: Callable[[Node], None]) -> RegionCoroutine:
    then = yield (n.regions[0], [])
    other = yield (n.regions[1], [])
    return [join_types(a, b, o.name) for a, b, o in zip(then, other, n.outputs)]


def _if_static(n: Node) -> int | None:
    c = n.inputs[0]
    if c is None or c.tensor is None or c.role != ValueRole.CONSTANT or c.tensor.numel() != 1:
        return None
    return 0 if bool(c.tensor) else 1


# -- Loop ----------------------------------------------------------------------------------------


def _loop_check(n: Node) -> str | None:
    if len(n.inputs) < 2:
        return "a Loop takes (M, cond, v_initial...): M and cond may be None but must be there"
    if len(n.regions) != 1:
        return f"a Loop has one region (body), not {len(n.regions)}"
    body = n.regions[0]
    k = len(n.inputs) - 2
    if any(v is None for v in n.inputs[2:]):
        return "a Loop's loop-carried initial values may not be None"
    if len(body.inputs) != 2 + k:
        return (f"the body of a Loop with {k} loop-carried values takes {2 + k} inputs "
                f"(iteration_num, cond, v...), not {len(body.inputs)}")
    if len(body.outputs) < 1 + k:
        return (f"the body of a Loop with {k} loop-carried values returns at least {1 + k} values "
                f"(cond, v...), not {len(body.outputs)}")
    if len(n.outputs) != len(body.outputs) - 1:
        return (f"a Loop whose body returns {len(body.outputs) - 1 - k} scan outputs has "
                f"{len(body.outputs) - 1} outputs, not {len(n.outputs)}")
    return None


def _empty_scan(t: TensorType) -> torch.Tensor:
    """A scan output of a Loop that ran zero times: 0 elements of the body output's type
    (a dim the type does not know is 0: the rank stays what shape inference says)."""
    shape = () if t.shape is None else tuple(d if isinstance(d, int) else 0 for d in t.shape)
    return torch.empty((0, *shape), dtype=t.dtype or torch.float32)


def _loop_run(n: Node, args: list[Any]) -> RegionCoroutine:
    trips, cond, carried = args[0], args[1], list(args[2:])
    body = n.regions[0]
    k = len(carried)
    max_trips = None if trips is None else int(trips)
    keep = True if cond is None else bool(cond)
    scans: list[list[Any]] = []
    i = 0
    limit = n.meta.get(MAX_ITERATIONS)
    while keep and (max_trips is None or i < max_trips):
        if limit is not None and i >= limit:
            raise ConversionError(f"the Loop ran more than {limit:,} iterations", location=n.location(),
                                  hint="raise torchmdf.limits.LIMITS.max_loop_iterations if the loop is meant "
                                  "to run that long")
        outs = yield (body, [torch.tensor(i, dtype=torch.int64), torch.tensor(keep), *carried])
        if cond is not None:  # without a cond input, ONNX ignores cond_out
            keep = bool(outs[0])
        carried = list(outs[1:1 + k])
        scans.append(outs[1 + k:])
        i += 1
    stacked = [torch.stack([s[j] for s in scans]) if scans else _empty_scan(body.outputs[1 + k + j].type)
               for j in range(len(body.outputs) - 1 - k)]
    return carried + stacked


def _loop_infer(n: Node, reset: Callable[[Node], None]) -> RegionCoroutine:
    body = n.regions[0]
    k = len(n.inputs) - 2

    def visit(types: list[TensorType]) -> RegionCoroutine:
        outs = yield (body, [_I64, _BOOL, *types])
        return outs[1:1 + k]

    init = [v.type for v in n.inputs[2:]]
    carried = yield from _carried_fixed_point(n, init, visit, reset)
    m = n.inputs[0]
    static = m is not None and m.tensor is not None and m.tensor.numel() == 1 and n.inputs[1] is None
    trips = int(m.tensor) if static else f"{n.outputs[k].name}_trips" if len(n.outputs) > k else None
    scans = [TensorType(o.type.dtype, None if o.type.shape is None else (trips, *o.type.shape))
             for o in body.outputs[1 + k:]]
    return carried + scans


# -- While ---------------------------------------------------------------------------------------


def _while_check(n: Node) -> str | None:
    if len(n.regions) != 2:
        return f"a While has two regions (cond, body), not {len(n.regions)}"
    cond, body = n.regions
    k = len(n.inputs)
    if any(v is None for v in n.inputs):
        return "a While's initial values may not be None"
    if len(cond.inputs) != k or len(body.inputs) != k:
        return f"the cond and body of a While over {k} values each take {k} inputs"
    if len(cond.outputs) != 1:
        return f"the cond of a While returns one value, not {len(cond.outputs)}"
    if len(body.outputs) != k:
        return f"the body of a While over {k} values returns {k} values, not {len(body.outputs)}"
    if len(n.outputs) != k:
        return f"a While over {k} values has {k} outputs, not {len(n.outputs)}"
    return None


def _while_run(n: Node, args: list[Any]) -> RegionCoroutine:
    cond, body = n.regions
    carried = list(args)
    while True:
        keep = yield (cond, carried)
        if not bool(keep[0]):
            return carried
        carried = list((yield (body, carried)))


def _while_infer(n: Node, reset: Callable[[Node], None]) -> RegionCoroutine:
    cond, body = n.regions

    def visit(types: list[TensorType]) -> RegionCoroutine:
        yield (cond, types)
        outs = yield (body, types)
        return outs

    return (yield from _carried_fixed_point(n, [v.type for v in n.inputs], visit, reset))


IF = RegionSemantics(_if_check, _if_run, _if_infer, _if_static)
LOOP = RegionSemantics(_loop_check, _loop_run, _loop_infer)
WHILE = RegionSemantics(_while_check, _while_run, _while_infer)

registry.register(registry.OpDef(
    name="onnx::If", impl=_refuse("onnx::If"), input_names=["cond"], onnx_name="If", regions=IF,
    doc="Runs then_branch or else_branch (regions without inputs) on a scalar condition."))
registry.register(registry.OpDef(
    name="onnx::Loop", impl=_refuse("onnx::Loop"), input_names=["M", "cond", "v_initial"], variadic=True,
    onnx_name="Loop", regions=LOOP,
    doc="ONNX Loop: body(iteration_num, cond, v...) -> (cond, v..., scans...) while i < M and cond."))
registry.register(registry.OpDef(
    name="torchmdf::While", impl=_refuse("torchmdf::While"), input_names=["v_initial"], variadic=True,
    regions=WHILE, doc="torch.while_loop: body(v...) -> v... while cond(v...) holds."))


# -- helpers for passes ------------------------------------------------------------------------


def region_semantics(node: Node) -> RegionSemantics | None:
    d = registry.lookup(node.op)
    return None if d is None else d.regions


def node_is_pure(node: Node, purity: dict[str, bool] | None = None) -> bool:
    """Whether ``node`` may be removed or deduplicated: its op is pure and so is every node in
    its regions (``purity`` caches per op name)."""
    cache = {} if purity is None else purity
    nodes = walk_nodes_of(node)
    for n in nodes:
        p = cache.get(n.op)
        if p is None:
            d = registry.lookup(n.op)
            p = cache[n.op] = d is not None and d.pure
        if not p:
            return False
    return True


def walk_nodes_of(node: Node):
    """``node`` and every node in its regions."""
    yield node
    for r in node.regions:
        yield from walk_nodes(r)


def inline_static_region(node: Node) -> bool:
    """Replace a node that statically amounts to one of its regions (an If on a constant
    condition) by that region's body; True if it did."""
    sem = region_semantics(node)
    if sem is None or sem.static_region is None:
        return False
    index = sem.static_region(node)
    if index is None:
        return False
    inline_region(node, index)
    return True


__all__ = ["RegionSemantics", "IF", "LOOP", "WHILE", "join_types", "node_is_pure", "region_semantics",
           "inline_static_region", "MAX_TYPE_ITERATIONS"]
