"""Simulation of MDF models as compiled torch code: modeci_mdf's ``evaluate()`` once, then
``evaluate(time_increment=dt)`` for each further step, with the state carried between steps.

**The program.**  The scheduler (:mod:`torchmdf.mdf.scheduler`, through
:mod:`torchmdf.frontends.mdf`) says which nodes run in each evaluation.  Each distinct
evaluation (first or later, the node runs, which nodes ran before) is lowered once in the
frontend's program form: the time step ``dt`` is an input, literal parameter values are
constants tagged with their ``"node.parameter"`` name and time derivatives are
``torchmdf::Integrate`` nodes.  Then, before folding, ``parameters_to_inputs`` makes the
parameters given in ``params=`` inputs (they stay named, and are never folded), the
``integrate`` pass lowers the integrate nodes (``method="euler"``, modeci_mdf's forward Euler,
or ``"rk4"``), and the graph is made stateless (:func:`stateless`: state currents are inputs,
the values the evaluation leaves are outputs) and compiled to a ``torch.fx.GraphModule``.  A run
is then a loop of compiled calls and nothing else: no lowering, no scheduling, no per-node
Python.  ``compile=True`` also compiles the steady state (every later evaluation alike) as
chunks of ``chunk`` steps, unrolled, with ``torch.compile``: one call per chunk (a compile
of tens of seconds on a small CPU, paid back only on long runs).  The same evaluations as
one IR graph whose time loop is an ``onnx::Loop`` region (to inspect, write to ONNX or MDF,
or run as one call): :func:`torchmdf.simulation_program.simulation_graph`.

**Batches, gradients, devices.**  A value in ``params``/``inputs`` whose leading dimension is
one more than the parameter's or port's own is a batch: the whole run is ``torch.vmap``-ed over
it, so every trajectory is ``[steps, B, ...]`` and column ``i`` is the run with the ``i``-th
values.  Nothing runs under ``no_grad``: gradients flow to every tensor given that requires
grad.  ``device=`` places inputs, parameters and the compiled modules.

**Conditions.**  Conditions that read only counters (every supported type but Threshold)
never look at values: the scheduler runs on counters before the values exist, so each
evaluation's node runs are fixed when it is lowered, and the run is compiled calls only.  A
``Threshold`` condition makes the schedule depend on values: it is compiled as counters and
masks (:func:`_run_masked`): a :class:`~torchmdf.mdf.scheduler.MaskedScheduler` keeps every
counter as a tensor ``[B]`` and every condition outcome as a mask, so each batch element follows
its own schedule in one lockstep run; each node run is computed for the whole batch (vmapped)
and kept, ``torch.where(mask, new, old)``, only where its element's schedule runs it.  The
Python loop over passes stays (it ends when every element's evaluation has terminated), and
gradients flow through the kept values.  A single run (``_MASKED_MIN_BATCH``) takes the
scheduler in Python instead: the same schedule, at a fraction of the masked program's fixed
cost per step, which a batch of tens of elements pays back.  As with any ``torch.where``, a
node run is also computed for the elements that do not run it (on values they hold, zeros
where they never set one): a result there that is infinite with an infinite derivative
(``1 / 0``) makes that gradient NaN, though the value kept is right.  ``_REFERENCE_SCHEDULER`` runs the former path
instead (the scheduler in Python between compiled node runs, one batch element at a time), the
reference the masked program is tested against; a value that changes shape between runs, or
an absolute-time condition beside a Threshold, falls back to it.  Absolute-time conditions
(TimeInterval, TimeTermination) keep graph_scheduler's clock in the scheduler (exact, in
fractions of a second): they read counters only, so alone they are compiled like the others.

Output ports of a node that has not run yet are NaN in the trajectory (modeci_mdf holds None).
A port whose shape changes between steps has a list of per-step tensors as its trajectory
(``traj[key][i]`` is step ``i`` either way).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from torchmdf.errors import ConversionError, TorchMDFError
from torchmdf.ir import Graph, Value
from torchmdf.ir.meta_keys import MDF_PARAM, MDF_PORT, TIME_STEP
from torchmdf.limits import LIMITS
from torchmdf.mdf.attributes import as_tensor, port_default
from torchmdf.mdf.conditions import threshold_getter
from torchmdf.mdf.scheduler import flatten, schedules

#: Run value-dependent conditions with the scheduler in Python between compiled node runs (one
#: batch element at a time) instead of as masks: the reference the masked program is tested
#: against.
_REFERENCE_SCHEDULER = False

#: Batches of at least this many elements run value-dependent conditions as masks; a smaller
#: run takes the Python scheduler (the same schedule; per step, it costs a small fraction of
#: the masked program's fixed tensor work, which pays off from batches of tens of elements).
_MASKED_MIN_BATCH = 2

_STATE_KEY = "simulation_state_key"  # meta of a stateless graph's state inputs: the key they read


def stateless(g: Graph, outputs: list[Value], keys: list[Any] | None = None) -> tuple[Graph, list[Any]]:
    """A copy of stateful ``g`` as a pure function: inputs are ``g``'s inputs then one per
    state variable (its current value, tagged with its entry of ``keys``), outputs are
    ``outputs`` (values of ``g``).  Returns the copy and the state variables' names in input
    order, so ``emit_fx`` (which refuses state) can compile it."""
    saved = g.outputs
    g.outputs = list(outputs)
    try:
        c = g.clone()
    finally:
        g.outputs = saved
    names = []
    for i, sv in enumerate(c.state):
        inp = c.add_input(f"state_{sv.name}", sv.current.type)
        inp.meta[_STATE_KEY] = keys[i] if keys is not None else sv.name
        sv.current.replace_all_uses_with(inp)
        names.append(sv.name)
    c.state = []
    c.output_names = None
    return c, names


class _Compiled:
    """One lowered evaluation (or node run) compiled to FX: ``args`` says where each argument
    comes from (``("port", "node.port")``, ``("param", name)``, ``("dt",)``, ``("state", key)``,
    ``("const", tensor)``), ``out_keys`` the state keys of what it returns, ``fixed`` the
    values it leaves that are constants (set without being computed)."""

    __slots__ = ("fn", "gm", "args", "out_keys", "fixed")

    def __init__(self, seg: Any, params: list[str], method: str, device: Any):
        from torchmdf.backends.fx import emit_fx
        from torchmdf.passes import run_passes

        out_keys = list(seg.values)
        pure, _ = stateless(seg.g, [seg.values[k] for k in out_keys], list(seg.states))
        pure, _ = run_passes(pure, [("parameters_to_inputs", {"names": params}), ("integrate", {"method": method}),
                                    "fold_constants", "eliminate_dead_code"])
        # values that are constants after folding (unchanged parameters): set once, not returned
        self.fixed = [(k, v.tensor if device is None else v.tensor.to(device))
                      for k, v in zip(out_keys, pure.outputs) if v.is_constant]
        if self.fixed and len(self.fixed) < len(out_keys):
            keep = [(k, v) for k, v in zip(out_keys, pure.outputs) if not v.is_constant]
            out_keys = [k for k, _ in keep]
            pure.outputs = [v for _, v in keep]
        else:
            self.fixed = []
        self.args: list[tuple] = []
        for v in pure.inputs:
            if _STATE_KEY in v.meta:
                self.args.append(("state", v.meta[_STATE_KEY]))
            elif MDF_PARAM in v.meta:
                self.args.append(("param", v.meta[MDF_PARAM]))
            elif v.meta.get(TIME_STEP):
                self.args.append(("dt",))
            else:
                self.args.append(("port", v.meta[MDF_PORT]))
        gm = emit_fx(pure, output_dict=False)
        if device is not None:
            gm = gm.to(device)
        self._constants_as_arguments(gm)
        fwd = gm.forward  # the generated code itself: no nn.Module hook machinery per step
        self.fn = (lambda *a: (fwd(*a),)) if len(out_keys) == 1 else fwd
        self.gm = gm
        self.out_keys = out_keys

    def _constants_as_arguments(self, gm: torch.fx.GraphModule) -> None:
        """Each tensor the module fetches from its attributes becomes an argument given once
        per call (``("const", tensor)``): a module attribute lookup per use and step costs
        as much as the arithmetic of a small model."""
        graph = gm.graph
        for node in [n for n in graph.nodes if n.op == "get_attr"]:
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if not isinstance(value, torch.Tensor):
                continue
            first = next(n for n in graph.nodes if n.op != "placeholder")
            with graph.inserting_before(first):
                ph = graph.placeholder(f"simulation_constant_{len(self.args)}")
            node.replace_all_uses_with(ph)
            graph.erase_node(node)
            self.args.append(("const", value))
        gm.recompile()

    def arguments(self, run: _Run, state: dict) -> list[Any]:
        vals = []
        for a in self.args:
            kind = a[0]
            vals.append(state[a[1]] if kind == "state" else run.feed[a[1]] if kind == "port"
                        else run.params[a[1]] if kind == "param" else a[1] if kind == "const" else run.dt)
        return vals

    def __call__(self, run: _Run, state: dict) -> None:
        """Run it once and keep the values it leaves in ``state``."""
        for k, v in zip(self.out_keys, self.invoke(self.fn, self.arguments(run, state))):
            state[k] = v
        for k, v in self.fixed:
            state[k] = v

    def invoke(self, fn: Callable, vals: list[Any]) -> Any:
        """``fn(*vals)`` (the compiled code, or it vmapped), a failure located at its node."""
        try:
            return fn(*vals)
        except TorchMDFError:
            raise
        except Exception as e:  # noqa: BLE001 - name the MDF node and parameter that failed
            from torchmdf.backends.fx import locate_runtime_error

            located = locate_runtime_error(self.gm, e)
            if located is None:
                raise ConversionError(f"the simulation failed: {type(e).__name__}: {str(e)[:300]}") from e
            raise located from e


class _Progress:
    """Counts completed steps for ``simulate(progress=...)``; a no-op without a callback."""

    __slots__ = ("fn", "done", "total")

    def __init__(self, fn: Callable[[int, int], Any] | None, total: int):
        self.fn, self.done, self.total = fn, 0, total

    def restart(self, total: int) -> None:
        self.done, self.total = 0, total

    def __call__(self, n: int) -> None:
        if self.fn is not None:
            self.done = min(self.done + n, self.total)
            self.fn(self.done, self.total)


class _Run:
    """The values one run reads: free input ports by ``"node.port"``, parameters by name, dt."""

    __slots__ = ("feed", "params", "dt")

    def __init__(self, feed: dict[str, Any], params: dict[str, Any], dt: Any):
        self.feed, self.params, self.dt = feed, params, dt


def check_steps_and_method(steps: Any, method: str) -> None:
    """``steps`` and ``method`` as :func:`simulate` and ``simulation_graph`` take them."""
    from torchmdf.passes.integrate import METHODS

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConversionError(f"steps must be an integer of at least 1, got {steps!r}")
    if method not in METHODS:
        raise ConversionError(f"unknown integration method {method!r}", hint="one of " + ", ".join(METHODS))


def unknown_parameter(name: str, settable: list[str], where: str) -> ConversionError:
    """The error for a ``params=`` name that is not a parameter with a literal value."""
    return ConversionError(f"unknown parameter {name!r} for params=", location=where,
                           hint="the parameters with a literal value: " + (", ".join(settable[:200]) or "(none)"))


class _Bindings:
    """``inputs``/``params``/``device`` of a simulate call, checked against the program:
    names (located errors listing the valid ones), batch (a leading dimension one more than
    the port's or parameter's own; every batch the same size) and dtype (a floating value
    takes the file's floating dtype)."""

    def __init__(self, prog: Any, inputs: dict[str, Any] | None, params: dict[str, Any] | None, device: Any):
        from torchmdf.frontends.mdf import settable_parameters

        self.device = torch.device(device) if device is not None else None
        self.batch: int | None = None
        self.batched: dict[tuple[str, str], bool] = {}
        self.feed: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        where = prog.loc(prog.base())
        names = [p.id for _, p in prog.free_ports]
        by_name: dict[str, str] = {}
        for n, p in prog.free_ports:
            key = f"{n.id}.{p.id}"
            by_name[key] = key
            by_name[p.id if names.count(p.id) == 1 else f"{n.id}_{p.id}"] = key
            self.feed[key] = self._to_device(port_default(p))
        for name, value in (inputs or {}).items():
            key = by_name.get(name)
            if key is None:
                known = ", ".join(sorted({f"{n.id}.{p.id}" for n, p in prog.free_ports})) or "(none)"
                raise ConversionError(f"unknown input(s) {name}; the graph's inputs are {known}", location=where)
            self.feed[key] = self._bind(("port", key), value, self.feed[key], where)
        settable = settable_parameters(prog)
        defaults = {}
        for n in prog.nodes:
            for p in n.parameters:
                defaults[f"{n.id}.{p.id}"] = p.value
        for name, value in (params or {}).items():
            if name not in settable:
                raise unknown_parameter(name, settable, where)
            self.params[name] = self._bind(("param", name), value, self._to_device(as_tensor(defaults[name])), where)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device) if self.device is not None else t

    def _bind(self, key: tuple[str, str], value: Any, base: torch.Tensor, where: str) -> torch.Tensor:
        t = value if isinstance(value, torch.Tensor) else as_tensor(value)
        if t.is_floating_point() and base.is_floating_point() and t.dtype != base.dtype:
            t = t.to(base.dtype)  # differentiable: gradients reach the caller's tensor
        t = self._to_device(t)
        if t.dim() == base.dim() + 1:
            b = t.shape[0]
            if self.batch is not None and b != self.batch:
                first = next(k for k, v in self.batched.items() if v)
                raise ConversionError(f"{key[1]} has a batch of {b} values but {first[1]} has {self.batch}; "
                                      "every batched input and parameter needs the same batch size",
                                      location=where)
            self.batch = b
            self.batched[key] = True
        elif t.dim() != base.dim() and base.dim() > 0:
            raise ConversionError(f"{key[1]}: a value of shape {tuple(t.shape)} for one of shape "
                                  f"{tuple(base.shape)} (or a batch of them, [B, ...])", location=where)
        else:
            self.batched[key] = False
        return t


