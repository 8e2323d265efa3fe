"""MDF frontend: a ``torchmdf.mdf.Model`` (or a file) -> IR, with modeci_mdf's semantics.

What one evaluation means (modeci_mdf 0.4's ``EvaluableGraph.evaluate``, which this module
reproduces and which ``tests/test_mdf_frontend.py`` checks against modeci_mdf itself):

**Scheduling.**  graph_scheduler orders the nodes: the *consideration queue* is the
topological levels of the edges, leaving out every edge into an input port that has a
``default_value`` (that is what lets a cycle run; a cycle without such a port is an error).
Each evaluation is one ``Scheduler.run()``: passes over the queue until the
``environment_state_update`` termination condition holds (default ``AllHaveRun()``); in each
consideration set a node runs when its condition holds (default: ``Always`` without
dependencies, ``EveryNCalls(dep, 1)`` with one, ``All`` of those with several), re-checking
the set until nothing more is added; a pass where nothing runs counts as one empty
consideration set.  Counters follow graph_scheduler: call counts per time scale (those at
``environment_state_update`` and finer reset at each run, ``pass`` and finer at each pass),
"useable" counts for ``EveryNCalls`` (reset at each run), the clock (passes and consideration
sets in this run, in total, runs so far), and the last consideration set (``JustRan``, which
crosses runs).  Supported: Always, Never, All/And, Any/Or, Not, NWhen, EveryNCalls,
BeforeNCalls, AtNCalls, AfterCall, AfterNCalls, AfterNCallsCombined, JustRan, AllHaveRun,
Before/At/After(N)Pass(es), EveryNPasses, the ConsiderationSetExecution,
EnvironmentStateUpdate and EnvironmentSequence families (including the ``...Start`` forms) and
Threshold and the absolute-time TimeInterval and TimeTermination (graph_scheduler's clock, exact
in fractions of a second); WhenFinished* and While/WhileNot are refused with a located
:class:`ConversionError`.  Differences, all where
modeci_mdf is not deterministic or fails: nodes of one consideration set are considered and
run in file order (graph_scheduler iterates a ``set``); edges into one port are applied in file
order (modeci_mdf iterates a ``set`` of edges); ``JustRan`` before anything ran is false
(graph_scheduler raises ``IndexError``).

The schedule is data compiled into the lowering: the scheduler (:mod:`torchmdf.mdf.scheduler`,
its conditions compiled from the table in :mod:`torchmdf.mdf.conditions`) is plain Python over
node ids and counters.  Without ``Threshold`` it never looks at values, so the executions of an
evaluation are known before lowering and become one IR graph, a node that runs several times
being emitted once per execution (each execution sees the previous one's values).  A
``Threshold`` makes the schedule depend on computed values: :func:`lower_mdf` refuses it,
:mod:`torchmdf.simulation` runs the scheduler between compiled per-node executions.

**Edges.**  Just before a node runs, each edge into it whose sender has run at some point
(this evaluation or an earlier one) delivers the sender's latest output times the edge's
``weight`` (skipped when the weight is the number 1); the port's ``reduce`` combines several
(``overwrite``: the last wins, ``add``, ``multiply``; modeci_mdf adds and multiplies in place,
so with weight 1 it also changes the first sender's output array -- torchmdf does not).  A port
nothing delivered to reads its ``default_value``, else zeros of its ``shape`` (float64; int64
when the type says int; modeci_mdf uses an int 0 on a node's very first run, numerically the
same).  A port that no edge feeds is a graph input defaulting to that value.  A self-edge
delivers from the node's second run on.

**A node's run.**  (1) input ports; (2) the *current* value of every parameter, in declaration
order: the value from its previous run, else -- stateful (``default_initial_value``,
``time_derivative`` or a value naming itself) -- the ``default_initial_value`` (seeing the
inputs and the current values of earlier parameters) or 0.0, else its value expression with
its own name bound to 0.0; (3) functions, ordered by the function ids they use, seeing inputs,
current parameter values and earlier functions; (4) parameters in declaration order, each
seeing the new values of earlier parameters and the current values of itself and later ones:
``value`` > ``function`` + ``args`` > ``time_derivative`` (first evaluation: the initial
value; later: forward Euler ``old + td * dt``) > the previous value; then ``conditions`` in
order, ``where(test, value, v)``; (5) output ports.  Current values are lowered lazily, so
those nobody reads cost nothing (modeci_mdf computes them all and fails where one cannot be
computed; torchmdf only fails where one is read).

ONNX functions take their inputs and attributes from ``args`` or, as modeci_mdf passes every
node value to the op, from any input port, parameter or function of the same name;
attributes must be constants and are cast to their schema type.  A Python number given to an
ONNX op becomes a 1-element array (modeci_mdf's ``np.atleast_1d``; not in files torchmdf wrote,
whose ONNX ops stand for IR ops on 0-d tensors).  modeci_mdf runs ONNX ops
in float32; torchmdf keeps the inputs' dtype.  Expressions are parsed by the whitelisted
parser of :mod:`torchmdf.mdf.expressions` and lowered into IR nodes by
:mod:`torchmdf.mdf.expression_lowering` (calls through the function table of
:mod:`torchmdf.mdf.functions`); nothing from a file is ever evaluated with ``eval``.

**State across evaluations.**  A graph lowered for a later evaluation (``first=False``) reads
what earlier evaluations left -- parameter values, output ports, for the edges and ports of
nodes that ran -- as IR state variables; ``g.meta["state_after"]`` maps the same keys to the
values this evaluation leaves.  ``first=True`` is modeci_mdf's first ``evaluate()`` (time
derivatives take their initial values, at every run of the node in that evaluation),
``first=False`` its second, ``evaluate(time_increment=dt)``.

**Several graphs.**  A model may hold several graphs: ``graph=`` picks one by id; without it
the first graph is lowered (as modeci_mdf's ``execution_engine.main`` does) and
``g.metadata["mdf_graph"]`` names it.

**Control flow.**  An ``onnx::If``/``onnx::Loop`` node holds its regions as graph-valued
parameters named as the ONNX attributes (``then_branch``, ``else_branch``, ``body``; value
``{"graph_<id>": graph}``, as modeci_mdf's ONNX importer writes them): each is lowered as one
evaluation of its own (:func:`lower_region_graph`: its free input ports in file order are the
region's inputs, then the owner's ports its ``captures`` metadata names; its ``output_ports``
metadata the outputs) and becomes a region; nesting is bounded by ``MAX_REGION_NESTING`` and
each loop by ``LIMITS.max_loop_iterations``, both located errors.  A graph nested directly inside
a graph (modeci_mdf's PyTorch importer writes the body of an ``onnx::Loop`` that way, without
saying which ports are the body's inputs and outputs) is refused with a located error.
"""

