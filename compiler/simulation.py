"""Simulation of MDF models as compiled torch code: modeci_mdf's ``evaluate()`` once, then
``evaluate(time_increment=dt)`` for each further step, with the state carried between steps.

The scheduler (:mod:`torchmdf.mdf.scheduler`, through :mod:`torchmdf.frontends.mdf`) says which
nodes run in each evaluation.
Without value-dependent conditions the schedule does not depend on values: it is streamed
step by step, and each distinct
evaluation (first or later, the node runs, which nodes ran before) is lowered once to an IR
graph, made stateless (state currents become inputs, the values the evaluation leaves extra
outputs, :func:`stateless`) and compiled to a ``torch.fx.GraphModule``; the step loop then only
calls compiled code and moves tensors between a dict of state and those calls.  With a
``Threshold`` condition the scheduler runs between node runs, each node run compiled the same
way, and the condition reads the state dict.

Output ports of a node that has not run yet are NaN in the trajectory (modeci_mdf holds None).
A port whose shape changes between steps has a list of per-step tensors as its trajectory
(``traj[key][i]`` is step ``i`` either way).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from torchmdf.errors import ConversionError, TorchMDFError
from torchmdf.ir import Graph, Value, ValueRole
from torchmdf.ir.meta_keys import DEFAULT, MDF_PORT
from torchmdf.limits import LIMITS
from torchmdf.mdf.conditions import threshold_getter
from torchmdf.mdf.scheduler import flatten


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
    """``{"node.port": tensor[steps, ...]}`` for every output port of the graph; a port whose
    shape changes between steps gets a list of ``steps`` tensors instead."""
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
    """Stream the schedule: each evaluation's key (first or later, the node runs, which nodes
    ran before) is computed as the loop reaches it, and lowered and compiled the first time it
    is seen, so memory does not grow with ``steps`` beyond the trajectories themselves."""
    compiled: dict[tuple, _Compiled] = {}
    feed: list[Any] | None = None
    port_items = list(traj.items())
    ran: frozenset[str] = frozenset()
    for k, sched in enumerate(prog.schedules(steps)):
        execs = tuple(flatten(sched))
        key = (k == 0, execs, ran)
        ran = ran | frozenset(execs) if not ran.issuperset(execs) else ran
        c = compiled.get(key)
        if c is None:
            seg = prog.segment(list(execs), first=k == 0, dt=None if k == 0 else dt, ran_before=key[2])
            c = compiled[key] = _Compiled(seg, None)
            if feed is None:
                feed = _feed(seg.g, inputs)
        _step(c, feed, state)
        for kk, lst in port_items:
            lst.append(state.get(kk))
        if k == 0:
            _check_trajectory_size(port_items, steps, prog)


def _step(c: _Compiled, feed: list[Any], state: dict) -> None:
    """Run one compiled evaluation (or node run) and keep the values it leaves in ``state``."""
    for k, v in zip(c.out_keys, _call(c, feed, state)):
        state[k] = v


def _call(c: _Compiled, feed: list[Any], state: dict) -> Any:
    try:
        return c.fn(*feed, *[state[k] for k in c.in_keys])
    except TorchMDFError:
        raise
    except Exception as e:  # noqa: BLE001 - name the MDF node and parameter that failed
        from torchmdf.backends.fx import locate_runtime_error

        located = locate_runtime_error(c.gm, e)
        if located is None:
            raise ConversionError(f"the simulation failed: {type(e).__name__}: {str(e)[:300]}") from e
        raise located from e


def _check_trajectory_size(port_items: list, steps: int, prog: Any) -> None:
    """The trajectories will hold ``steps`` copies of every output port: refuse a run whose
    trajectories would exceed ``LIMITS.max_elements`` before it grows."""
    per_step = sum(torch.as_tensor(lst[0]).numel() for _, lst in port_items if lst and lst[0] is not None)
    LIMITS.check_elements(per_step * steps, f"the trajectories of {steps:,} steps",
                          prog.loc(prog.base()))


def _run_dynamic(prog: Any, steps: int, dt: float, inputs: dict[str, Any] | None, state: dict,
                 traj: dict) -> None:
    """Threshold conditions: the scheduler runs in Python between compiled node runs."""
    sch = prog.scheduler()
    value_of = threshold_getter(prog, state)
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
                _step(c, feed, state)
                ran.add(nid)
        for k, lst in port_items:
            lst.append(state.get(k))
        if step == 0:
            _check_trajectory_size(port_items, steps, prog)


def _stack(values: list[Any]) -> torch.Tensor | list[torch.Tensor]:
    """Stack a port's trajectory; steps before its node first ran are NaN.  A port whose
    shape changes between steps (modeci_mdf lets a value broadcast into a larger one, as in
    the NeuroML ``Net1``/``SimpleNet`` exports) cannot be one tensor: its trajectory is a list
    of one tensor per step instead (dtypes promoted to a common one)."""
    known = next(torch.as_tensor(v) for v in values if v is not None)
    if any(v is None for v in values):
        known = known.double() if not known.is_floating_point() else known
        filler = torch.full_like(known, float("nan"))
        values = [filler if v is None else torch.as_tensor(v) for v in values]
    ts = [torch.as_tensor(v) for v in values]
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    ts = [t if t.dtype == dtype else t.to(dtype) for t in ts]
    if any(t.shape != ts[0].shape for t in ts):
        return ts
    return torch.stack(ts)


def _feed(g: Graph, inputs: dict[str, Any] | None) -> list[Any]:
    """The free input ports' values: given by input name or by "node.port", else the file's."""
    inputs = dict(inputs or {})
    out = []
    for v in g.inputs:
        if v.role != ValueRole.INPUT or MDF_PORT not in v.meta:
            continue
        key = v.name if v.name in inputs else v.meta.get(MDF_PORT)
        out.append(torch.as_tensor(inputs.pop(key)) if key in inputs else v.meta[DEFAULT])
    if inputs:
        known = ", ".join(f"{v.name} ({v.meta[MDF_PORT]})" for v in g.inputs if MDF_PORT in v.meta)
        raise ConversionError(f"unknown input(s) {', '.join(map(str, inputs))}; the graph's inputs are "
                              f"{known or '(none)'}")
    return out
