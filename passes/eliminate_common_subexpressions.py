"""Common-subexpression elimination: two pure nodes with the same op, the same inputs and
equal attributes compute the same thing; keep the first.  Equal constants are merged too."""

from __future__ import annotations

from typing import Any

import torch

from torchmdf.ir import Graph, ValueRole

from ._infra import Pass, PassResult, register_pass
from .eliminate_dead_code import is_pure


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, tuple(_hashable(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, _hashable(x)) for k, x in v.items())))
    if isinstance(v, torch.Tensor):
        if v.numel() > 64:
            return ("tensor-id", id(v))
        return ("tensor", str(v.dtype), tuple(v.shape), tuple(v.flatten().tolist()))
    if isinstance(v, float) and v != v:
        return ("nan",)
    try:
        hash(v)
    except TypeError:
        return ("repr", repr(v))
    return (type(v).__name__, v)


@register_pass("eliminate_common_subexpressions")
class EliminateCommonSubexpressions(Pass):
    """Scoped CSE: a node inside a region may reuse an equal node (or constant) of an
    enclosing scope defined before the region's node, never one of a sibling region (a value
    computed in the then branch does not exist in the else branch).  Nodes owning regions
    are not merged."""

    def __init__(self, merge_constants: bool = True):
        self.merge_constants = merge_constants

    def call(self, graph: Graph) -> PassResult:
        modified = False
        scopes: list[tuple[dict[Any, Any], dict[Any, Any]]] = []  # (nodes, constants) per open graph
        purity: dict[str, bool] = {}
        stack: list[list[Any]] = [[graph, None]]
        while stack:
            top = stack[-1]
            if top[1] is None:  # entering a graph: its constants first
                scopes.append(({}, {}))
                modified |= self._merge_constants(top[0], scopes)
                top[1] = iter(top[0])
            g = top[0]
            pushed = False
            for node in top[1]:
                if node.regions:
                    stack.extend([r, None] for r in reversed(node.regions))
                    pushed = True
                    break
                modified |= self._merge_node(g, node, scopes, purity)
            if not pushed:
                stack.pop()
                scopes.pop()
        return PassResult(graph, modified)

    def _merge_constants(self, g: Graph, scopes: list) -> bool:
        if not self.merge_constants:
            return False
        modified = False
        seen_c = scopes[-1][1]
        for v in list(g.parameters.values()):
            if v.role != ValueRole.CONSTANT or v.tensor.numel() > 64:
                continue
            key = _hashable(v.tensor)
            first = _find(scopes, 1, key)
            if first is None:
                seen_c[key] = v
            elif v.is_used:
                v.replace_all_uses_with(first)
                modified = True
        return modified

    @staticmethod
    def _merge_node(g: Graph, node: Any, scopes: list, purity: dict[str, bool]) -> bool:
        p = purity.get(node.op)
        if p is None:
            p = purity[node.op] = is_pure(node.op)
        if not p:
            return False
        key = (node.op, tuple(id(v) for v in node.inputs),
               tuple(sorted((k, _hashable(a)) for k, a in node.attrs.items())), len(node.outputs))
        first = _find(scopes, 0, key)
        if first is None:
            scopes[-1][0][key] = node
            return False
        for o, f in zip(node.outputs, first.outputs):
            o.replace_all_uses_with(f)
        g.remove(node)
        return True


def _find(scopes: list, which: int, key: Any) -> Any:
    """The first entry for ``key`` in the open scopes, innermost first."""
    for scope in reversed(scopes):
        hit = scope[which].get(key)
        if hit is not None:
            return hit
    return None