from __future__ import annotations

import math
import os
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import torch

from torchmdf.errors import ConversionError, TorchMDFError, UnsupportedOpError, ValidationError
from torchmdf.ir import Graph, GraphSignature, TensorType, Value, ValueRole
from torchmdf.ir.meta_keys import DEFAULT, MDF_PARAM, MDF_PORT, PYSCALAR, TIME_STEP
from torchmdf.mdf.attributes import as_tensor, is_pyscalar, port_default, symbolic_port_shape, with_dtype
from torchmdf.mdf.conditions import ConditionCompiler
from torchmdf.mdf.expression_lowering import NO_VALUE, Env, MultiOutput, NodeLowering, ordered_env, warm
from torchmdf.mdf.scheduler import (
    CompiledCondition,
    NestedScheduler,
    Scheduler,
    consideration_queue,
    flatten,
    schedules,
)

# ---------------------------------------------------------------------------------------------
# One graph of a model
# ---------------------------------------------------------------------------------------------

Key = tuple  # ("param" | "port" | "func", node id, id): a value that lives between node runs


class _Segment:
    """The IR graph being built for a sequence of node runs: what they write, and the state
    variables for what they read from runs before it."""

    def __init__(self, prog: MDFProgram, first: bool, dt: float | None, ran_before: frozenset[str],
                 program_inputs: bool = False):
        self.prog = prog
        # simulate's program form: literal parameter values are tagged constants (MDF_PARAM) a
        # pass may turn into inputs; the time step is an input and time derivatives are
        # torchmdf::Integrate nodes an integrator pass lowers (passes/integrate.py)
        self.program_inputs = program_inputs
        self.dt_input: Value | None = None
        self.g = Graph(prog.mg.id)
        self.first = first
        self.dt = dt  # None: modeci_mdf's evaluate() without time_increment
        self.ran_before = ran_before
        self.ran = set(ran_before)
        self.values: dict[Key, Value] = {}
        self.states: dict[Key, Any] = {}
        self.consts: dict[tuple, Value] = {}
        self.named: dict[str, Value] = {}
        self.free: dict[tuple[str, str], Value] = {}
        self.executions: list[str] = []

    def read(self, key: Key) -> Value | None:
        """The latest value of ``key``: written here, else left by an earlier run (a state
        variable), else None."""
        v = self.values.get(key)
        if v is not None:
            return v
        sv = self.states.get(key)
        if sv is None:
            if key[1] not in self.ran_before or not self.prog.persists(key):
                return None
            sv = self.g.add_state(f"{key[1]}.{key[2]}", None)
            self.states[key] = sv
        return sv.current

    def write(self, key: Key, v: Value) -> None:
        self.values[key] = v

    def time_step(self) -> Value:
        """The graph input holding ``dt`` (program form), made on first use."""
        if self.dt_input is None:
            self.dt_input = self.g.add_input("dt", TensorType(torch.float64, ()))
            self.dt_input.meta[TIME_STEP] = True
        return self.dt_input


