"""The one IR verifier: SSA, use lists, topological order, ownership, types where known, and
the scoping of regions (a value is visible in the graph that defines it after its definition,
and in the regions nested there).  Every failure names the node and its provenance.  Nested
regions are checked with an explicit stack, so any depth of nesting is fine."""

from __future__ import annotations

from ..errors import VerificationError
from ._core import Graph, Node, Value, ValueRole


def _fail(msg: str, node: Node | None = None, graph: Graph | None = None) -> None:
    loc = node.location() if node is not None else (_graph_location(graph) if graph is not None else None)
    raise VerificationError(msg, location=loc)


def _graph_location(graph: Graph) -> str:
    owner = graph.parent_node
    if owner is None:
        return f"graph '{graph.name}'"
    return f"region '{graph.name}' of {owner.location()}"


def _not_visible(v: Value, i: int, n: Node, graph: Graph) -> None:
    if v.producer is not None and v.producer.graph is graph:
        _fail(f"input {i} (%{v.name}) is used before it is defined (order is not topological)", n, graph)
    if v.graph is not None and v.graph.parent_node is not None:
        _fail(f"input {i} (%{v.name}) is defined in region '{v.graph.name}' of "
              f"{v.graph.parent_node.location()}, which does not enclose this node", n, graph)
    _fail(f"input {i} (%{v.name}) is not defined in this graph or an enclosing one", n, graph)


class _Frame:
    """One graph being checked: where the walk stands in it and what it defined."""

    __slots__ = ("graph", "node", "prev", "count", "local", "pending")

    def __init__(self, graph: Graph):
        self.graph = graph
        self.node = graph._head
        self.prev: Node | None = None
        self.count = 0
        self.local: list[Value] = []
        self.pending: Node | None = None  # a node whose regions are being checked


def verify(graph: Graph) -> None:
    """Raise :class:`VerificationError` at the first broken invariant.  Linear time."""
    visible: set[Value] = set()  # values in scope at the point being checked
    defined: set[Value] = set()  # every value defined anywhere in the nest
    names: set[str] = set()
    nodes: set[Node] = set()
    root_names = graph._names

    def define(v: Value, node: Node | None, frame: _Frame) -> None:
        g = frame.graph
        if v in defined:
            _fail(f"value %{v.name} is defined twice", node, g)
        if v.name in names:
            _fail(f"value name %{v.name} is used by two values", node, g)
        if v.graph is not g:
            _fail(f"value %{v.name} does not belong to this graph", node, g)
        defined.add(v)
        visible.add(v)
        names.add(v.name)
        frame.local.append(v)

    def enter(g: Graph) -> _Frame:
        frame = _Frame(g)
        if g is not graph and g._names is not root_names:
            _fail("region does not share its root graph's value names", None, g)
        if g is not graph and g.state:
            _fail("a region may not have state variables", None, g)
        for v in g.inputs:
            if v.producer is not None or v.role != ValueRole.INPUT:
                _fail(f"graph input %{v.name} must have no producer and role 'input'", None, g)
            define(v, None, frame)
        for sv in g.state:
            if sv.current.role != ValueRole.STATE:
                _fail(f"state variable %{sv.name} must have role 'state'", None, g)
            define(sv.current, None, frame)
        for key, v in g.parameters.items():
            if v.tensor is None or v.producer is not None:
                _fail(f"parameter %{key} must carry a tensor and have no producer", None, g)
            if key != v.name:
                _fail(f"parameter registered as {key!r} is named %{v.name}", None, g)
            define(v, None, frame)
        return frame

    def leave(frame: _Frame) -> None:
        g = frame.graph
        if frame.prev is not g._tail:
            _fail("the graph's tail is not its last node", None, g)
        if frame.count != g._count:
            _fail(f"node count {g._count} does not match the {frame.count} linked nodes", None, g)
        owners = sum(1 for n in g if n._regions)
        if owners != g._region_owners:
            _fail(f"region owner count {g._region_owners} does not match the {owners} nodes with regions",
                  None, g)
        for v in g.outputs:
            if v not in visible:
                _fail(f"graph output %{v.name} is not defined in this graph"
                      + (" or an enclosing one" if g is not graph else ""), None, g)
            if v.graph is not g and (v._returned_by is None or v._returned_by.get(g, 0) <= 0):
                _fail(f"output %{v.name} of an enclosing scope is not noted as returned by this region",
                      None, g)
        for sv in g.state:
            if sv.next is not None and sv.next not in visible:
                _fail(f"next value of state %{sv.name} is not defined in this graph", None, g)
        for v in g.parameters.values():
            t = v.tensor
            if v.type.shape is not None and v.type.is_static and tuple(t.shape) != v.type.shape:
                _fail(f"parameter %{v.name} has type {v.type} but its tensor is {tuple(t.shape)}", None, g)
        visible.difference_update(frame.local)

    stack: list[_Frame | Graph] = [enter(graph)]
    while stack:
        frame = stack[-1]
        if isinstance(frame, Graph):  # a region not entered yet: its inputs become visible now
            frame = stack[-1] = enter(frame)
        g = frame.graph
        if frame.pending is not None:  # back from the regions of this node: define its outputs
            n = frame.pending
            frame.pending = None
            for o in n.outputs:
                define(o, n, frame)
            frame.prev = n
            frame.node = n._next
        n = frame.node
        if n is None:
            leave(frame)
            stack.pop()
            continue
        if n._removed:
            _fail("a removed node is still linked", n, g)
        if n._prev is not frame.prev:
            _fail("node list links are broken", n, g)
        if n.graph is not g:
            _fail("node does not belong to this graph", n, g)
        nodes.add(n)
        frame.count += 1
        for i, v in enumerate(n.inputs):
            if v is None:
                continue
            if v not in visible:
                _not_visible(v, i, n, g)
            if (n, i) not in v._uses:
                _fail(f"use list of %{v.name} lacks this node's input {i}", n, g)
        for i, o in enumerate(n.outputs):
            if o.producer is not n or o.index != i:
                _fail(f"output {i} (%{o.name}) does not point back to its node", n, g)
        if n._regions:
            _check_region_semantics(n)
            for r in n._regions:
                if r.parent_node is not n:
                    _fail(f"region '{r.name}' does not point back to its node", n, g)
            frame.pending = n
            stack.extend(reversed(n._regions))
            continue
        for o in n.outputs:
            define(o, n, frame)
        frame.prev = n
        frame.node = n._next

    for v in defined:
        for (user, i) in v._uses:
            if user not in nodes or user._removed:
                _fail(f"%{v.name} lists a use by a node outside the graph ({user.op})", v.producer, v.graph)
            if i >= len(user.inputs) or user.inputs[i] is not v:
                _fail(f"%{v.name} lists a stale use (input {i} of {user.op})", user, user.graph)


def _check_region_semantics(n: Node) -> None:
    """The op's own rules for its regions (how many, their arities), from the registry."""
    from ..ops import registry

    d = registry.lookup(n.op)
    rules = getattr(d, "regions", None) if d is not None else None
    if rules is None:
        return
    problem = rules.check(n)
    if problem:
        _fail(problem, n, n.graph)