def simulate(model: Any, steps: int = 1, dt: float = 0.01, *, graph: str | None = None,
             inputs: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
             device: Any = None, method: str = "euler", compile: bool = False,
             chunk: int = 64, progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
    """``{"node.port": tensor[steps, ...]}`` for every output port of the graph
    (``[steps, B, ...]`` with a batch in ``params``/``inputs``); a port whose shape changes
    between steps gets a list of ``steps`` tensors instead.

    ``progress(done, total)`` is called as steps complete (after each step, or each compiled
    chunk of ``chunk`` steps), ``done`` growing to ``total``: the command line's progress bar."""
    from torchmdf.frontends.mdf import program

    check_steps_and_method(steps, method)
    if not isinstance(chunk, int) or chunk < 1:
        raise ConversionError(f"chunk must be an integer of at least 1, got {chunk!r}")
    if progress is not None and not callable(progress):
        raise ConversionError(f"progress must be a callable progress(done, total), got {type(progress).__name__}")
    prog = program(model if not isinstance(model, os.PathLike) else os.fspath(model), graph)
    b = _Bindings(prog, inputs, params, device)
    dynamic = prog.dynamic_condition is not None
    as_masks = dynamic and not _REFERENCE_SCHEDULER and (b.batch or 1) >= _MASKED_MIN_BATCH
    # the reference scheduler runs a batch one element at a time: each element's steps count
    tick = _Progress(progress, steps * (b.batch if dynamic and b.batch is not None and not as_masks else 1))
    dtv = dt if isinstance(dt, torch.Tensor) else torch.tensor(float(dt), dtype=torch.float64)
    dtv = b._to_device(dtv.to(torch.float64))
    port_keys = [("port", n.id, p.id) for n in prog.nodes for p in n.output_ports]
    pnames = sorted(b.params)
    if dynamic:
        cache: dict[tuple, _Compiled] = {}

        def run(feed: dict, pv: dict) -> tuple[dict, dict]:
            return _run_dynamic(prog, steps, _Run(feed, pv, dtv), port_keys, cache, pnames, method, b.device,
                                tick)
    else:
        plan = _Plan(prog, steps, port_keys, pnames, method, b.device, compile, chunk, tick)

        def run(feed: dict, pv: dict) -> tuple[dict, dict]:
            return plan.run(_Run(feed, pv, dtv))
    masked = None
    if as_masks:
        try:
            masked = _run_masked(prog, steps, b, dtv, port_keys, {}, pnames, method, tick)
        except _NeedsReference:
            masked = None
            tick.restart(steps * b.batch)  # the reference runs one element at a time
    if masked is not None:
        stacked, lists = masked
    elif b.batch is None:
        stacked, lists = run(b.feed, b.params)
    elif dynamic:  # the reference: one batch element at a time, the scheduler in Python
        cols = [run({k: v[i] if b.batched.get(("port", k)) else v for k, v in b.feed.items()},
                    {k: v[i] if b.batched.get(("param", k)) else v for k, v in b.params.items()})
                for i in range(b.batch)]
        stacked = {k: torch.stack([c[0][k] for c in cols], dim=1) for k in cols[0][0]}
        lists = {k: [torch.stack([c[1][k][s] for c in cols]) for s in range(steps)] for k in cols[0][1]}
    else:
        fd = {k: 0 if b.batched.get(("port", k)) else None for k in b.feed}
        pd = {k: 0 if b.batched.get(("param", k)) else None for k in b.params}
        stacked, lists = torch.vmap(run, in_dims=(fd, pd), out_dims=(1, 0))(b.feed, b.params)
    out: dict[str, Any] = {}
    for k in port_keys:
        name = f"{k[1]}.{k[2]}"
        if name in stacked:
            out[name] = stacked[name]
        elif name in lists:
            out[name] = list(lists[name]) if not isinstance(lists[name], list) else lists[name]
    return out


class _Plan:
    """A static schedule compiled: each distinct evaluation (first or later, the node runs,
    which nodes ran before) is lowered and compiled (a :class:`_Compiled`) the first time a run
    reaches it, so memory does not grow with ``steps`` beyond the trajectories themselves and
    a run whose trajectories would be too large is refused after its first step."""

    def __init__(self, prog: Any, steps: int, port_keys: list, pnames: list[str], method: str, device: Any,
                 compile: bool, chunk: int, tick: _Progress):
        self.prog, self.steps, self.port_keys = prog, steps, port_keys
        self.tick = tick
        self.pnames, self.method, self.device = pnames, method, device
        self.compiled: dict[tuple, _Compiled] = {}
        self.compile, self.chunk = compile, chunk
        self._chunk_fn: Callable | None = None

    def _get(self, k: int, execs: tuple, ran: frozenset) -> _Compiled:
        key = (k == 0, execs, ran)
        c = self.compiled.get(key)
        if c is None:
            seg = self.prog.segment(list(execs), first=k == 0, dt=None if k == 0 else 1.0, ran_before=ran,
                                    program_inputs=True)
            c = self.compiled[key] = _Compiled(seg, self.pnames, self.method, self.device)
        return c

    def run(self, r: _Run) -> tuple[dict, dict]:
        sch = self.prog.scheduler()
        # no condition reads counters that survive a run: every later evaluation is the second
        steady = self.compile and not sch.history and not sch.justran and self.steps - 2 >= 2 * self.chunk
        stop = 2 if steady else self.steps
        state: dict[tuple, Any] = {}
        traj: dict[tuple, list[Any]] = {k: [] for k in self.port_keys}
        items = list(traj.items())
        ran: frozenset[str] = frozenset()
        c = None
        for k, sched in enumerate(schedules(sch, stop)):
            execs = tuple(flatten(sched))
            c = self._get(k, execs, ran)
            ran = ran | frozenset(execs) if not ran.issuperset(execs) else ran
            c(r, state)
            for kk, lst in items:
                lst.append(state.get(kk))
            if k == 0:
                _check_trajectory_size(items, self.steps, self.prog)
            self.tick(1)
        blocks: dict[tuple, list[Any]] = {}
        if steady:
            blocks = self._run_chunks(c, r, state, self.steps - stop)
        return _collect(traj, blocks)

    def _run_chunks(self, c: _Compiled, r: _Run, state: dict, count: int) -> dict[tuple, list[Any]]:
        """``count`` steps of ``c``, ``chunk`` at a time through one compiled call each, the
        rest one step at a time.  Returns each port's trajectory as stacked blocks."""
        state_keys = [a[1] for a in c.args if a[0] == "state"]
        recorded = [k for k in self.port_keys if k in c.out_keys]
        fixed = [k for k in self.port_keys if k not in c.out_keys]
        # a chunk threads the state it computes; one that reads a value it does not compute
        # (a constant, another node's port) runs step by step
        chunked = all(k in c.out_keys for k in state_keys)
        if self._chunk_fn is None and chunked:
            self._chunk_fn = _chunk_function(c, state_keys, recorded, self.chunk)
        blocks: dict[tuple, list[Any]] = {k: [] for k in self.port_keys}
        done = 0
        while chunked and count - done >= self.chunk:
            ins = [state[k] for k in state_keys]
            outs, new_state = self._chunk_fn(r, ins)
            for k, v in zip(recorded, outs):
                blocks[k].append(v)
            state.update(zip(c.out_keys, new_state))
            for k in fixed:
                blocks[k].append([state.get(k)] * self.chunk)
            done += self.chunk
            self.tick(self.chunk)
        for _ in range(count - done):
            c(r, state)
            for k in self.port_keys:
                blocks[k].append([state.get(k)])
            self.tick(1)
        return blocks


#: Compiled chunks by their code and constants: simulate calls on the same model reuse them.
_CHUNK_CACHE: dict[tuple, Callable] = {}
_CHUNK_CACHE_SIZE = 8


def _chunk_function(c: _Compiled, state_keys: list, recorded: list, chunk: int) -> Callable:
    """``chunk`` steps of ``c`` as one FX graph (the step's graph copied ``chunk`` times, the
    state threaded through), compiled with ``torch.compile``: it takes the state ``c`` reads
    and returns the recorded ports stacked and the values the last step leaves."""
    gm = c.gm
    pos = {k: i for i, k in enumerate(c.out_keys)}
    rec = [pos[k] for k in recorded]
    carry = [pos[k] for k in state_keys]
    feed_pos = [(i, a) for i, a in enumerate(c.args) if a[0] != "state"]
    state_pos = [i for i, a in enumerate(c.args) if a[0] == "state"]
    places = [n for n in gm.graph.nodes if n.op == "placeholder"]
    g = torch.fx.Graph()
    fixed = [g.placeholder(f"fixed_{i}") for i, _ in feed_pos]
    state = [g.placeholder(f"state_{i}") for i in state_pos]
    per: list[list[Any]] = [[] for _ in rec]
    outs: tuple = ()
    for _ in range(chunk):
        vm: dict = {places[i]: p for (i, _a), p in zip(feed_pos, fixed)}
        vm.update({places[i]: p for i, p in zip(state_pos, state)})
        out = g.graph_copy(gm.graph, vm)
        outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        state = [outs[j] for j in carry]
        for lst, j in zip(per, rec):
            lst.append(outs[j])
    g.output((tuple(g.call_function(torch.stack, (lst,)) for lst in per), outs))
    chunk_gm = torch.fx.GraphModule(gm, g)
    key = (chunk_gm.code, tuple((k, v.dtype, tuple(v.shape), v.device, v.detach().cpu().numpy().tobytes())
                                for k, v in chunk_gm.state_dict().items()))
    compiled = _CHUNK_CACHE.get(key)
    if compiled is None:
        compiled = torch.compile(chunk_gm, dynamic=False)
        if len(_CHUNK_CACHE) >= _CHUNK_CACHE_SIZE:
            _CHUNK_CACHE.pop(next(iter(_CHUNK_CACHE)))
        _CHUNK_CACHE[key] = compiled

    box = [compiled]

    def call(r: _Run, state: list[Any]) -> tuple[list[Any], tuple]:
        vals = [r.feed[a[1]] if a[0] == "port" else r.params[a[1]] if a[0] == "param"
                else a[1] if a[0] == "const" else r.dt for _, a in feed_pos]
        try:
            return box[0](*vals, *state)
        except Exception as e:  # noqa: BLE001 - no working torch.compile here: the same chunk, eager
            if box[0] is chunk_gm:
                raise
            import warnings

            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); the chunks run "
                          "eagerly", RuntimeWarning, stacklevel=2)
            box[0] = _CHUNK_CACHE[key] = chunk_gm
            return chunk_gm(*vals, *state)
    return call