class MDFProgram:
    """One graph of an MDF model, checked and ready to lower: node order and scheduler
    conditions are parsed once; :meth:`segment` lowers a sequence of node runs."""

    def __init__(self, model: Any, mg: Any, *, within: str | None = None, file: str | None = None):
        from torchmdf.mdf.model import Graph as MGraph

        self.model = model
        self.mg = mg
        self.within = within  # a region's graph: where it is ("graph 'g' > node 'L' > parameter 'body'")
        src = getattr(model, "source", None)
        self.file = file or (os.path.basename(src) if src else None)
        entries = mg.distinct_nodes()
        nested = [n for n in entries if isinstance(n, MGraph)]
        #: nested graphs run as nodes (PsyNeuLink's inner Compositions): id -> their program
        self.inner: dict[str, MDFProgram] = {}
        for ng in nested:
            users = sorted({e.receiver for e in mg.edges if mg.get_endpoint(e.receiver) is ng}
                           | {e.sender for e in mg.edges if mg.get_endpoint(e.sender) is ng})
            if users or not ng.nodes:
                what = f" (the body of {', '.join(map(repr, users))})" if users else " (it has no nodes)"
                raise ConversionError(f"nested graph '{ng.id}'{what} cannot be lowered: torchmdf runs a nested "
                                      "graph as a node only when no edge enters or leaves it",
                                      location=self.loc(f"{self.base()} > graph '{ng.id}'"),
                                      hint="modeci_mdf's PyTorch importer writes the body of an onnx::Loop "
                                      "as a nested graph; neither modeci_mdf nor torchmdf can evaluate it")
            self.inner[ng.id] = MDFProgram(model, ng, within=self.base(), file=file or self.file)
        md = getattr(model, "metadata", None)
        self.written_by_torchmdf = isinstance(md, dict) and isinstance(md.get("torchmdf"), dict)
        own = [n for n in entries if not isinstance(n, MGraph)]
        # the nodes this program lowers: its own, then those of its nested graphs (flattened)
        self.nodes = own + [n for p in self.inner.values() for n in p.nodes]
        self.by_id = {}
        for n in self.nodes:
            if n.id in self.by_id or n.id in self.inner:
                raise ValidationError(f"node id '{n.id}' is used by two nodes (in this graph or a nested graph): "
                                      "torchmdf needs node ids unique across nested graphs",
                                      location=self.loc(self.base()))
            self.by_id[n.id] = n
        # what the scheduler schedules: own nodes and nested graphs, in file order
        self.ids = [n.id for n in entries]
        self.incoming: dict[str, dict[str, list[Any]]] = {n.id: {p.id: [] for p in n.input_ports}
                                                          for n in own}
        in_ports = {n.id: {p.id: p for p in n.input_ports} for n in own}
        out_ports = {n.id: {p.id for p in n.output_ports} for n in own}
        for e in mg.edges:
            ew = f"{self.base()} > edge '{e.id}'"
            for end, port, kind in ((e.sender, e.sender_port, "output"), (e.receiver, e.receiver_port, "input")):
                ports = (out_ports if kind == "output" else in_ports).get(end) if isinstance(end, str) else None
                if ports is None or not isinstance(port, str) or port not in ports:
                    raise ValidationError(f"edge refers to unknown {kind} port '{end}.{port}'",
                                          location=self.loc(ew))
            self.incoming[e.receiver][e.receiver_port].append(e)
        fed = {(e.receiver, e.receiver_port) for e in mg.edges}
        self.free_ports = [(n, p) for n in own for p in n.input_ports if (n.id, p.id) not in fed]
        self.senders = {n.id: {e.sender for es in self.incoming[n.id].values() for e in es} for n in own}
        for p in self.inner.values():
            self.incoming.update(p.incoming)
            self.free_ports += p.free_ports
            self.senders.update(p.senders)
        # graph_scheduler's dependencies: every edge but those into ports with a default_value
        self.dep_sets: dict[str, dict[str, None]] = {i: {} for i in self.ids}  # ordered sets
        for e in mg.edges:
            if in_ports[e.receiver][e.receiver_port].default_value is None:
                self.dep_sets[e.receiver][e.sender] = None
        self.deps: dict[str, list[str]] = {i: list(d) for i, d in self.dep_sets.items()}
        self.queue = consideration_queue(self.ids, self.deps, self.dep_sets, self.loc(self.base()))
        self._persist: dict[Key, bool] = {}
        self._params: dict[str, dict[str, Any]] = {}
        self._strattrs: dict[str, frozenset[str]] = {}
        self._forder: dict[str, list[Any]] = {}
        self._compiler = ConditionCompiler({**{n.id: n for n in own}, **{g.id: g for g in nested}}, self.ids,
                                           self.deps, self.loc)
        self._conds = self._compiler.graph(mg.conditions, self.base())
        if self.inner:
            dyn = self.dynamic_condition or next((p.dynamic_condition for p in self.inner.values()
                                                  if p.dynamic_condition is not None), None)
            if dyn is not None:
                raise ConversionError("a graph with nested graphs whose schedule depends on computed values "
                                      "(Threshold) is not supported", location=dyn.where)

    # -- locations ------------------------------------------------------------------------------
    def loc(self, where: str) -> str:
        return f"file '{self.file}' > {where}" if self.file else where

    def base(self) -> str:
        if self.within is not None:
            return f"{self.within} > graph '{self.mg.id}'"
        return f"model '{self.model.id}' > graph '{self.mg.id}'"

    def node_where(self, n: Any) -> str:
        return f"{self.base()} > node '{n.id}'"

    # -- per-node facts ---------------------------------------------------------------------------
    def params_by_id(self, n: Any) -> dict[str, Any]:
        d = self._params.get(n.id)
        if d is None:
            d = self._params[n.id] = {p.id: p for p in n.parameters}
        return d

    def string_attrs(self, n: Any) -> frozenset[str]:
        """Parameter ids that hold a literal string ONNX attribute (``auto_pad``), not an
        expression."""
        s = self._strattrs.get(n.id)
        if s is None:
            from torchmdf.mdf.validate import string_attribute_names

            s = self._strattrs[n.id] = string_attribute_names(n)
        return s

    def is_literal_attr(self, n: Any, p: Any) -> bool:
        if is_graph_value(p.value):  # a region of a control-flow op: read by the op, never a value
            return True
        return isinstance(p.value, str) and p.id in self.string_attrs(n) and \
            p.value not in {q.id for q in n.parameters} | {q.id for q in n.input_ports} | \
            {f.id for f in n.functions}

    def persists(self, key: Key) -> bool:
        """Does a run leave a value for ``key`` that the next run reads?  Output ports and
        functions always; a parameter when modeci_mdf stores its evaluation (it has a value,
        a function, a time derivative or conditions)."""
        got = self._persist.get(key)
        if got is None:
            kind, nid, pid = key
            if kind != "param":
                got = True
            else:
                n = self.by_id[nid]
                p = self.params_by_id(n)[pid]
                got = (p.value is not None or p.function is not None or p.time_derivative is not None
                       or bool(p.conditions)) and not self.is_literal_attr(n, p)
            self._persist[key] = got
        return got

    def function_order(self, n: Any) -> list[Any]:
        """modeci_mdf's order of a node's functions: one runs once the functions it names have."""
        got = self._forder.get(n.id)
        if got is not None:
            return got
        from torchmdf.mdf.expressions import free_names, parse_expression

        fids = {f.id for f in n.functions}
        needs: dict[str, set[str]] = {}
        for f in n.functions:
            req: set[str] = set()
            own = set(f.args or {})
            for x in [f.value, *(f.args or {}).values()]:
                if isinstance(x, str):
                    try:
                        req |= set(free_names(parse_expression(x))) - own
                    except TorchMDFError:
                        pass
            needs[f.id] = req & fids
        placed: list[Any] = []
        done: set[str] = set()
        todo = list(n.functions)
        while todo:
            ready = [f for f in todo if needs[f.id] <= done]
            if not ready:
                raise ValidationError("the functions " + ", ".join(repr(f.id) for f in todo) +
                                      " need each other in a cycle", location=self.loc(self.node_where(n)))
            for f in ready:
                placed.append(f)
                done.add(f.id)
            todo = [f for f in todo if f.id not in done]
        self._forder[n.id] = placed
        return placed

    # -- scheduling -------------------------------------------------------------------------------
    def scheduler(self) -> Scheduler:
        """A fresh scheduler over this graph's nodes and compiled conditions."""
        conds, esu, es = self._conds
        sch = Scheduler(self.ids, self.queue, conds, esu, es, self.loc(self.base()),
                        {owner: list(deps) for owner, deps in self._compiler.watch.items()})
        if self.inner:
            return NestedScheduler(sch, {gid: p.scheduler() for gid, p in self.inner.items()})
        return sch

    @property
    def dynamic_condition(self) -> CompiledCondition | None:
        conds, esu, es = self._conds
        return next((c for c in [*conds.values(), esu, es] if c.dynamic), None)

    @property
    def has_conditions(self) -> bool:
        cs = self.mg.conditions
        if cs is None:
            return False
        ns = getattr(cs, "node_specific", None) or {}
        return any(getattr(c, "type", "Always") != "Always" for c in ns.values()) or \
            bool(getattr(cs, "termination", None))

    def schedules(self, count: int) -> Iterator[list[list[str]]]:
        """The consideration set executions of ``count`` evaluations (no Threshold)."""
        return schedules(self.scheduler(), count)



    # -- lowering ---------------------------------------------------------------------------------
    def segment(self, executions: list[str], *, first: bool, dt: float | None,
                ran_before: frozenset[str] = frozenset(), program_inputs: bool = False) -> _Segment:
        """Lower the node runs ``executions`` (node ids, in order) into one graph.  ``dt`` is
        the time increment (None: modeci_mdf's evaluate() without one); ``ran_before`` are the
        nodes that ran in earlier segments.  ``program_inputs`` (simulate's form): literal
        parameter values are constants tagged ``MDF_PARAM`` (``parameters_to_inputs`` makes
        chosen ones inputs), ``dt`` (any number when not None) is the input ``dt`` and time
        derivatives are ``torchmdf::Integrate`` nodes (lowered by the ``integrate`` pass)."""
        seg = _Segment(self, first, dt, frozenset(ran_before), program_inputs)
        names = [p.id for _, p in self.free_ports]
        for n, p in self.free_ports:
            name = p.id if names.count(p.id) == 1 else f"{n.id}_{p.id}"
            default = port_default(p)
            shape = symbolic_port_shape(n.id, p)
            v = seg.g.add_input(name, TensorType(default.dtype, tuple(default.shape) if shape is None else shape))
            v.meta[DEFAULT] = default
            v.meta[MDF_PORT] = f"{n.id}.{p.id}"
            if is_pyscalar(p.default_value):
                v.meta[PYSCALAR] = True
            seg.free[(n.id, p.id)] = v
        for nid in executions:
            node = self.by_id[nid]
            try:
                self._run_node(seg, node)
            except TorchMDFError as e:
                if e.location or isinstance(e, UnsupportedOpError):  # the latter locates each op
                    raise
                raise type(e)(e.raw_message, location=self.loc(self.node_where(node)), hint=e.hint) from e
            except RecursionError as e:
                raise ConversionError("the node is nested too deeply to lower",
                                      location=self.loc(self.node_where(node))) from e
            except Exception as e:  # noqa: BLE001 - never a raw error from a file: say where
                raise ConversionError(f"cannot lower the node: {type(e).__name__}: {str(e)[:300]}",
                                      location=self.loc(self.node_where(node))) from e
            seg.ran.add(nid)
            seg.executions.append(nid)
        return seg

    def _input(self, seg: _Segment, L: NodeLowering, n: Any, p: Any, ran_before: bool) -> Value:
        free = seg.free.get((n.id, p.id))
        if free is not None:
            return free
        pending: Value | None = None
        reduce = p.reduce or "overwrite"
        for e in self.incoming[n.id][p.id]:
            if e.sender not in seg.ran or (e.sender == n.id and not ran_before):
                continue
            src = seg.read(("port", e.sender, e.sender_port))
            if src is None:
                continue
            ew = f"{self.base()} > edge '{e.id}'"
            w = e.parameters.get("weight") if isinstance(e.parameters, dict) else None
            if w is not None and not (type(w) in (int, float) and w == 1):
                wv = L.value(w, ew + " > parameter 'weight'", Env())
                out = L.op("onnx::Mul", [wv, L.one(src, ew)], where=ew)
                if wv.meta.get(PYSCALAR) and src.meta.get(PYSCALAR):
                    out.meta[PYSCALAR] = True
                src = out
            if pending is None or reduce == "overwrite":
                pending = src
            elif reduce == "add":
                pending = L.op("onnx::Add", [pending, src])
            elif reduce == "multiply":
                pending = L.op("onnx::Mul", [pending, src])
            else:
                raise ValidationError(f"reduce must be overwrite, add or multiply, not {reduce!r}",
                                      location=self.loc(f"{self.node_where(n)} > input port '{p.id}'"))
        if pending is None:
            pending = seg.g.add_constant(port_default(p), p.id)
            if is_pyscalar(p.default_value):
                pending.meta[PYSCALAR] = True
        return pending

    def _param_value(self, seg: _Segment, L: NodeLowering, p: Any, env: Env, where: str) -> Value:
        """A parameter's ``value``; a weight torchmdf wrote keeps its PyTorch name and dtype."""
        from torchmdf.mdf.torchmdf_metadata import ParameterMetadata

        tm = ParameterMetadata.read(p.metadata, self.loc(where)) if p.value is not None \
            and not isinstance(p.value, str) else ParameterMetadata()
        if tm.name or tm.dtype or tm.shape is not None:
            t = with_dtype(as_tensor(p.value), tm.dtype, self.loc(where))
            if tm.shape is not None:  # an empty tensor's shape, which the JSON value cannot hold
                if t.numel() != 0 or math.prod(tm.shape) != 0:
                    raise ValidationError(f"metadata shape {tm.shape} is for an empty value, and the value has "
                                          f"{t.numel()} elements", location=self.loc(where))
                t = t.reshape(tm.shape)
            name = tm.name
            if not name:
                return seg.g.add_constant(t, p.id)
            v = seg.named.get(name)
            if v is None:
                v = seg.named[name] = seg.g.add_parameter(name, t, role=tm.role or ValueRole.PARAMETER)
            return v
        if seg.program_inputs and is_literal_value(p.value):
            v = seg.g.add_constant(as_tensor(p.value), p.id)  # its own constant: not shared with equal literals
            if is_pyscalar(p.value):
                v.meta[PYSCALAR] = True
            v.meta[MDF_PARAM] = f"{L.node.id}.{p.id}"
            return v
        return L.value(p.value, where, env, name=p.id)

    def _run_node(self, seg: _Segment, n: Any) -> None:
        """One run of node ``n`` (see the module docstring for the phases)."""
        where = self.node_where(n)
        L = NodeLowering(seg, n, where)
        ran_before = n.id in seg.ran
        inputs = Env()
        watch_inputs = self.dynamic_condition is not None  # a Threshold may read an input port
        for p in n.input_ports:
            v = self._input(seg, L, n, p, ran_before)
            inputs.set(p.id, v)
            if watch_inputs and isinstance(v, Value):
                seg.write(("input", n.id, p.id), v)
        params = list(n.parameters)
        current: dict[int, Any] = {}

        def pwhere(p: Any) -> str:
            return f"{where} > parameter '{p.id}'"

        pindex = {p.id: j for j, p in enumerate(params)}

        def phase1_env(i: int) -> Env:
            return Env(inputs, (pindex, i, cur))  # the parameters before i, at their current values

        def cur(i: int) -> Any:
            """The parameter's current value (phase 2 of modeci_mdf's node evaluation)."""
            if i in current:
                return current[i]
            p = params[i]
            key = ("param", n.id, p.id)
            current[i] = NO_VALUE  # a value that needs itself reads nothing
            try:
                v = seg.read(key) if ran_before and self.persists(key) else None
                if v is not None:
                    pass
                elif p.value is None and p.default_initial_value is None:
                    v = NO_VALUE
                elif p.is_stateful():
                    v = L.value(p.default_initial_value, pwhere(p) + " > default_initial_value",
                                phase1_env(i)) if p.default_initial_value is not None else L.const(0.0)
                else:
                    e = phase1_env(i)
                    e.set(p.id, L.const(0.0))
                    v = self._param_value(seg, L, p, e, pwhere(p))
            except BaseException:
                del current[i]  # read again, it fails again (not a silent None)
                raise
            current[i] = v
            return v

        warm(len(params), cur)

        def literal_attr(p: Any) -> Callable[[], Any]:
            def fail() -> Any:
                raise ValidationError(f"{p.id!r} holds the string attribute {p.value!r}, not a value",
                                      location=self.loc(pwhere(p)))
            return fail

        # functions: the node's inputs, current parameter values, earlier functions
        fenv = inputs.child()
        for i, p in enumerate(params):
            fenv.lazy(p.id, literal_attr(p) if self.is_literal_attr(n, p) else (lambda i=i: cur(i)))
        funcs: dict[str, Any] = {}
        for f in self.function_order(n):
            fw = f"{where} > function '{f.id}'"
            if f.function is not None:
                v = L.function(f.function, f.args, fw, fenv)
            else:  # a value expression over its own args
                scope = ordered_env(fenv, [(a, lambda prev, a=a, av=av: L.value(av, f"{fw} > argument '{a}'", prev))
                                        for a, av in (f.args or {}).items()])
                for a in f.args or {}:
                    scope[a]  # noqa: B018 - lowered eagerly, in order, as modeci_mdf evaluates them
                if f.value is None:
                    raise ValidationError("the function has neither a function name nor a value",
                                          location=self.loc(fw))
                v = L.value(f.value, fw, scope, items=True)
            funcs[f.id] = v
            fenv.set(f.id, v)
            if isinstance(v, Value):
                seg.write(("func", n.id, f.id), v)
        # parameters in declaration order: new values of earlier ones, current of the rest
        env = inputs.child()
        for i, p in enumerate(params):
            env.lazy(p.id, literal_attr(p) if self.is_literal_attr(n, p) else (lambda i=i: cur(i)))
        for fid, v in funcs.items():
            env.set(fid, v)
        for i, p in enumerate(params):
            pw = pwhere(p)
            if self.is_literal_attr(n, p):
                continue
            key = ("param", n.id, p.id)

            def stored(key: Key = key) -> Value | None:  # read only where used: no needless state
                return seg.read(key) if ran_before and self.persists(key) else None
            if p.value is not None:
                new = self._param_value(seg, L, p, env, pw)
            elif p.function is not None:
                new = L.function(p.function, p.args, pw, env)
            elif p.time_derivative is not None:
                if seg.dt is None:
                    dv = p.default_initial_value
                    new = L.value(dv, pw + " > default_initial_value", env) if dv is not None else L.const(0.0)
                else:
                    old = stored()
                    old = old if old is not None else cur(i)
                    if old is NO_VALUE:
                        old = L.const(0.0)
                    td = L.one(L.value(p.time_derivative, pw + " > time_derivative", env), pw)
                    if seg.program_inputs:  # an integrate node; the integrator pass picks the method
                        from torchmdf.passes.integrate import INTEGRATE

                        new = L.op(INTEGRATE, [L.one(old, pw), td, seg.time_step()], where=pw + " > time_derivative")
                    else:
                        step = L.op("onnx::Mul", [td, L.const(float(seg.dt))], where=pw + " > time_derivative")
                        new = L.op("onnx::Add", [L.one(old, pw), step], where=pw + " > time_derivative")
            else:  # conditions only (or only an initial value): the previous value
                new = stored()
                if new is None and not p.conditions:
                    new = cur(i)
            for c in p.conditions or []:
                cw = f"{pw} > condition '{c.id}'"
                test = L.one(L.value(c.test, cw + " > test", env), cw)
                val = L.one(L.value(c.value, cw + " > value", env), cw)
                base = new if isinstance(new, Value) else L.const(0.0)
                new = L.op("onnx::Where", [test, val, base], where=cw)
            env.set(p.id, new)
            if isinstance(new, Value) and self.persists(key):
                seg.write(key, new)
        for op_ in n.output_ports:
            ow = f"{where} > output port '{op_.id}'"
            if op_.value is None:
                raise ValidationError("output port has no value", location=self.loc(ow))
            v = L.value(op_.value, ow, env)
            if isinstance(v, MultiOutput) and v.whole_ok:
                v = v[0]
            if isinstance(v, list):
                raise ValidationError("an output port is one value; index the function's results (name[0])",
                                      location=self.loc(ow))
            seg.write(("port", n.id, op_.id), v)

    def finish(self, seg: _Segment) -> Graph:
        """The segment as a user-facing graph: outputs, all ports, state."""
        g = seg.g
        all_outputs: dict[str, Value] = {}
        for n in self.nodes:
            if n.id in seg.ran:
                for op_ in n.output_ports:
                    v = seg.read(("port", n.id, op_.id))
                    if v is not None:
                        all_outputs[f"{n.id}.{op_.id}"] = v
        for key, sv in seg.states.items():
            sv.next = seg.values.get(key, sv.current)
        g.meta["all_outputs"] = all_outputs
        g.meta["state_after"] = dict(seg.values)
        g.meta["state_keys"] = {sv.name: key for key, sv in seg.states.items()}
        g.meta["executions"] = list(seg.executions)
        sent = {(e.sender, e.sender_port) for e in self.mg.edges}
        names = []
        for n in self.nodes:
            for op_ in n.output_ports:
                k = f"{n.id}.{op_.id}"
                if (n.id, op_.id) not in sent and k in all_outputs:
                    names.append(k)
        g.outputs = [all_outputs[k] for k in names]
        g.output_names = names
        if self.has_conditions:
            g.conditions = self.mg.conditions
        g.metadata["mdf_source"] = True
        g.metadata["mdf_model"] = self.model.id
        g.metadata["mdf_graph"] = self.mg.id
        from torchmdf.mdf.torchmdf_metadata import graph_metadata

        tm = graph_metadata(self.model.metadata, self.mg.metadata)  # only the keys with a schema, checked
        g.signature = tm.signature()
        keep = tm.output_ports  # written by torchmdf: the outputs, in order
        if keep is not None and all(k in all_outputs for k in keep):
            g.outputs = [all_outputs[k] for k in keep]
            onames = tm.output_names
            g.output_names = list(onames) if onames is not None and len(onames) == len(keep) else list(keep)
        g.verify()
        return g

    # -- schedules ----------------------------------------------------------------------------------
