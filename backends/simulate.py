"""Simulation of MDF models as compiled torch code: modeci_mdf's ``evaluate()`` once, then
``evaluate(time_increment=dt)`` for each further step, with the state carried between steps.

The scheduler of :mod:`torchmdf.frontends.mdf` says which nodes run in each evaluation.
Without value-dependent conditions the whole schedule is known up front: each distinct
evaluation (first or later, the node runs, which nodes ran before) is lowered once to an IR
graph, made stateless (state currents become inputs, the values the evaluation leaves extra
outputs, :func:`stateless`) and compiled to a ``torch.fx.GraphModule``; the step loop then only
calls compiled code and moves tensors between a dict of state and those calls.  With a
``Threshold`` condition the scheduler runs between node runs, each node run compiled the same
way, and the condition reads the state dict.

Output ports of a node that has not run yet are NaN in the trajectory (modeci_mdf holds None).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph, Value


def stateless(g: Graph, outputs: list[Value]) -> tuple[Graph, list[Any]]:
    """A copy of stateful ``g`` as a pure function: inputs are ``g``'s inputs then one per
    state variable (its current value), outputs are ``outputs`` (values of ``g``).  Returns
    the copy and the state variables' names in input order, so ``emit_fx`` (which refuses
    state) can compile it."""
    saved = g.outputs
    g.outputs = list(outputs)
    try:
        c = g.clone()
    finally:
        g.outputs = saved
    names = []
    for sv in c.state:
        inp = c.add_input(f"state_{sv.name}", sv.current.type)
        sv.current.replace_all_uses_with(inp)
        names.append(sv.name)
    c.state = []
    c.output_names = None
    return c, names


class _Compiled:
    """One lowered evaluation (or node run) compiled to FX, with the state keys it reads and
    the keys of the values it returns."""

    __slots__ = ("fn", "gm", "in_keys", "out_keys")

    def __init__(self, seg: Any, needed: set | None):
        from torchmdf.backends.fx import emit_fx
        from torchmdf.passes import run_passes

        g = seg.g
        in_keys = list(seg.states)
        out_keys = [k for k in seg.values if needed is None or k in needed]
        pure, _ = stateless(g, [seg.values[k] for k in out_keys])
        pure, _ = run_passes(pure, ["fold_constants", "eliminate_dead_code"])
        gm = emit_fx(pure, output_dict=False)
        fwd = gm.forward  # the generated code itself: no nn.Module hook machinery per step
        self.fn = (lambda *a: (fwd(*a),)) if len(out_keys) == 1 else fwd
        self.gm = gm
        self.in_keys = in_keys
        self.out_keys = out_keys


def simulate(model: Any, steps: int = 1, dt: float = 0.01, *, graph: str | None = None,
             inputs: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """``{"node.port": tensor[steps, ...]}`` for every output port of the graph."""
    from torchmdf.frontends.mdf import program

    if not isinstance(steps, int) or steps < 1:
        raise ConversionError(f"steps must be an integer of at least 1, got {steps!r}")
    prog = program(model if not isinstance(model, os.PathLike) else os.fspath(model), graph)
    port_keys = [("port", n.id, p.id) for n in prog.nodes for p in n.output_ports]
    state: dict[tuple, Any] = {}
    traj: dict[tuple, list[Any]] = {k: [] for k in port_keys}
    with torch.no_grad():
        if prog.dynamic_condition is not None:
            _run_dynamic(prog, steps, dt, inputs, state, traj)
        else:
            _run_static(prog, steps, dt, inputs, state, traj)
    return {f"{k[1]}.{k[2]}": _stack(v) for k, v in traj.items() if any(x is not None for x in v)}


def _run_static(prog: Any, steps: int, dt: float, inputs: dict[str, Any] | None, state: dict,
                traj: dict) -> None:
    """Schedules first, then lower every distinct evaluation, then run compiled code."""
    from torchmdf.frontends.mdf import _flatten

    plan: list[tuple] = []
    ran: frozenset[str] = frozenset()
    for k, sched in enumerate(prog.schedules(steps)):
        execs = tuple(_flatten(sched))
        plan.append((k == 0, execs, ran))
        ran = ran | frozenset(execs)
    segs = {}
    for key in dict.fromkeys(plan):
        first, execs, before = key
        segs[key] = prog.segment(list(execs), first=first, dt=None if first else dt, ran_before=before)
    needed = set(traj) | {k for s in segs.values() for k in s.states}
    compiled = {key: _Compiled(s, needed) for key, s in segs.items()}
    feed = _feed(next(iter(segs.values())).g, inputs)
    _loop(plan, compiled, feed, state, traj)


def _loop(plan: list[tuple], compiled: dict, feed: list[Any], state: dict, traj: dict) -> None:
    """The step loop: call the compiled evaluation, keep what it leaves, record the ports."""
    port_items = list(traj.items())
    for c in [compiled[key] for key in plan]:
        outs = c.fn(*feed, *[state[k] for k in c.in_keys])
        for k, v in zip(c.out_keys, outs):
            state[k] = v
        for k, lst in port_items:
            lst.append(state.get(k))


def _run_dynamic(prog: Any, steps: int, dt: float, inputs: dict[str, Any] | None, state: dict,
                 traj: dict) -> None:
    """Threshold conditions: the scheduler runs in Python between compiled node runs."""
    sch = prog.scheduler()
    value_of = prog.threshold_getter(state)
    cache: dict[tuple, _Compiled] = {}
    ran: set[str] = set()
    feed: list[Any] | None = None
    port_items = list(traj.items())
    for step in range(steps):
        first = step == 0
        for cse in sch.run(value_of):
            for nid in cse:
                before = frozenset(({nid} & ran) | (prog.senders[nid] & ran))
                key = (first, nid, before)
                c = cache.get(key)
                if c is None:
                    seg = prog.segment([nid], first=first, dt=None if first else dt, ran_before=before)
                    c = cache[key] = _Compiled(seg, None)
                    if feed is None:
                        feed = _feed(seg.g, inputs)
                outs = c.fn(*feed, *[state[k] for k in c.in_keys])
                for k, v in zip(c.out_keys, outs):
                    state[k] = v
                ran.add(nid)
        for k, lst in port_items:
            lst.append(state.get(k))


def _stack(values: list[Any]) -> torch.Tensor:
    """Stack a port's trajectory; steps before its node first ran are NaN."""
    known = next(torch.as_tensor(v) for v in values if v is not None)
    if any(v is None for v in values):
        known = known.double() if not known.is_floating_point() else known
        filler = torch.full_like(known, float("nan"))
        values = [filler if v is None else torch.as_tensor(v).to(known.dtype) for v in values]
    return torch.stack([torch.as_tensor(v) for v in values])


def _feed(g: Graph, inputs: dict[str, Any] | None) -> list[Any]:
    """The free input ports' values: given by input name or by "node.port", else the file's."""
    inputs = dict(inputs or {})
    out = []
    for v in g.inputs:
        if v.role != "input" or "mdf_port" not in v.meta:
            continue
        key = v.name if v.name in inputs else v.meta.get("mdf_port")
        out.append(torch.as_tensor(inputs.pop(key)) if key in inputs else v.meta["default"])
    if inputs:
        known = ", ".join(f"{v.name} ({v.meta['mdf_port']})" for v in g.inputs if "mdf_port" in v.meta)
        raise ConversionError(f"unknown input(s) {', '.join(map(str, inputs))}; the graph's inputs are "
                              f"{known or '(none)'}")
    return out
