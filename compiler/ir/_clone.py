"""Deep copy of a graph's structure, nested regions included (tensors are shared, not
copied).  Values a region captures from an enclosing scope are remapped to their copies; an
explicit stack keeps any depth of nesting fine."""

from __future__ import annotations

from typing import Iterator

from ._core import Graph, Node, StateVar, Value


def clone_graph(g: Graph) -> Graph:
    """A copy of ``g`` and everything nested in it.  Cloning a region on its own keeps the
    values it captures from enclosing scopes (they are not part of the copy)."""
    new = Graph(g.name)
    vmap: dict[Value, Value] = {}
    if g.parent_node is None:
        def m(x: Value) -> Value:
            return vmap[x]
    else:
        def m(x: Value) -> Value:
            return vmap.get(x, x)
    _copy_header(g, new, vmap)
    for sv in g.state:
        nsv = new.add_state(sv.name, sv.init, sv.current.type)
        nsv.current.meta = dict(sv.current.meta)
        vmap[sv.current] = nsv.current
    stack: list[tuple[Iterator[Node], Graph, Graph]] = [(iter(g), g, new)]
    while stack:
        it, src, dst = stack[-1]
        pushed = False
        for n in it:
            regions = [dst.new_region(r.name) for r in n.regions]
            nn = Node(n.op, [None if x is None else m(x) for x in n.inputs], attrs=dict(n.attrs),
                      provenance=n.provenance, output_names=[o.name for o in n.outputs],
                      metadata=dict(n.metadata), regions=regions)
            nn.meta = dict(n.meta)
            for o, no in zip(n.outputs, nn.outputs):
                no.type = o.type
                no.meta = dict(o.meta)
                vmap[o] = no
            dst.append(nn)
            if regions:
                for r, nr in zip(reversed(n.regions), reversed(regions)):
                    _copy_header(r, nr, vmap)
                    stack.append((iter(r), r, nr))
                pushed = True
                break
        if pushed:
            continue
        stack.pop()
        dst.outputs = [m(v) for v in src.outputs]
        dst.output_names = list(src.output_names) if src.output_names is not None else None
        dst.conditions = src.conditions
        dst.signature = src.signature.copy()
        dst.metadata = dict(src.metadata)
        dst.meta = {k: _remap(x, vmap) for k, x in src.meta.items()}
    for sv, nsv in zip(g.state, new.state):
        nsv.next = vmap.get(sv.next) if sv.next is not None else None
        nsv.init_value = vmap.get(sv.init_value) if sv.init_value is not None else None
    return new


def _copy_header(src: Graph, dst: Graph, vmap: dict[Value, Value]) -> None:
    """Inputs and parameters of ``src`` into ``dst``."""
    for v in src.inputs:
        vmap[v] = dst.add_input(v.name, v.type)
        vmap[v].meta = dict(v.meta)
    for name, v in src.parameters.items():
        nv = dst.add_parameter(name, v.tensor, role=v.role)
        nv.meta = dict(v.meta)
        vmap[v] = nv


def _remap(x, vmap: dict):
    """Analysis results may point at values (``meta["all_outputs"]``): point them at the copies."""
    if isinstance(x, Value):
        return vmap.get(x, x)
    if isinstance(x, dict):
        return {k: _remap(v, vmap) for k, v in x.items()}
    if isinstance(x, list):
        return [_remap(v, vmap) for v in x]
    return x


__all__ = ["clone_graph", "StateVar"]