def _collect(traj: dict[tuple, list[Any]], blocks: dict[tuple, list[Any]]) -> tuple[dict, dict]:
    """Per-step values (and compiled blocks) -> ``{"node.port": tensor[steps, ...]}`` for ports
    of one shape, ``{"node.port": [tensor, ...]}`` for the others; ports never computed are left
    out."""
    stacked: dict[str, Any] = {}
    lists: dict[str, Any] = {}
    for k, vals in traj.items():
        extra = blocks.get(k, [])
        if not any(v is not None for v in vals) and not extra:
            continue
        if extra and all(isinstance(x, torch.Tensor) for x in extra) and \
                all(v is not None and torch.as_tensor(v).shape == extra[0].shape[1:] for v in vals):
            head = [torch.as_tensor(v).unsqueeze(0) for v in vals]
            dtype = extra[0].dtype
            stacked[f"{k[1]}.{k[2]}"] = torch.cat([h.to(dtype) for h in head] + list(extra))
            continue
        flat = list(vals)
        for x in extra:
            flat.extend(list(x))
        got = _stack(flat)
        (lists if isinstance(got, list) else stacked)[f"{k[1]}.{k[2]}"] = got
    return stacked, lists


def _check_trajectory_size(port_items: list, steps: int, prog: Any) -> None:
    """The trajectories will hold ``steps`` copies of every output port: refuse a run whose
    trajectories would exceed ``LIMITS.max_elements`` before it grows."""
    per_step = sum(torch.as_tensor(lst[0]).numel() for _, lst in port_items if lst and lst[0] is not None)
    LIMITS.check_elements(per_step * steps, f"the trajectories of {steps:,} steps",
                          prog.loc(prog.base()))


