"""Simulation of MDF models as torch code: modeci_mdf's ``evaluate()`` once, then
``evaluate(time_increment=dt)`` for each further step, with the state carried between steps.

The first step and the later steps are two IR graphs (see :mod:`torchmdf.frontends.mdf`):
the first uses initial values, the later ones are the pure function ``(inputs, state) ->
(outputs, state')`` with forward-Euler updates for time derivatives.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from torchmdf.errors import ConversionError
from torchmdf.interpreter import run_graph


def simulate(model: Any, steps: int = 1, dt: float = 0.01, *, graph: str | None = None,
             inputs: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """``{"node.port": tensor[steps, ...]}`` for every output port of the graph."""
    from torchmdf.frontends.mdf import lower_mdf
    from torchmdf.mdf import load

    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    if steps < 1:
        raise ConversionError(f"steps must be at least 1, got {steps}")
    first = lower_mdf(model, graph=graph, first=True)
    if first.conditions is not None:
        raise ConversionError(f"graph '{first.name}' has scheduling conditions; simulating them is not "
                              "supported yet", hint="conditions other than Always are kept as data only")
    port_names = list(first.meta["all_outputs"])
    feed = _feed(first, inputs)
    with torch.no_grad():
        state = _run_first(first, feed)
        traj: dict[str, list[torch.Tensor]] = {k: [state.pop(("out", k))] for k in port_names}
        if steps > 1:
            later = lower_mdf(model, graph=graph, first=False, dt=dt)
            later.outputs = [later.meta["all_outputs"][k] for k in port_names]
            feed2 = _feed(later, inputs)
            st = {sv.name: state[("state", sv.name)] for sv in later.state}
            for _ in range(steps - 1):
                outs, st = run_graph(later, feed2, st)
                for k, v in zip(port_names, outs):
                    traj[k].append(v)
    return {k: torch.stack([torch.as_tensor(x) for x in v]) for k, v in traj.items()}


def _feed(g, inputs: dict[str, Any] | None) -> list[Any]:
    inputs = dict(inputs or {})
    out = []
    for v in g.inputs:
        key = v.name if v.name in inputs else v.meta.get("mdf_port")
        out.append(torch.as_tensor(inputs.pop(key)) if key in inputs else v.meta["default"])
    if inputs and g.inputs:
        known = ", ".join(v.name for v in g.inputs)
        raise ConversionError(f"unknown input(s) {', '.join(inputs)}; the graph's inputs are {known}")
    return out


def _run_first(g, feed) -> dict[tuple[str, str], Any]:
    ports = list(g.meta["all_outputs"].items())
    states = list(g.meta.get("state_after", {}).items())
    g.outputs = [v for _, v in ports] + [v for _, v in states]
    outs, _ = run_graph(g, feed)
    res = {("out", k): o for (k, _), o in zip(ports, outs)}
    res.update({("state", k): o for (k, _), o in zip(states, outs[len(ports):])})
    return res