def program(model: Any, graph: str | None = None) -> MDFProgram:
    """Load (if a path) and pick the graph: ``graph`` by id, else the first."""
    from torchmdf.mdf import Model, load

    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    if not isinstance(model, Model):
        raise ConversionError(f"expected a torchmdf.mdf.Model or a path, got {type(model).__name__}")
    from torchmdf.mdf.psyneulink import psyneulink_form

    model = psyneulink_form(model)  # PsyNeuLink's exports: its functions as plain MDF (a copy)
    where = model.location + f" > model '{model.id}'" if model.location else f"model '{model.id}'"
    if not model.graphs:
        raise ValidationError("model has no graphs", location=where)
    mg = model.graphs[0] if graph is None else model.get_graph(graph)
    if mg is None:
        raise ValidationError(f"no graph {graph!r} (graphs: {', '.join(g.id for g in model.graphs)})",
                              location=where)
    from torchmdf.mdf.functions import SYMBOLIC_HINT
    from torchmdf.mdf.symbolic import is_symbolic

    if is_symbolic(mg):
        raise ConversionError("the graph computes on ACT-R chunks (dicts of text), which have no tensor form",
                              location=f"{where} > graph '{mg.id}'", hint=SYMBOLIC_HINT)
    return MDFProgram(model, mg)


