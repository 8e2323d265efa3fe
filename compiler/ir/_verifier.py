"""The one IR verifier: SSA, use lists, topological order, ownership, types where known.
Every failure names the node and its provenance."""

from __future__ import annotations

from ..errors import VerificationError
from ._core import Graph, Node, Value, ValueRole


def _fail(msg: str, node: Node | None = None, graph: Graph | None = None) -> None:
    loc = node.location() if node is not None else (f"graph '{graph.name}'" if graph is not None else None)
    raise VerificationError(msg, location=loc)


def verify(graph: Graph) -> None:
    """Raise :class:`VerificationError` at the first broken invariant.  Linear time."""
    defined: set[Value] = set()
    names: set[str] = set()

    def define(v: Value, node: Node | None) -> None:
        if v in defined:
            _fail(f"value %{v.name} is defined twice", node, graph)
        if v.name in names:
            _fail(f"value name %{v.name} is used by two values", node, graph)
        if v.graph is not graph:
            _fail(f"value %{v.name} does not belong to this graph", node, graph)
        defined.add(v)
        names.add(v.name)

    for v in graph.inputs:
        if v.producer is not None or v.role != ValueRole.INPUT:
            _fail(f"graph input %{v.name} must have no producer and role 'input'", None, graph)
        define(v, None)
    for sv in graph.state:
        if sv.current.role != ValueRole.STATE:
            _fail(f"state variable %{sv.name} must have role 'state'", None, graph)
        define(sv.current, None)
    for key, v in graph.parameters.items():
        if v.tensor is None or v.producer is not None:
            _fail(f"parameter %{key} must carry a tensor and have no producer", None, graph)
        if key != v.name:
            _fail(f"parameter registered as {key!r} is named %{v.name}", None, graph)
        define(v, None)

    count = 0
    prev = None
    n = graph._head
    while n is not None:
        if n._removed:
            _fail("a removed node is still linked", n, graph)
        if n._prev is not prev:
            _fail("node list links are broken", n, graph)
        if n.graph is not graph:
            _fail("node does not belong to this graph", n, graph)
        for i, v in enumerate(n.inputs):
            if v is None:
                continue
            if v not in defined:
                if v.producer is not None and v.producer.graph is graph:
                    _fail(f"input {i} (%{v.name}) is used before it is defined (order is not topological)",
                          n, graph)
                _fail(f"input {i} (%{v.name}) is not defined in this graph", n, graph)
            if (n, i) not in v._uses:
                _fail(f"use list of %{v.name} lacks this node's input {i}", n, graph)
        for i, o in enumerate(n.outputs):
            if o.producer is not n or o.index != i:
                _fail(f"output {i} (%{o.name}) does not point back to its node", n, graph)
            define(o, n)
        count += 1
        prev = n
        n = n._next
    if prev is not graph._tail:
        _fail("the graph's tail is not its last node", None, graph)
    if count != graph._count:
        _fail(f"node count {graph._count} does not match the {count} linked nodes", None, graph)

    for v in defined:
        for (user, i) in v._uses:
            if user.graph is not graph or user._removed:
                _fail(f"%{v.name} lists a use by a node outside the graph ({user.op})", v.producer, graph)
            if i >= len(user.inputs) or user.inputs[i] is not v:
                _fail(f"%{v.name} lists a stale use (input {i} of {user.op})", user, graph)
    for v in graph.outputs:
        if v not in defined:
            _fail(f"graph output %{v.name} is not defined in this graph", None, graph)
    for sv in graph.state:
        if sv.next is not None and sv.next not in defined:
            _fail(f"next value of state %{sv.name} is not defined in this graph", None, graph)
    for v in graph.parameters.values():
        t = v.tensor
        if v.type.shape is not None and v.type.is_static and tuple(t.shape) != v.type.shape:
            _fail(f"parameter %{v.name} has type {v.type} but its tensor is {tuple(t.shape)}", None, graph)
