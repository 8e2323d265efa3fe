"""Regions: nodes that own nested graphs (control flow).

The region model
----------------
A node may own an ordered tuple of **regions** (``node.regions``): each is a :class:`Graph`
whose ``parent_node`` is that node.  A region has its own **inputs** (block arguments: the
iteration number and carried values of a loop body, none for an If branch), its own nodes and
**outputs** (what it yields to its node), and may hold constants of its own in
``parameters``; it has no state variables.  The op says what its regions mean (the
``OpDef.regions`` semantics of :mod:`torchmdf.ops.control_flow`: ``onnx::If``, ``onnx::Loop``,
``torchmdf::While``), how many there are and their arities; the verifier checks them.

**Scoping.**  Inside a region, every value of the enclosing scopes defined *before* the owning
node is visible and is used directly (captured implicitly, as in MLIR and ONNX subgraphs): no
capture list is kept.  A value defined inside a region is visible only there and in regions
nested in it, so a value computed in the ``then`` branch cannot be read by the ``else`` branch
or after the If (the If's outputs carry it out).  The owning node's own outputs are not
visible inside its regions.  Value names are unique across the whole nest (a region shares
its root graph's name table), so a name in a printout or an error means one value.

**Use lists are scope-aware.**  A node inside a region that reads an outer value is in that
value's ``uses()``, whatever the depth, so ``replace_all_uses_with``, dead-code elimination and
``Graph.remove(safe=True)`` see it; a region that *returns* an outer value directly is noted
on the value too (``Value._returned_by``), so replacing the value updates the region's
outputs and the value stays live.  Removing a node drops every use made inside its regions.

**No recursion.**  ``graph.walk()`` (every node at every depth, in program order),
``graph.graphs()`` (every graph, outer before inner), the verifier, the printer, ``clone``, the
interpreter and the passes all keep explicit stacks, so thousands of nested Ifs and Loops are
fine.  :func:`drive` is the one engine for visiting a nest in execution order: an op's region
semantics is a generator that yields ``(region, payload)`` each time it wants a region visited
(a loop body once per iteration, one branch of an If) and receives what the region produced.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterator, Sequence

from ..errors import VerificationError
from ._core import Graph, Node, Value

RegionCoroutine = Generator[tuple[Graph, Any], Any, Any]
"""What an op's region semantics yields: ``(region, payload)``; it is sent the region's result."""


def attach_region(node: Node, region: Graph | str) -> Graph:
    """Make ``region`` (or a new empty graph of that name) the node's next region."""
    if isinstance(region, str):
        region = node.graph.new_region(region) if node.graph is not None else Graph(region)
    if region.parent_node is not None:
        raise VerificationError(f"graph '{region.name}' is already a region of another node",
                                location=node.location())
    if region.state:
        raise VerificationError(f"region '{region.name}' has state variables; only top-level "
                                "graphs may", location=node.location())
    region.parent_node = node
    node._regions = node._regions + (region,)
    region.outputs._track(region)
    g = node.graph
    if g is not None:
        if len(node._regions) == 1:
            g._region_owners += 1
        adopt_regions(node, g)
    return region


def adopt_regions(node: Node, graph: Graph) -> None:
    """Give the regions of ``node`` (just put in ``graph``) the graph's name table, renaming
    their values where a name is taken.  Regions made with ``graph.new_region`` share it
    already, so this costs nothing for them."""
    names = graph._names
    for region in node._regions:
        if region._names is names:
            continue
        for g in walk_graphs(region):
            if g._names is names:
                continue
            for v in _own_values(g):
                v.name = graph.unique_name(v.name)
            g.parameters = {v.name: v for v in g.parameters.values()}
            g._names = names
            g._counter = graph._counter


def take_regions(node: Node) -> tuple[Graph, ...]:
    """Detach every region of ``node`` (to hand them to a node replacing it); the regions keep
    their nodes, names and uses of outer values."""
    regions = node._regions
    if regions:
        node._regions = ()
        if node.graph is not None:
            node.graph._region_owners -= 1
        for r in regions:
            r.parent_node = None
    return regions


def release_regions(node: Node) -> None:
    """``node`` was removed: drop the uses its regions' nodes make of outer values, and stop
    noting the outer values its regions return."""
    for region in node._regions:
        for g in walk_graphs(region):
            g.outputs._track(None)
            for n in g:
                n._drop_uses()


def _own_values(g: Graph) -> Iterator[Value]:
    yield from g.inputs
    yield from g.parameters.values()
    for n in g:
        yield from n.outputs


