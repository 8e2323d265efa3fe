"""A drop-in for ``modeci_mdf.execution_engine`` in scripts written for the reference:
:class:`EvaluableGraph` (``evaluate(time_increment=..., initializer=...)``, then
``enodes[node].evaluable_outputs[port].curr_value``), :class:`EvaluableParameter`, :func:`main` and
:func:`get_required_variables_from_expression`, built on :func:`torchmdf.simulate` (nothing
is evaluated with Python's ``eval``).

How it maps the reference's calls onto a simulation:

* The ``k``-th call of ``evaluate`` is step ``k`` of ``torchmdf.simulate``: the first call
  initializes (``time_increment=None``, as the reference's scripts call it), later calls
  integrate time derivatives with their ``time_increment``.  The state is never advanced by
  hand: values are read from one simulation of the steps done so far (run when a value is read,
  a few steps ahead, so a script that reads after each call costs about one simulation).
* ``initializer`` sets the value of every input port with that id (the reference's
  ``set_input_value``); keys that name no input port are ignored, as there.
* What a simulation cannot reproduce is a located :class:`torchmdf.TorchMDFError`, never a
  silently different result: a ``time_increment`` that changes between calls (or a first call
  with one) in a graph with time derivatives, and an ``initializer`` that changes the inputs of
  a graph with state between calls (a graph without state simply starts again).
* Values are numpy arrays (numpy scalars for 0-d values), as the reference returns them;
  ``array_format`` is accepted and ignored.
* A graph on ACT-R chunks (dicts of text, :func:`torchmdf.mdf.symbolic.is_symbolic`) has no
  tensor form: it is evaluated on Python values by :class:`torchmdf.mdf.symbolic.SymbolicGraph`,
  one evaluation per call, and its ``initializer`` may change between calls (the reference's
  ACT-R scripts feed each evaluation's goal back in); values are Python values.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from torchmdf.errors import ConversionError, TorchMDFError

__all__ = ["EvaluableGraph", "EvaluableNode", "EvaluableOutput", "EvaluableInput", "EvaluableValue",
           "EvaluableParameter",
           "main", "get_required_variables_from_expression", "FORMAT_NUMPY", "FORMAT_TENSORFLOW",
           "FORMAT_DEFAULT"]

FORMAT_NUMPY = "numpy"
FORMAT_TENSORFLOW = "tensorflow"
FORMAT_DEFAULT = FORMAT_NUMPY

_PREFIX = "_torchmdf_ee_"  # output ports added to record parameters and input ports


def get_required_variables_from_expression(expr: Any) -> list[str]:
    """The names an MDF expression reads (modeci_mdf's helper of the same name): a non-string
    or an empty string reads nothing.  Read with torchmdf's whitelisted parser; text that
    grammar refuses but Python's parses (attribute access ``x.y``, a tuple ``()``) is listed
    from Python's syntax tree (``ast.parse``: parsed, never run), its base names as the
    reference lists them (``x.y`` reads ``x``).  Evaluation still refuses such text."""
    from torchmdf.errors import ExpressionError
    from torchmdf.mdf.expressions import free_names, parse_expression

    if not isinstance(expr, str) or not expr.strip():
        return []
    try:
        return sorted(free_names(parse_expression(expr)))
    except ExpressionError as refused:
        names = _python_names(expr)
        if names is None:
            raise refused from None
        return names


def _python_names(expr: str) -> list[str] | None:
    """The variable names in ``expr`` by Python's grammar (called functions and attribute names
    left out); None where Python cannot parse it either."""
    import ast

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called})


def _numpy(v: Any) -> Any:
    if isinstance(v, list):  # never: trajectories are indexed before this
        return [_numpy(x) for x in v]
    if isinstance(v, torch.Tensor):
        a = v.detach().cpu().numpy()
        return a[()] if a.ndim == 0 else a
    return v


class EvaluableValue:
    """One recorded value of a node (a parameter or an input port): ``curr_value``."""

    def __init__(self, graph: EvaluableGraph, node_id: str, kind: str, id: str):
        self._graph, self._key = graph, (node_id, kind, id)
        self.id = id

    @property
    def curr_value(self) -> Any:
        return self._graph._value(*self._key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._key[0]}.{self.id})"


class EvaluableOutput(EvaluableValue):
    """An output port of an :class:`EvaluableNode`: ``curr_value`` after the last evaluation."""


class EvaluableInput(EvaluableValue):
    """An input port of an :class:`EvaluableNode`: ``curr_value`` after the last evaluation."""


class EvaluableNode:
    """A node of an :class:`EvaluableGraph`: ``evaluable_outputs``, ``evaluable_parameters``,
    ``evaluable_inputs`` (dicts by id, each with ``curr_value``) and :meth:`get_output`."""

    def __init__(self, graph: EvaluableGraph, node: Any):
        self.node, self.id = node, node.id
        self.evaluable_inputs = {p.id: EvaluableInput(graph, node.id, "input", p.id) for p in node.input_ports}
        self.evaluable_parameters = {p.id: EvaluableValue(graph, node.id, "param", p.id) for p in node.parameters}
        self.evaluable_outputs = {p.id: EvaluableOutput(graph, node.id, "port", p.id) for p in node.output_ports}

    def get_output(self, id: str | None = None) -> Any:
        """The value of output port ``id``; without one, every output's value as a tuple
        (the value itself when the node has one output port), as in modeci_mdf."""
        if id is not None:
            o = self.evaluable_outputs.get(id)
            return None if o is None else o.curr_value
        outs = tuple(o.curr_value for o in self.evaluable_outputs.values())
        return outs[0] if len(outs) == 1 else outs


class _ExecutionList(dict):
    def __missing__(self, key: Any) -> Any:
        raise KeyError(key)


class _SchedulerView:
    """``execution_list[None]``: the consideration sets run so far (sets of Node objects)."""

    def __init__(self, graph: EvaluableGraph):
        self._graph = graph

    @property
    def execution_list(self) -> dict:
        return _ExecutionList({None: self._graph._execution_list()})


class EvaluableGraph:
    """Evaluates a :class:`torchmdf.mdf.Graph` as ``modeci_mdf.execution_engine.EvaluableGraph``
    does (see the module docstring for how calls map onto :func:`torchmdf.simulate`)."""

    def __init__(self, graph: Any, verbose: bool = False):
        from torchmdf.mdf import Graph, Model, Node

        if not isinstance(graph, Graph):
            if hasattr(graph, "to_dict") and hasattr(graph, "nodes"):  # a modeci_mdf Graph
                graph = Graph.from_dict(graph.to_dict())
            else:
                raise ConversionError(f"EvaluableGraph takes a torchmdf.mdf.Graph, got {type(graph).__name__}")
        self.graph, self.verbose = graph, verbose
        self._location = f"graph '{graph.id}'"
        self._model_cls = Model
        nodes = [n for n in graph.nodes if isinstance(n, Node)]
        self.enodes = {n.id: EvaluableNode(self, n) for n in nodes}
        senders = {e.sender for e in graph.edges}
        receivers = {e.receiver for e in graph.edges}
        self.root_nodes = [n.id for n in nodes if n.id not in receivers]
        self.output_nodes = [n for n in nodes if n.id not in senders]
        self.output_enodes = [self.enodes[n.id] for n in self.output_nodes]
        self.scheduler = _SchedulerView(self)
        self._stateful = bool(graph.conditions) or any(
            p.is_stateful() for n in nodes for p in n.parameters)
        self._derivatives = any(p.time_derivative is not None for n in nodes for p in n.parameters)
        self._calls: list[Any] = []  # time_increment of each evaluate call
        self._inputs: dict[str, Any] = {}  # initializer values in force
        self._recorded: set[tuple[str, str, str]] = set()  # parameters/input ports asked for
        self._cache: tuple[int, frozenset, dict] | None = None  # (steps, recorded, trajectories)
        from torchmdf.mdf.symbolic import SymbolicGraph, is_symbolic

        # ACT-R's chunks have no tensor form: such a graph is evaluated on Python values, one
        # evaluation per call, its inputs free to change between calls (as in modeci_mdf)
        self._symbolic = SymbolicGraph(graph) if is_symbolic(graph) else None

    # -- the reference's calls -----------------------------------------------------------------

    def evaluate(self, time_increment: Any = None, array_format: str = FORMAT_DEFAULT,
                 initializer: dict[str, Any] | None = None) -> None:
        """One evaluation of the graph (one run of its scheduler)."""
        if self._symbolic is not None:
            ports = {p.id for en in self.enodes.values() for p in en.node.input_ports}
            self._symbolic.evaluate({k: v for k, v in (initializer or {}).items() if k in ports})
            self._calls.append(time_increment)
            return
        if initializer:
            ports = {p.id for en in self.enodes.values() for p in en.node.input_ports}
            new = {k: v for k, v in initializer.items() if k in ports}
            changed = [k for k, v in new.items() if k in self._inputs and not _same(self._inputs[k], v)]
            changed += [k for k in new if k not in self._inputs]
            if self._calls and changed:
                if self._stateful:
                    raise ConversionError(
                        f"evaluate: the initializer changes input port(s) {sorted(changed)} after the "
                        "first evaluation of a graph with state; torchmdf simulates with fixed inputs",
                        location=self._location,
                        hint="make a new EvaluableGraph for each input, or use torchmdf.simulate(inputs=...)")
                self._calls, self._cache = [], None  # no state: evaluation k is a fresh first step
            self._inputs.update(new)
            if changed:
                self._cache = None
        if time_increment is not None and self._derivatives:
            if not self._calls:
                raise ConversionError(
                    "evaluate: a first evaluation with a time_increment in a graph with time derivatives "
                    "is not supported; torchmdf's first step sets the initial values",
                    location=self._location, hint="call evaluate() once first, as modeci_mdf's scripts do")
            dts = {float(t) for t in self._calls[1:] if t is not None}
            if (dts and float(time_increment) not in dts) or None in self._calls[1:]:
                raise ConversionError(
                    f"evaluate: time_increment {time_increment} differs from earlier evaluations "
                    f"({sorted(dts) or [None]}); torchmdf simulates with one step size",
                    location=self._location)
        elif time_increment is None and self._derivatives and len(self._calls) > 0:
            raise ConversionError(
                "evaluate: a later evaluation without a time_increment (which re-initializes time "
                "derivatives in modeci_mdf) is not supported", location=self._location,
                hint="pass the same time_increment to every evaluation after the first")
        self._calls.append(time_increment)

    # -- values -----------------------------------------------------------------------------------

    def _model(self, recorded: frozenset) -> Any:
        from torchmdf.mdf import OutputPort

        g = copy.deepcopy(self.graph)
        for n in g.nodes:
            if not hasattr(n, "input_ports"):
                continue
            for p in n.input_ports:
                if p.id in self._inputs:
                    v = self._inputs[p.id]
                    v = v if isinstance(v, torch.Tensor) else np.asarray(v)
                    p.default_value = v
                    if p.shape is not None:
                        p.shape = tuple(v.shape)
            taken = {o.id for o in n.output_ports}
            for nid, kind, id in sorted(recorded):
                if nid == n.id:
                    name = f"{_PREFIX}{kind}_{id}"
                    if name not in taken:
                        n.output_ports.append(OutputPort(id=name, value=id))
        return self._model_cls(id=f"{self.graph.id}_evaluation", graphs=[g])

    def _trajectories(self, need: tuple[str, str, str] | None) -> tuple[dict, int]:
        from torchmdf.api import simulate

        k = len(self._calls)
        if need is not None and need[1] != "port":
            self._recorded.add(need)
        recorded = frozenset(self._recorded)
        c = self._cache
        if c is not None and c[0] >= k and recorded <= c[1]:
            return c[2], k
        steps = max(k, 2 * c[0]) if c is not None and recorded <= c[1] else k
        dts = [float(t) for t in self._calls[1:] if t is not None]
        traj = simulate(self._model(recorded), steps=steps, dt=dts[0] if dts else 0.01)
        self._cache = (steps, recorded, traj)
        return traj, k

    def _value(self, node_id: str, kind: str, id: str) -> Any:
        if not self._calls:
            return None  # not evaluated yet, as in modeci_mdf
        if self._symbolic is not None:
            return self._symbolic.value(node_id, kind, id)
        traj, k = self._trajectories((node_id, kind, id))
        key = f"{node_id}.{id}" if kind == "port" else f"{node_id}.{_PREFIX}{kind}_{id}"
        if key not in traj:
            raise TorchMDFError(f"no value recorded for {kind} '{id}'", location=f"{self._location} > node '{node_id}'")
        return _numpy(traj[key][k - 1])

    def _execution_list(self) -> list[set]:
        from torchmdf.frontends.mdf import program

        if self._symbolic is not None:
            nodes = {n.id: n for n in self.graph.nodes}
            return [{nodes[i] for i in cs} for cs in self._symbolic.executions]

        prog = program(self._model(frozenset()))
        if prog.dynamic_condition is not None:
            raise ConversionError("execution_list: not available for a graph with Threshold conditions",
                                  location=self._location)
        sch = prog.scheduler()
        nodes = {n.id: n for n in self.graph.nodes}
        out: list[set] = []
        for _ in range(len(self._calls)):
            out.extend({nodes[i] for i in cs} for cs in sch.run())
        return out


class EvaluableParameter:
    """One :class:`torchmdf.mdf.Parameter` evaluated on its own, given the values of the names
    it reads (modeci_mdf's ``EvaluableParameter``): :meth:`evaluate` computes it (with its
    conditions) in a one-node graph whose other parameters hold ``parameters``;
    :meth:`get_current_value` returns the last value without evaluating again."""

    def __init__(self, parameter: Any, verbose: bool = False):
        self.parameter, self.verbose = parameter, verbose
        self.curr_value: Any = None

    def evaluate(self, parameters: dict[str, Any] | None = None, time_increment: Any = None,
                 array_format: str = FORMAT_DEFAULT) -> Any:
        from torchmdf.mdf import Graph, Node, OutputPort, Parameter

        p = copy.deepcopy(self.parameter)
        given = [Parameter(id=k, value=v if isinstance(v, (str, torch.Tensor)) else np.asarray(v))
                 for k, v in (parameters or {}).items() if k != p.id]
        node = Node(id="parameter", parameters=[*given, p],
                    output_ports=[OutputPort(id=f"{_PREFIX}value", value=p.id)])
        eg = EvaluableGraph(Graph(id=f"parameter_{p.id}", nodes=[node]))
        eg.evaluate()
        if time_increment is not None:
            eg.evaluate(time_increment=time_increment)
        self.curr_value = eg.enodes["parameter"].evaluable_outputs[f"{_PREFIX}value"].curr_value
        return self.curr_value

    def get_current_value(self, parameters: dict[str, Any] | None = None, time_increment: Any = None,
                          array_format: str = FORMAT_DEFAULT) -> Any:
        return self.evaluate(parameters, time_increment, array_format) if self.curr_value is None \
            else self.curr_value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except Exception:  # noqa: BLE001 - values numpy cannot compare are not the same
        return False


def main(example_file: str, array_format: str = FORMAT_NUMPY, verbose: bool = False) -> EvaluableGraph:
    """Loads an MDF file, evaluates its first graph once and returns the EvaluableGraph."""
    from torchmdf.mdf import load

    eg = EvaluableGraph(load(example_file).graphs[0], verbose)
    eg.evaluate(array_format=array_format)
    return eg
