"""Remove nodes whose results nobody reads, and parameters nobody uses.  One reverse sweep:
removing a node drops its uses, so its now-dead producers are found later in the same sweep."""

from __future__ import annotations

from torchmdf.ir import Graph
from torchmdf.ops import registry

from ._infra import Pass, PassResult, register_pass


def is_pure(op: str) -> bool:
    d = registry.lookup(op)
    return d is not None and d.pure


@register_pass("eliminate_dead_code")
class EliminateDeadCode(Pass):
    """Dead-code elimination (linear time).  Impure ops (random, in-place) are kept."""

    def __init__(self, remove_unused_parameters: bool = True):
        self.remove_unused_parameters = remove_unused_parameters

    def call(self, graph: Graph) -> PassResult:
        live = graph.live_roots()
        purity: dict[str, bool] = {}
        modified = False
        for node in graph.reversed():
            if any(o.is_used or id(o) in live for o in node.outputs):
                continue
            p = purity.get(node.op)
            if p is None:
                p = purity[node.op] = is_pure(node.op)
            if not p:
                continue
            graph.remove(node)
            modified = True
        if self.remove_unused_parameters:
            for v in list(graph.parameters.values()):
                if not v.is_used and id(v) not in live:
                    graph.remove_parameter(v)
                    modified = True
        return PassResult(graph, modified)
