"""Remove nodes whose results nobody reads, and parameters nobody uses.  One reverse sweep
per graph: removing a node drops its uses, so its now-dead producers are found later in the
same sweep.  Regions are swept first, innermost first, so a value read only by dead nodes
inside a region dies with them; a node with regions is pure only if everything in its
regions is (a loop that prints is kept)."""

from __future__ import annotations

from torchmdf.ir import Graph, Node, inner_first
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
        impure_regions: set[Graph] = set()
        modified = False
        for g in inner_first(graph) if graph.has_regions else (graph,):
            g_live = live if g is graph else {id(v) for v in g.outputs}
            g_pure = True
            for node in g.reversed():
                if not self._pure(node, purity, impure_regions):
                    g_pure = False
                    continue
                if any(o.is_used or id(o) in g_live for o in node.outputs):
                    continue
                g.remove(node)
                modified = True
            if not g_pure:
                impure_regions.add(g)
            if self.remove_unused_parameters:
                for v in list(g.parameters.values()):
                    if not v.is_used and id(v) not in g_live:
                        g.remove_parameter(v)
                        modified = True
        return PassResult(graph, modified)

    @staticmethod
    def _pure(node: Node, purity: dict[str, bool], impure_regions: set[Graph]) -> bool:
        p = purity.get(node.op)
        if p is None:
            p = purity[node.op] = is_pure(node.op)
        return p and not any(r in impure_regions for r in node.regions)
