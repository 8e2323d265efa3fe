"""Deep copy of a graph's structure (tensors are shared, not copied)."""

from __future__ import annotations

from ._core import Graph, Node, StateVar, Value


def clone_graph(g: Graph) -> Graph:
    new = Graph(g.name)
    vmap: dict[Value, Value] = {}
    for v in g.inputs:
        vmap[v] = new.add_input(v.name, v.type)
    for sv in g.state:
        nsv = new.add_state(sv.name, sv.init, sv.current.type)
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
    new.metadata = dict(g.metadata)
    new.meta = dict(g.meta)
    return new


__all__ = ["clone_graph", "StateVar"]
