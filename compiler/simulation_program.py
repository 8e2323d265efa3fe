"""A whole simulation as one IR graph whose time loop is a region (``onnx::Loop``).

:func:`simulation_graph` builds the program form of :func:`torchmdf.simulate`: the same
evaluations, lowered by the same frontend code (``MDFProgram.segment(..., program_inputs=True)``,
then ``parameters_to_inputs``, ``integrate``, folding) and made stateless by
:func:`torchmdf.simulation.stateless`, but spliced into one graph instead of compiled one by
one:

* **Inputs**: ``dt`` (float64 scalar), then one per name in ``params`` (``"node.parameter"``,
  the input ``node_parameter``, tagged ``MDF_PARAM``), then one per name in ``inputs``
  (``"node.port"``, a free input port; the others are constants at their default).
* **Prologue**: the evaluations before the schedule repeats (modeci_mdf's first
  ``evaluate()``, whose time derivatives take their initial values, at least), unrolled.
* **The loop**: ``onnx::Loop(M, "", state...)`` with ONNX semantics: ``M`` (a constant) later
  evaluations, the loop-carried values are the state the evaluations pass on (parameter
  values, output ports, functions: what the next evaluation reads), the scan outputs are every
  output port after each evaluation.  Its body is the steady-state evaluation graph (with a
  schedule that repeats every ``p`` evaluations, ``p`` of them chained; the scans are then
  interleaved back into step order).
* **Epilogue**: the ``(steps - prologue) % p`` evaluations left, unrolled.
* **Outputs**: ``"node.port"`` -> the trajectory ``[steps, ...]``, equal to
  ``torchmdf.simulate(model, steps, dt, params=...)``'s (NaN before the node first ran; a port
  that never runs is left out).

The schedule comes from the scheduler on counters (every condition but ``Threshold`` reads only
counters): the node runs of each evaluation and which nodes ran before are the evaluation's
key; the prologue and period are the shortest ones after which the keys repeat (at most
``MAX_PERIOD`` evaluations per period, ``MAX_UNROLLED`` evaluations outside the loop).  A
schedule that does not settle within those, a ``Threshold`` condition (the schedule depends on
values), and a value whose shape changes from step to step are refused with a located
:class:`~torchmdf.errors.ConversionError`.  With ``steps == 1`` there is nothing to repeat and
the graph has no loop.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph, Node, TensorType, Value
from torchmdf.ir.meta_keys import DEFAULT, MDF_PARAM, MDF_PORT, TIME_STEP
from torchmdf.limits import LIMITS

#: The longest period (evaluations) a repeating schedule may have to be looped.
MAX_PERIOD = 16
#: The most evaluations that may be unrolled outside the loop (prologue, epilogue, and the
#: extra ones peeled while a carried value's type settles).
MAX_UNROLLED = 64
#: How many more evaluations may be peeled off into the prologue while the carried types settle
#: (an integer initial value that becomes a float after the first Euler step).
_MAX_PEELS = 4

Key = tuple  # (first, node runs, nodes that ran before): one distinct evaluation

_I64 = TensorType(torch.int64, ())
_BOOL = TensorType(torch.bool, ())


def simulation_graph(model: Any, steps: int, *, graph: str | None = None, params: Iterable[str] = (),
                     inputs: Iterable[str] = (), method: str = "euler") -> Graph:
    """The simulation of ``steps`` evaluations of an MDF model as one IR graph whose time loop
    is an ``onnx::Loop`` region (see the module docstring).  ``params``: ``"node.parameter"``
    names (a dict's keys: ``simulate``'s ``params=`` works) that become inputs after ``dt``;
    ``inputs``: ``"node.port"`` names of free input ports that become inputs after them."""
    from torchmdf.frontends.mdf import program, settable_parameters
    from torchmdf.simulation import check_steps_and_method, unknown_parameter

    check_steps_and_method(steps, method)
    prog = program(model if not isinstance(model, os.PathLike) else os.fspath(model), graph)
    where = prog.loc(prog.base())
    dyn = prog.dynamic_condition
    if dyn is not None:
        raise ConversionError("a Threshold condition makes the schedule depend on computed values: the time "
                              "loop cannot be one repeated evaluation graph", location=where,
                              hint="torchmdf.simulate runs it (as counters and masks)")
    pnames = _names(params, "params")
    settable = settable_parameters(prog)
    for name in pnames:
        if name not in settable:
            raise unknown_parameter(name, settable, where)
    free = {f"{n.id}.{p.id}": (n, p) for n, p in prog.free_ports}
    inames = _names(inputs, "inputs")
    for name in inames:
        if name not in free:
            raise ConversionError(f"unknown input {name!r} for inputs=; the graph's free input ports are "
                                  + (", ".join(free) or "(none)"), location=where)
    # the trajectories hold at least one element per output port and step: refuse early
    LIMITS.check_elements(steps * sum(len(n.output_ports) for n in prog.nodes),
                          f"the trajectories of {steps:,} steps", where)
    keys = _Schedule(prog, steps)
    start, period = _repeat(keys, where)
    builder = _Builder(prog, pnames, inames, method, where)
    for _ in range(_MAX_PEELS + 1):
        g, unstable = builder.build(keys, start, period)
        if unstable is None:
            return g
        start += 1
        if start + 2 * period > MAX_UNROLLED or start >= steps:
            break
    raise ConversionError(f"the value {unstable[1]}.{unstable[2]} ({unstable[0]}) changes type between "
                          f"evaluations ({builder.why}), so it cannot be carried by one loop",
                          location=where, hint="torchmdf.simulate runs it step by step")


def _names(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise ConversionError(f"{what}= takes a list of names (or a dict), not the string {names!r}")
    out = list(names)
    if any(not isinstance(n, str) for n in out):
        raise ConversionError(f"{what}= takes names (strings), got {out!r}"[:300])
    return list(dict.fromkeys(out))


class _Schedule:
    """What each of ``steps`` evaluations runs, as keys ``(first, node runs, nodes that ran
    before)``: the distinct keys and one small integer per evaluation (none at all when no
    condition reads counters that survive an evaluation: every later evaluation is then the
    second)."""

    def __init__(self, prog: Any, steps: int):
        from array import array

        from torchmdf.mdf.scheduler import flatten, schedules

        sch = prog.scheduler()
        self.steps = steps
        self.settled = not sch.history and not sch.justran
        self.distinct: list[Key] = []
        self.codes = array("i")
        index: dict[Key, int] = {}
        ran: frozenset[str] = frozenset()
        for k, sched in enumerate(schedules(sch, min(steps, 2) if self.settled else steps)):
            execs = tuple(flatten(sched))
            key = (k == 0, execs, ran)
            ran = ran | frozenset(execs)
            code = index.get(key)
            if code is None:
                code = index[key] = len(self.distinct)
                self.distinct.append(key)
            self.codes.append(code)

    def code(self, i: int) -> int:
        return self.codes[min(i, 1)] if self.settled else self.codes[i]

    def keys(self, start: int, stop: int) -> list[Key]:
        return [self.distinct[self.code(i)] for i in range(start, stop)]


def _repeat(sched: _Schedule, where: str) -> tuple[int, int]:
    """The shortest prologue and period after which the evaluations repeat: ``(start, p)``
    with the same evaluation at ``i`` and ``i + p`` for every ``i >= start``; ``(steps, 0)``:
    no loop (a single evaluation)."""
    n = sched.steps
    if n < 2:
        return n, 0
    if sched.settled:
        return 1, 1
    codes = sched.codes
    best: tuple[int, int] | None = None
    for p in range(1, min(MAX_PERIOD, n - 1) + 1):
        start = 0
        for i in range(n - p - 1, -1, -1):
            if codes[i] != codes[i + p]:
                start = i + 1
                break
        if (n - start) // p < 1:
            continue
        if best is None or start + p < best[0] + best[1]:
            best = (start, p)
    if best is None:
        return n, 0
    start, p = best
    if start + 2 * p > MAX_UNROLLED:
        raise ConversionError(f"the schedule does not settle into one repeated evaluation: with periods of at most "
                              f"{MAX_PERIOD} evaluations it repeats only from evaluation {start} (counted from 0), "
                              f"and at most {MAX_UNROLLED} evaluations are unrolled outside the loop", location=where,
                              hint="torchmdf.simulate runs any counter schedule step by step")
    return best


class _Builder:
    """Lowers each distinct evaluation once (a stateless graph) and splices copies of them
    into the simulation graph."""

    def __init__(self, prog: Any, pnames: list[str], inames: list[str], method: str, where: str):
        self.prog, self.pnames, self.inames, self.method, self.where = prog, pnames, inames, method, where
        self.pure: dict[Key, tuple[Graph, list[Key]]] = {}
        self.port_keys = [("port", n.id, p.id) for n in prog.nodes for p in n.output_ports]
        self.why = ""

    # -- one evaluation -----------------------------------------------------------------------
    def lowered(self, key: Key) -> tuple[Graph, list[Key]]:
        """A fresh copy of evaluation ``key`` as a stateless graph and the state keys of its
        outputs."""
        got = self.pure.get(key)
        if got is None:
            from torchmdf.passes import run_passes
            from torchmdf.simulation import stateless

            first, execs, ran = key
            seg = self.prog.segment(list(execs), first=first, dt=None if first else 1.0, ran_before=ran,
                                    program_inputs=True)
            out_keys = list(seg.values)
            pure, _ = stateless(seg.g, [seg.values[k] for k in out_keys], list(seg.states))
            for v in list(pure.inputs):  # free ports not chosen as inputs: their defaults, folded
                port = v.meta.get(MDF_PORT)
                if port is not None and port not in self.inames:
                    v.replace_all_uses_with(pure.add_constant(v.meta[DEFAULT], name=v.name))
                    pure.inputs.remove(v)
            pure, _ = run_passes(pure, [("parameters_to_inputs", {"names": self.pnames}),
                                        ("integrate", {"method": self.method}), "fold_constants",
                                        "eliminate_dead_code"])
            got = self.pure[key] = (pure, out_keys)
        return got[0].clone(), list(got[1])

    def reads(self, key: Key) -> list[Key]:
        from torchmdf.simulation import _STATE_KEY

        pure, _ = self.pure[key] if key in self.pure else self.lowered(key)
        return [v.meta[_STATE_KEY] for v in pure.inputs if _STATE_KEY in v.meta]

    def writes(self, key: Key) -> list[Key]:
        if key not in self.pure:
            self.lowered(key)
        return list(self.pure[key][1])

    def splice(self, dst: Graph, key: Key, env: dict[Key, Value], outer: dict[tuple, Value]) -> None:
        """Copy evaluation ``key`` into ``dst``: its state inputs read ``env``, ``dt``, params and
        ports read ``outer``; ``env`` gets the values it leaves."""
        from torchmdf.ir._regions import attach_region, inline_region
        from torchmdf.simulation import _STATE_KEY

        pure, out_keys = self.lowered(key)
        args = []
        for v in pure.inputs:
            if _STATE_KEY in v.meta:
                k = v.meta[_STATE_KEY]
                if k not in env:
                    raise ConversionError(f"evaluation reads {k[1]}.{k[2]} before any evaluation set it",
                                          location=self.where)
                args.append(env[k])
            elif MDF_PARAM in v.meta:
                args.append(outer[("param", v.meta[MDF_PARAM])])
            elif v.meta.get(TIME_STEP):
                args.append(outer[("dt",)])
            else:
                args.append(outer[("port", v.meta[MDF_PORT])])
        holder = dst.create_node("torchmdf::Splice", [], num_outputs=len(pure.outputs), name="splice")
        attach_region(holder, pure)
        for k, v in zip(out_keys, inline_region(holder, 0, args)):
            env[k] = v

    # -- the whole run ------------------------------------------------------------------------
    def build(self, keys: _Schedule, start: int, period: int) -> tuple[Graph, tuple | None]:
        """The graph; and None, or the first carried key whose type the loop changes."""
        from torchmdf.passes import run_passes
        from torchmdf.passes.infer_shapes import infer_graph

        steps = keys.steps
        g = Graph(self.prog.mg.id)
        g.metadata["mdf_graph"] = self.prog.mg.id
        g.metadata["simulation_steps"] = steps
        outer: dict[tuple, Value] = {}
        dt = g.add_input("dt", TensorType(torch.float64, ()))
        dt.meta[TIME_STEP] = True
        outer[("dt",)] = dt
        self._add_inputs(g, outer)
        env: dict[Key, Value] = {}
        # per port: pieces (value or None, how many steps, is it a scan)
        pieces: dict[Key, list[tuple[Value | None, int, bool]]] = {k: [] for k in self.port_keys}

        def record_one() -> None:
            for k in self.port_keys:
                pieces[k].append((env.get(k), 1, False))

        loops = (steps - start) // period if period else 0
        head = start if loops else steps
        for key in keys.keys(0, head):
            self.splice(g, key, env, outer)
            record_one()
        loop = None
        carried: list[Key] = []
        if loops:
            body_keys = keys.keys(start, start + period)
            tail = keys.keys(start + loops * period, steps)
            loop, carried = self._loop(g, body_keys, tail, loops, env, outer, pieces)
            for key in tail:
                self.splice(g, key, env, outer)
                record_one()
        # type the graph to check the carried values and build the trajectories
        g.outputs = list(dict.fromkeys(x for ps in pieces.values() for v, _, _ in ps if v is not None
                                       for x in (v if isinstance(v, list) else [v])))
        infer_graph(g)
        if loop is not None:
            body = loop.regions[0]
            for j, k in enumerate(carried):
                t_in, t_out = loop.inputs[2 + j].type, body.outputs[1 + j].type
                if t_in != t_out:
                    self.why = f"{t_in} before the loop, {t_out} after an evaluation"
                    return g, k
        self._check_size(pieces, steps)
        outs, names = [], []
        for k in self.port_keys:
            traj = self._trajectory(g, k, pieces[k], steps)
            if traj is not None:
                if traj in outs:  # two ports with one value: ONNX wants distinct outputs
                    traj = g.create_node("onnx::Identity", [traj]).output
                outs.append(traj)
                names.append(f"{k[1]}.{k[2]}")
        g.outputs = outs
        g.output_names = names
        g, _ = run_passes(g, ["eliminate_dead_code", "infer_shapes"])
        g.verify()
        return g, None

    def _check_size(self, pieces: dict, steps: int) -> None:
        """The trajectories hold ``steps`` copies of every output port: refuse a graph whose
        trajectories would exceed ``LIMITS.max_elements`` (as ``simulate`` does)."""
        per_step = 0
        for ps in pieces.values():
            v, _, scan = next(((v, c, s) for v, c, s in ps if v is not None), (None, 0, False))
            t = None if v is None else (v[0] if isinstance(v, list) else v).type
            if t is not None and t.is_static and t.shape is not None:
                dims = t.shape[1:] if scan else t.shape
                per_step += int(torch.Size(dims).numel())
        LIMITS.check_elements(per_step * steps, f"the trajectories of {steps:,} steps", self.where)

    def _add_inputs(self, g: Graph, outer: dict[tuple, Value]) -> None:
        from torchmdf.mdf.attributes import as_tensor, port_default

        defaults = {f"{n.id}.{p.id}": p.value for n in self.prog.nodes for p in n.parameters}
        for name in self.pnames:
            v = g.add_input(name.replace(".", "_"), TensorType.of(as_tensor(defaults[name])))
            v.meta[MDF_PARAM] = name
            outer[("param", name)] = v
        free = {f"{n.id}.{p.id}": p for n, p in self.prog.free_ports}
        for name in self.inames:
            d = port_default(free[name])
            v = g.add_input(name.replace(".", "_"), TensorType.of(d))
            v.meta[MDF_PORT] = name
            v.meta[DEFAULT] = d
            outer[("port", name)] = v

    def _loop(self, g: Graph, body_keys: list[Key], tail: list[Key], loops: int, env: dict[Key, Value],
              outer: dict[tuple, Value], pieces: dict) -> tuple[Node, list[Key]]:
        """The ``onnx::Loop`` of ``loops`` iterations of ``body_keys`` (its scans recorded in
        ``pieces``, its final carried values put in ``env``)."""
        written: set[Key] = set()
        for key in body_keys:
            written.update(self.writes(key))
        # ports recorded after an evaluation that did not set them: the epilogue's, and within a
        # period of several evaluations
        needed = set(self.port_keys) if tail or len(body_keys) > 1 else set()
        for key in [*body_keys, *tail]:
            needed.update(self.reads(key))
        carried = [k for k in env if k in written and k in needed]
        late = sorted(k for k in written & needed if k not in env and
                      any(k in self.reads(key) for key in [*body_keys, *tail]))
        if late:
            k = late[0]
            raise ConversionError(f"{k[1]}.{k[2]} is first set inside the repeated evaluation, which also reads it",
                                  location=self.where, hint="torchmdf.simulate runs it step by step")
        body = g.new_region("body")
        body.add_input("iteration_num", _I64)
        keep = body.add_input("cond_in", _BOOL)
        benv = dict(env)
        for k in carried:
            benv[k] = body.add_input(f"{k[1]}_{k[2]}", env[k].type)
        steps_seen: list[dict[Key, Value]] = []
        for key in body_keys:
            self.splice(body, key, benv, outer)
            steps_seen.append({k: benv[k] for k in self.port_keys if k in benv})
        scanned = [k for k in self.port_keys if all(k in s for s in steps_seen)]
        partly = [k for k in self.port_keys if k not in scanned and any(k in s for s in steps_seen)]
        if partly:
            k = partly[0]
            raise ConversionError(f"{k[1]}.{k[2]} is first set inside the repeated evaluations",
                                  location=self.where, hint="torchmdf.simulate runs it step by step")
        outs = [keep, *[benv[k] for k in carried], *[s[k] for s in steps_seen for k in scanned]]
        body.outputs = _own_outputs(body, outs)
        m = g.add_constant(torch.tensor(loops, dtype=torch.int64), name="trip_count")
        loop = g.create_node("onnx::Loop", [m, None, *[env[k] for k in carried]],
                             num_outputs=len(outs) - 1, regions=[body], name="time_loop")
        for j, k in enumerate(carried):
            env[k] = loop.outputs[j]
        period = len(body_keys)
        base = len(carried)
        for i, k in enumerate(scanned):
            per = [loop.outputs[base + j * len(scanned) + i] for j in range(period)]
            pieces[k].append((per[0] if period == 1 else per, loops * period, True))
        for k in self.port_keys:
            if k not in scanned:
                pieces[k].append((env.get(k), loops * period, False))
        return loop, carried

    def _trajectory(self, g: Graph, k: Key, pieces: list[tuple[Any, int, bool]], steps: int) -> Value | None:
        """One port's ``[steps, ...]`` from its pieces (a value for one step or held for
        ``count``, a scan, the scans of a period's evaluations, or None: not run yet, NaN as
        ``simulate``'s ``_stack`` makes it), in one dtype."""
        known = [v for v, _, _ in pieces if v is not None]
        if not known:
            return None
        where = f"{self.where} > node '{k[1]}' > output port '{k[2]}'"

        def type_of(v: Any, scan: bool) -> tuple[tuple | None, torch.dtype]:
            """The shape of one step (None where not known statically) and the dtype."""
            t = (v[0] if isinstance(v, list) else v).type
            if t.dtype is None:
                raise ConversionError(f"the port's dtype ({t}) is not known statically", location=where)
            if t.shape is None or not t.is_static:
                return None, t.dtype
            return (tuple(t.shape[1:]) if scan else tuple(t.shape)), t.dtype

        def static(why: str) -> tuple:
            if shape is None:
                raise ConversionError(f"the port's shape is not known statically, and {why} needs it",
                                      location=where, hint="torchmdf.simulate runs it step by step")
            return shape

        shape, dtype = type_of(*next((v, s) for v, _, s in pieces if v is not None))
        if any(v is None for v, _, _ in pieces) and not dtype.is_floating_point:
            dtype = torch.float64
        for v, _, s in pieces:
            if v is not None:
                sh, dt = type_of(v, s)
                if sh is not None and shape is not None and sh != shape:
                    raise ConversionError(f"the port's shape changes between steps ({shape} and {sh}): its "
                                          "trajectory is not one tensor", location=where,
                                          hint="torchmdf.simulate returns it as a list of tensors")
                shape = shape if shape is not None else sh
                dtype = torch.promote_types(dtype, dt)
        from torchmdf.ops.onnx_ops import torch_to_onnx_dtype

        blocks: list[Value] = []
        for v, count, scan in pieces:
            if v is None:
                nan = torch.full((count, *static("NaN before its node first ran")), float("nan"), dtype=dtype)
                blocks.append(g.add_constant(nan, name="not_run"))
                continue
            vdtype = type_of(v, scan)[1]
            if isinstance(v, list):
                v = _interleave(g, v, count, static("a schedule with a period of several evaluations"))
            elif not scan:
                axes = g.add_constant(torch.tensor([0], dtype=torch.int64), name="axes")
                v = g.create_node("onnx::Unsqueeze", [v, axes], name="step").output
                if count > 1:  # a value the loop leaves unchanged, held
                    rank = len(static("a value held through the loop"))
                    reps = g.add_constant(torch.tensor([count] + [1] * rank, dtype=torch.int64), name="reps")
                    v = g.create_node("onnx::Tile", [v, reps], name="held").output
            if vdtype != dtype:
                v = g.create_node("onnx::Cast", [v], {"to": torch_to_onnx_dtype(dtype)}, name="as").output
            blocks.append(v)
        if len(blocks) == 1:
            return blocks[0]
        return g.create_node("onnx::Concat", blocks, {"axis": 0}, name=f"{k[1]}_{k[2]}").output