class _NeedsReference(Exception):
    """A value changes shape between runs: masks cannot merge it; the reference path runs."""


def _run_masked(prog: Any, steps: int, b: _Bindings, dt: Any, port_keys: list, cache: dict, pnames: list[str],
                method: str, tick: _Progress) -> tuple[dict, dict]:
    """Value-dependent conditions (Threshold) compiled as counters and masks: a
    :class:`MaskedScheduler` runs every batch element in lockstep, each node run is computed
    for the whole batch (vmapped) and kept, ``torch.where(mask, new, old)``, only where that
    element's schedule runs the node.  Returns trajectories ``[steps, B, ...]``."""
    from torchmdf.mdf.scheduler import MaskedScheduler

    batch = b.batch or 1
    r = _Run(b.feed, b.params, dt)
    sch = MaskedScheduler(prog.scheduler(), batch, b.device)
    if sch.absolute_mode:  # absolute time is one exact clock, not a mask per element
        raise _NeedsReference
    no = sch.no
    state: dict[tuple, Any] = {}
    has: dict[tuple, Any] = {}
    ran: dict[str, Any] = {}
    value_of = threshold_getter(prog, state, has)
    traj: dict[tuple, list[Any]] = {k: [] for k in port_keys}

    def batched(a: tuple) -> bool:
        return a[0] == "state" or (a[0] in ("port", "param") and bool(b.batched.get(a)))

    def keep(k: tuple, new: Any, sel: Any) -> None:
        old = state.get(k)
        if old is not None and old.shape != new.shape:
            raise _NeedsReference
        old = torch.zeros_like(new) if old is None else old  # an element never set holds zeros
        state[k] = torch.where(sel.view(-1, *[1] * (new.dim() - 1)), new, old)
        has[k] = has.get(k, no) | sel

    for step in range(steps):
        first = step == 0
        for cse in sch.run(value_of):
            for nid, m in cse:
                deps = sorted({nid} | prog.senders[nid])
                codes = sum(ran.get(d, no).long() << j for j, d in enumerate(deps))
                for code in torch.unique(codes[m]).tolist():
                    before = frozenset(d for j, d in enumerate(deps) if code >> j & 1)
                    sel = m & (codes == code)
                    key = (first, nid, before)
                    c = cache.get(key)
                    if c is None:
                        seg = prog.segment([nid], first=first, dt=None if first else 1.0, ran_before=before,
                                           program_inputs=True)
                        c = cache[key] = _Compiled(seg, pnames, method, b.device)
                    dims = tuple(0 if batched(a) else None for a in c.args)
                    vals = c.arguments(r, state)
                    if any(d == 0 for d in dims):
                        outs = c.invoke(torch.vmap(c.fn, in_dims=dims), vals)
                    else:
                        outs = [o.expand(batch, *o.shape) for o in c.invoke(c.fn, vals)]
                    for k, v in zip(c.out_keys, outs):
                        keep(k, v, sel)
                    for k, v in c.fixed:
                        keep(k, v.expand(batch, *v.shape), sel)
                ran[nid] = ran.get(nid, no) | m
        for k, lst in traj.items():
            lst.append((state.get(k), has.get(k)))
        if step == 0:
            _check_trajectory_size([(k, [v]) for k, (v, _) in ((k, lst[0]) for k, lst in traj.items())],
                                   steps, prog)
        tick(1)
    stacked: dict[str, Any] = {}
    for k, lst in traj.items():
        if all(v is None for v, _ in lst):
            continue
        known = next(v for v, _ in lst if v is not None)
        missing = any(v is None or not bool(h.all()) for v, h in lst)
        dtype = known.dtype if known.is_floating_point() or not missing else torch.float64
        nan = torch.full_like(known, float("nan"), dtype=dtype) if missing else known
        rows = [nan if v is None else v.to(dtype) if bool(h.all()) else
                torch.where(h.view(-1, *[1] * (v.dim() - 1)), v.to(dtype), nan) for v, h in lst]
        if any(row.shape != rows[0].shape for row in rows):
            raise _NeedsReference
        t = torch.stack(rows)
        stacked[f"{k[1]}.{k[2]}"] = t if b.batch is not None else t[:, 0]
    return stacked, {}


def _run_dynamic(prog: Any, steps: int, r: _Run, port_keys: list, cache: dict, pnames: list[str], method: str,
                 device: Any, tick: _Progress) -> tuple[dict, dict]:
    """Threshold conditions: the scheduler runs in Python between compiled node runs."""
    state: dict[tuple, Any] = {}
    traj: dict[tuple, list[Any]] = {k: [] for k in port_keys}
    sch = prog.scheduler()
    value_of = threshold_getter(prog, state)
    ran: set[str] = set()
    port_items = list(traj.items())
    for step in range(steps):
        first = step == 0
        for cse in sch.run(value_of):
            for nid in cse:
                before = frozenset(({nid} & ran) | (prog.senders[nid] & ran))
                key = (first, nid, before)
                c = cache.get(key)
                if c is None:
                    seg = prog.segment([nid], first=first, dt=None if first else 1.0, ran_before=before,
                                       program_inputs=True)
                    c = cache[key] = _Compiled(seg, pnames, method, device)
                c(r, state)
                ran.add(nid)
        for k, lst in port_items:
            lst.append(state.get(k))
        if step == 0:
            _check_trajectory_size(port_items, steps, prog)
        tick(1)
    return _collect(traj, {})


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