def walk_nodes(graph: Graph) -> Iterator[Node]:
    """Every node of ``graph`` and its nested regions in program order (see ``Graph.walk``).
    Removing the node just visited is safe; its regions are then not visited."""
    stack: list[Iterator[Node]] = [iter(graph)]
    while stack:
        n = next(stack[-1], None)
        if n is None:
            stack.pop()
            continue
        yield n
        if n._regions and not n._removed:
            stack.extend(iter(r) for r in reversed(n._regions))


def walk_graphs(graph: Graph) -> Iterator[Graph]:
    """``graph`` and every region nested in it, a graph always before the regions of its
    nodes; a graph's regions are looked up after it was visited (so a pass may change it)."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        if g._region_owners:
            stack.extend(reversed([r for n in g for r in n._regions]))


def inner_first(graph: Graph) -> list[Graph]:
    """Every graph of the nest, each region before the graph holding its node."""
    order = list(walk_graphs(graph))
    order.reverse()
    return order


def captured_values(node: Node) -> list[Value]:
    """The values of enclosing scopes that ``node``'s regions read or return (its implicit
    inputs), in order of first use."""
    inner: set[Graph] = set()
    for r in node._regions:
        inner.update(walk_graphs(r))
    seen: dict[Value, None] = {}
    for g in inner:
        for n in g:
            for v in n._inputs:
                if v is not None and v.graph not in inner:
                    seen[v] = None
        for v in g.outputs:
            if v is not None and v.graph not in inner:
                seen[v] = None
    return list(seen)


def owner_in(node: Node, graph: Graph) -> Node | None:
    """The node of ``graph`` that contains ``node`` (itself, or the owner of its region)."""
    while node is not None and node.graph is not graph:
        g = node.graph
        node = g.parent_node if g is not None else None
    return node


def inline_region(node: Node, index: int, inputs: Sequence[Value] = ()) -> list[Value]:
    """Replace ``node`` by the body of its region ``index``: its nodes and constants move in
    front of the node, its inputs are replaced by ``inputs``, the node's outputs by the
    region's outputs.  Returns the values that replaced the node's outputs."""
    outer = node.graph
    region = node._regions[index]
    if outer is None or len(inputs) != len(region.inputs):
        raise VerificationError(f"cannot inline region '{region.name}'", location=node.location())
    for arg, v in zip(region.inputs, inputs):
        arg.replace_all_uses_with(v)
    for name, p in region.parameters.items():
        p.graph = outer
        outer.parameters[name] = p
    region.parameters = {}
    moved = list(region)
    region._head = region._tail = None
    region._count = 0
    region._region_owners = 0
    for n in moved:
        n.graph = None
        for o in n.outputs:
            o.graph = outer  # keeps its (nest-unique) name
        outer.insert_before(node, n)
    results = list(region.outputs)
    for o, r in zip(node.outputs, results):
        o.replace_all_uses_with(r)
    outer.remove(node)
    return results


_DONE = object()


def _step(co: RegionCoroutine, value: Any) -> Any:
    try:
        return co.send(value)
    except StopIteration:
        return _DONE


def drive(graph: Graph, plain: Callable[[Node], Any], region_node: Callable[[Node], RegionCoroutine],
          enter: Callable[[Graph, Any], Any], leave: Callable[[Graph], Any]) -> None:
    """Visit ``graph`` in execution order with an explicit stack.

    Each node without regions goes to ``plain(node)``.  A node with regions gets a coroutine
    ``region_node(node)``; each ``(region, payload)`` it yields is visited: ``enter(region,
    payload)``, then the region's nodes (the same way, at any depth), then ``leave(region)``,
    whose result is sent back into the coroutine.  When it returns, the walk goes on after
    the node."""
    stack: list[tuple[Iterator[Node], RegionCoroutine | None, Graph]] = [(iter(graph), None, graph)]
    while stack:
        it, _, _ = stack[-1]
        pushed = False
        for node in it:
            if not node._regions:
                plain(node)
                continue
            co = region_node(node)
            req = _step(co, None)
            if req is not _DONE:
                enter(req[0], req[1])
                stack.append((iter(req[0]), co, req[0]))
                pushed = True
                break
        if pushed:
            continue
        _, co, region = stack.pop()
        if co is None:
            continue
        req = _step(co, leave(region))
        if req is not _DONE:
            enter(req[0], req[1])
            stack.append((iter(req[0]), co, req[0]))


__all__ = ["attach_region", "take_regions", "walk_nodes", "walk_graphs", "inner_first", "captured_values", "owner_in",
           "inline_region", "drive", "RegionCoroutine"]