def lower_mdf(model: Any, *, graph: str | None = None, first: bool = True, dt: float | None = None) -> Graph:
    """Lower one evaluation of an MDF graph (object or file path) into the IR.

    ``graph`` picks a graph by id; without it the first graph is lowered (a model may hold
    several; ``g.metadata["mdf_graph"]`` says which).  ``first=True``: modeci_mdf's first
    ``evaluate()``; ``first=False``: its second, ``evaluate(time_increment=dt)`` (``dt=None``
    re-initializes time derivatives, as evaluate() without a time increment does), reading
    what the first left as state variables.  A graph whose schedule depends on computed values
    (a Threshold condition) has no single graph per evaluation: ConversionError."""
    prog = program(model, graph)
    dyn = prog.dynamic_condition
    if dyn is not None:
        raise ConversionError("the schedule depends on values computed while the graph runs (Threshold), "
                              "so one evaluation is not one fixed graph", location=dyn.where,
                              hint="torchmdf.simulate() runs it, scheduling between node runs")
    scheds = prog.schedules(1 if first else 2)
    s0 = flatten(next(scheds))
    if first:
        seg = prog.segment(s0, first=True, dt=None)
    else:
        seg = prog.segment(flatten(next(scheds)), first=False, dt=dt, ran_before=frozenset(s0))
    return prog.finish(seg)


