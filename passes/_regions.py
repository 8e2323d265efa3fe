"""Shape inference through regions (used by ``infer_shapes.infer_graph`` on graphs with
control flow).  Nodes are visited in execution order with :func:`torchmdf.ir.drive`: a
region's inputs are typed from its node (an If branch has none; a loop body gets the
iteration number, the condition and the carried types), its nodes are inferred, and the
op's ``RegionSemantics.infer`` turns the regions' output types into the node's (the merge of
both branches of an If; the fixed point of a loop's carried types)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torchmdf.ir import Graph, Node, TensorType, drive
from torchmdf.ops.control_flow import region_semantics


def infer_nested(graph: Graph, infer_one: Callable[[Node], Any]) -> bool:
    """Infer every value of the nest; True if a type changed (compared with before, so the
    rounds a loop's fixed point takes do not count as changes)."""
    before = {v: v.type for g in graph.graphs() for v in _values(g)}

    def reset(node: Node) -> None:
        for r in node.regions:
            for n in r.walk():
                for o in n.outputs:
                    o.type = before.get(o, o.type)

    def region_node(node: Node):
        sem = region_semantics(node)
        if sem is None:  # an op whose regions we cannot read: leave its outputs as they are
            return
        types = yield from sem.infer(node, reset)
        for o, t in zip(node.outputs, types):
            o.type = _refine(o.type, t)

    def enter(region: Graph, types: Sequence[TensorType]) -> None:
        for v, t in zip(region.inputs, types):
            v.type = t

    drive(graph, infer_one, region_node, enter, lambda region: [v.type for v in region.outputs])
    return any(v.type != t for v, t in before.items())


def _refine(declared: TensorType, inferred: TensorType) -> TensorType:
    """The inferred type of a control-flow output (it may be wider than what an earlier run
    or the frontend said: a dim that differs between branches or iterations), keeping the
    declared symbol names where both have a symbol (torch's ``s0`` relates to other dims)."""
    if declared.shape is None or inferred.shape is None or len(declared.shape) != len(inferred.shape):
        return TensorType(inferred.dtype or declared.dtype, inferred.shape)
    dims = tuple(d if isinstance(d, str) and isinstance(i, str) else i
                 for d, i in zip(declared.shape, inferred.shape))
    return TensorType(inferred.dtype or declared.dtype, dims)


def _values(g: Graph):
    yield from g.inputs
    for n in g:
        yield from n.outputs


__all__ = ["infer_nested"]