def _own_outputs(body: Graph, outs: list[Value]) -> list[Value]:
    """A region's outputs, each produced by one of its own nodes once (an input, an outer value
    or a repeated value goes through ``Identity``: ONNX and FX both want distinct outputs)."""
    made = {o for n in body for o in n.outputs}
    seen: set[Value] = set()
    fixed = []
    for v in outs:
        if v not in made or v in seen:
            v = body.create_node("onnx::Identity", [v]).output
        seen.add(v)
        fixed.append(v)
    return fixed


def _interleave(g: Graph, per: list[Value], steps: int, shape: tuple) -> Value:
    """Scans ``[loops, ...]`` of the ``p`` evaluations of one iteration -> ``[steps, ...]``
    (``steps = loops * p``) in step order."""
    axes = g.add_constant(torch.tensor([1], dtype=torch.int64), name="axes")
    parts = [g.create_node("onnx::Unsqueeze", [v, axes]).output for v in per]
    both = g.create_node("onnx::Concat", parts, {"axis": 1}).output
    target = g.add_constant(torch.tensor([steps, *shape], dtype=torch.int64), name="shape")
    return g.create_node("onnx::Reshape", [both, target]).output


__all__ = ["simulation_graph", "MAX_PERIOD", "MAX_UNROLLED"]