def is_literal_value(v: Any) -> bool:
    """A parameter value that is a number or an array, not an expression or a graph."""
    if isinstance(v, bool) or isinstance(v, (int, float)):
        return not isinstance(v, bool)
    return isinstance(v, list) and not is_graph_value(v)


def settable_parameters(prog: MDFProgram) -> list[str]:
    """``"node.parameter"`` of every parameter whose value is a literal number or array: the
    names ``simulate(params=...)`` may set."""
    return [f"{n.id}.{p.id}" for n in prog.nodes for p in n.parameters
            if is_literal_value(p.value) and not prog.is_literal_attr(n, p)]


def is_graph_value(v: Any) -> bool:
    """A parameter value holding a nested graph, ``{"graph_<id>": {...}}``."""
    return type(v) is dict and len(v) == 1 and isinstance(next(iter(v.values())), dict)


_REGION_DEPTH: ContextVar[int] = ContextVar("torchmdf_mdf_region_depth", default=0)


def lower_region_graph(prog: MDFProgram, body: Any, gid: str, where: str) -> tuple[Graph, list[str]]:
    """Lower the nested graph ``body`` (its file form) held by a control-flow node's parameter
    (``where``) as one evaluation of its own: its free input ports are the inputs, in file
    order, its metadata's ``output_ports`` the outputs.  Returns the graph and its
    ``captures`` (the owner's ports its last inputs stand for).  Nesting is bounded by
    ``MAX_REGION_NESTING`` (a located error, never a RecursionError)."""
    from torchmdf.backends.mdf import MAX_REGION_NESTING
    from torchmdf.mdf import Model
    from torchmdf.mdf.model import Graph as MGraph
    from torchmdf.mdf.torchmdf_metadata import graph_metadata

    depth = _REGION_DEPTH.get()
    if depth >= MAX_REGION_NESTING:
        raise ConversionError(f"control flow is nested more than {MAX_REGION_NESTING} levels deep",
                              location=prog.loc(where))
    mg = MGraph.from_dict(body, id=gid, location=prog.loc(where))
    if any(isinstance(n, MGraph) for n in mg.nodes) or mg.conditions is not None:
        raise ConversionError("a control-flow region is a graph of nodes without conditions",
                              location=prog.loc(f"{where} > graph '{gid}'"))
    sub = MDFProgram(Model(id=prog.model.id, graphs=[mg], metadata=prog.model.metadata), mg, within=where,
                     file=prog.file)
    token = _REGION_DEPTH.set(depth + 1)
    try:
        g = sub.finish(sub.segment(flatten(next(sub.schedules(1))), first=True, dt=None))
    finally:
        _REGION_DEPTH.reset(token)
    g.name = gid
    g.signature = GraphSignature()  # the model's calling convention is the root graph's
    g.metadata = {}
    return g, list(graph_metadata(mg.metadata).captures or [])


__all__ = ["lower_mdf", "as_tensor", "program", "MDFProgram", "lower_region_graph", "settable_parameters"]
