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
    def __init__(self, merge_constants: bool = True):
        self.merge_constants = merge_constants

    def call(self, graph: Graph) -> PassResult:
        modified = False
        if self.merge_constants:
            seen_c: dict[Any, Any] = {}
            for v in list(graph.parameters.values()):
                if v.role != ValueRole.CONSTANT or v.tensor.numel() > 64:
                    continue
                key = _hashable(v.tensor)
                first = seen_c.get(key)
                if first is None:
                    seen_c[key] = v
                elif v.is_used:
                    v.replace_all_uses_with(first)
                    modified = True
        seen: dict[Any, Any] = {}
        purity: dict[str, bool] = {}
        for node in graph:
            p = purity.get(node.op)
            if p is None:
                p = purity[node.op] = is_pure(node.op)
            if not p:
                continue
            key = (node.op, tuple(id(v) for v in node.inputs),
                   tuple(sorted((k, _hashable(a)) for k, a in node.attrs.items())), len(node.outputs))
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            for o, f in zip(node.outputs, first.outputs):
                o.replace_all_uses_with(f)
            graph.remove(node)
            modified = True
        return PassResult(graph, modified)
