"""Time integration of MDF time derivatives: the op ``torchmdf::Integrate(old, derivative,
dt)`` the MDF frontend's program form emits for each ``time_derivative``, and the pass that
lowers it.

``method="euler"``: ``old + derivative * dt``, modeci_mdf's forward Euler (parameters update
in declaration order, each derivative seeing the new values of the parameters before it).
``method="rk4"``: the classic fourth-order Runge-Kutta step over all integrate nodes of the
graph together.  The derivative function is read off the graph: each derivative's inputs
computed from the integrated values (their old values, and the new values the Euler form lets
later derivatives see) are cloned once per stage with those values replaced by the stage's
state, so all derivatives of a stage see the same state (the system as one ODE)."""

from __future__ import annotations

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph, Node, Value
from torchmdf.ops import registry
from torchmdf.ops.registry import OpDef, register

from ._infra import Pass, PassResult, register_pass

INTEGRATE = "torchmdf::Integrate"
METHODS = ("euler", "rk4")


def _euler(old: torch.Tensor, derivative: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """One forward Euler step (the op's meaning before a method is chosen)."""
    return torch.add(old, torch.mul(derivative, dt))


if registry.lookup(INTEGRATE) is None:
    register(OpDef(INTEGRATE, impl=_euler, input_names=("old", "derivative", "dt"),
                   doc="old + derivative * dt until the integrate pass picks a method"))


@register_pass("integrate")
class Integrate(Pass):
    """Lower ``torchmdf::Integrate`` nodes with ``method`` (``euler`` or ``rk4``)."""

    def __init__(self, method: str = "euler"):
        if method not in METHODS:
            raise ConversionError(f"unknown integration method {method!r}", hint="one of " + ", ".join(METHODS))
        self.method = method

    def call(self, graph: Graph) -> PassResult:
        nodes = [n for n in graph if n.op == INTEGRATE]
        if not nodes:
            return PassResult(graph, False)
        if self.method == "euler":
            for n in nodes:
                old, td, dt = n.inputs
                step = graph.create_node("onnx::Mul", [td, dt], provenance=n.provenance, before=n).output
                new = graph.create_node("onnx::Add", [old, step], provenance=n.provenance, before=n).output
                n.output.replace_all_uses_with(new)
                graph.remove(n)
            return PassResult(graph, True)
        _rk4(graph, nodes)
        return PassResult(graph, True)


def _rk4(graph: Graph, nodes: list[Node]) -> None:
    olds = [n.inputs[0] for n in nodes]
    dt = nodes[0].inputs[2]
    if any(n.inputs[2] is not dt for n in nodes):
        raise ConversionError("rk4 needs one time step for every integrate node", location=nodes[0].location())
    if any(v.producer is not None and v.producer.op == INTEGRATE for v in olds):
        raise ConversionError("rk4 integrates each value once per evaluation; here a node runs more than "
                              "once in one evaluation", location=nodes[0].location(),
                              hint="use method='euler' (modeci_mdf's) for this schedule")
    sources = {id(v) for v in olds} | {id(n.output) for n in nodes}
    # the nodes between the integrated values and the derivatives, in graph order
    wanted: set[int] = set()
    stack = [n.inputs[1] for n in nodes]
    while stack:
        v = stack.pop()
        if v is None or id(v) in sources or v.producer is None or id(v.producer) in wanted:
            continue
        wanted.add(id(v.producer))
        stack.extend(v.producer.inputs)
    depends: set[int] = set(sources)
    slice_nodes: list[Node] = []
    for n in graph:
        if id(n) in wanted and any(x is not None and id(x) in depends for x in n.inputs):
            if n.regions or not registry.get(n.op).pure:
                raise ConversionError("rk4 cannot re-evaluate this node of the time derivatives "
                                      "(control flow or an impure op)", location=n.location())
            slice_nodes.append(n)
            depends.update(id(o) for o in n.outputs)
    anchor = nodes[-1]

    def op(name: str, inputs: list[Value]) -> Value:
        return graph.create_node(name, inputs, provenance=anchor.provenance, before=anchor).output

    def derivatives(state: list[Value]) -> list[Value]:
        vmap: dict[int, Value] = {}
        for n, x in zip(nodes, state):
            vmap[id(n.inputs[0])] = x
            vmap[id(n.output)] = x
        for n in slice_nodes:
            c = graph.create_node(n.op, [None if x is None else vmap.get(id(x), x) for x in n.inputs],
                                  dict(n.attrs), num_outputs=len(n.outputs), provenance=n.provenance,
                                  before=anchor)
            for o, co in zip(n.outputs, c.outputs):
                co.type = o.type
                co.meta.update(o.meta)
                vmap[id(o)] = co
        return [vmap.get(id(n.inputs[1]), n.inputs[1]) for n in nodes]

    half = op("onnx::Mul", [dt, graph.add_constant(torch.tensor(0.5, dtype=torch.float64))])
    sixth = op("onnx::Mul", [dt, graph.add_constant(torch.tensor(1.0 / 6.0, dtype=torch.float64))])
    two = graph.add_constant(torch.tensor(2.0, dtype=torch.float64))

    def advance(h: Value, k: list[Value]) -> list[Value]:
        return [op("onnx::Add", [o, op("onnx::Mul", [kk, h])]) for o, kk in zip(olds, k)]

    k1 = derivatives(olds)
    k2 = derivatives(advance(half, k1))
    k3 = derivatives(advance(half, k2))
    k4 = derivatives(advance(dt, k3))
    for n, a, b, c, d in zip(nodes, k1, k2, k3, k4):
        total = op("onnx::Add", [op("onnx::Add", [a, op("onnx::Mul", [b, two])]),
                                 op("onnx::Add", [op("onnx::Mul", [c, two]), d])])
        new = op("onnx::Add", [n.inputs[0], op("onnx::Mul", [total, sixth])])
        n.output.replace_all_uses_with(new)
    for n in reversed(nodes):
        graph.remove(n)
    graph.topological_sort()
