"""A reference interpreter for the IR: runs each node through the registry's torch
implementation (control flow through each op's region semantics, with an explicit stack).
Slow but simple; used by constant folding, by tests as an oracle, and to
check a backend's output.  (The FX backend is the fast path.)"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .errors import ConversionError, TorchMDFError
from .ir import Graph, Node, Value
from .ir._regions import RegionCoroutine, drive
from .ops import registry


def run_graph(graph: Graph, inputs: Sequence[Any] = (), state: dict[str, Any] | None = None,
              values: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Evaluate ``graph`` once.  Returns (outputs, next state by state-variable name).
    ``values``, when given, receives every node output by value name (``torchmdf verify``
    compares them with a backend's to find the first node that diverges)."""
    env: dict[Value, Any] = {}
    if len(inputs) != len(graph.inputs):
        raise ConversionError(f"graph '{graph.name}' takes {len(graph.inputs)} inputs, got {len(inputs)}")
    for v, x in zip(graph.inputs, inputs):
        env[v] = x
    for v in graph.parameters.values():
        env[v] = v.tensor
    for sv in graph.state:
        if state is not None and sv.name in state:
            env[sv.current] = state[sv.name]
        else:
            env[sv.current] = sv.init

    def store(node: Node, outs: Sequence[Any]) -> None:
        for o, r in zip(node.outputs, outs):
            env[o] = r
            if values is not None:
                values[o.name] = r

    def plain(node: Node) -> None:
        d = registry.lookup(node.op) or registry.get(node.op, node.location())  # location only on error
        try:
            outs = d.run([None if v is None else env[v] for v in node.inputs], node.attrs)
        except Exception as e:
            raise _located(node, e)  # noqa: B904 - _located chains it
        store(node, outs)

    def region_node(node: Node) -> RegionCoroutine:
        """Runs a control-flow node: its op's semantics asks for the regions to run."""
        sem = registry.get(node.op, node.location()).regions
        if sem is None:
            raise ConversionError(f"{node.op} has no region semantics", location=node.location())
        args = [None if v is None else env[v] for v in node.inputs]
        try:
            outs = yield from sem.run(node, args)
        except Exception as e:
            raise _located(node, e)  # noqa: B904 - _located chains it
        store(node, outs)

    def enter(region: Graph, region_args: Sequence[Any]) -> None:
        for v, x in zip(region.inputs, region_args):
            env[v] = x
        for v in region.parameters.values():
            env[v] = v.tensor

    drive(graph, plain, region_node, enter, lambda region: [env[v] for v in region.outputs])
    outs = [env[v] for v in graph.outputs]
    nxt = {sv.name: env[sv.next] for sv in graph.state if sv.next is not None}
    return outs, nxt


def _located(node: Node, e: Exception) -> Exception:
    """``e`` as raised by evaluating ``node``: our own errors as they are, others located."""
    if isinstance(e, TorchMDFError):
        return e
    err = ConversionError(f"evaluating {node.op} failed: {type(e).__name__}: {e}", location=node.location())
    err.__cause__ = e
    return err


def run(graph: Graph, *inputs: Any) -> Any:
    """Outputs of one evaluation: a single tensor, or a list when there are several."""
    with torch.no_grad():
        outs, _ = run_graph(graph, inputs)
    return outs[0] if len(outs) == 1 else outs
