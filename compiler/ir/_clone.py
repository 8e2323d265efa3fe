"""Deep copy of a graph's structure (tensors are shared, not copied)."""

from __future__ import annotations

from ._core import Graph, Node, StateVar, Value


def clone_graph(g: Graph) -> Graph:
    new = Graph(g.name)
    vmap: dict[Value, Value] = {}
    for v in g.inputs:
        vmap[v] = new.add_input(v.name, v.type)
        vmap[v].meta = dict(v.meta)
    for sv in g.state:
        nsv = new.add_state(sv.name, sv.init, sv.current.type)
        nsv.current.meta = dict(sv.current.meta)
        vmap[sv.current] = nsv.current
    for name, v in g.parameters.items():
        nv = new.add_parameter(name, v.tensor, role=v.role)
        nv.meta = dict(v.meta)
        vmap[v] = nv
    for n in g:
        nn = Node(n.op, [None if x is None else vmap[x] for x in n.inputs], attrs=dict(n.attrs),
                  provenance=n.provenance, output_names=[o.name for o in n.outputs],
                  metadata=dict(n.metadata))
        nn.meta = dict(n.meta)
        for o, no in zip(n.outputs, nn.outputs):
            no.type = o.type
            no.meta = dict(o.meta)
            vmap[o] = no
        new.append(nn)
    new.outputs = [vmap[v] for v in g.outputs]
    new.output_names = list(g.output_names) if g.output_names is not None else None
    for sv, nsv in zip(g.state, new.state):
        nsv.next = vmap.get(sv.next) if sv.next is not None else None
        nsv.init_value = vmap.get(sv.init_value) if sv.init_value is not None else None
    new.conditions = g.conditions
    new.signature = g.signature.copy()
    new.metadata = dict(g.metadata)
    new.meta = {k: _remap(x, vmap) for k, x in g.meta.items()}
    return new


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
