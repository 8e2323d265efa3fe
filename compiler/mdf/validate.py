"""Validation of an MDF model: :func:`validate` returns every problem at once, :func:`check`
raises them as one :class:`~torchmdf.errors.ValidationError` (with ``.problems``).

What is checked, and the modeci_mdf behaviour each rule follows:

* types of every field, non-empty string ids, no duplicate ids (graphs in a model, nodes and
  edges in a graph; in a node, input ports, parameters and functions share one namespace
  because expressions refer to them by id; output ports among themselves);
* edges name an existing sender/receiver node and an output/input port on it;
* ``function`` names pass :func:`is_known_function`; ``args`` are names the function takes
  (MDF standard functions: the table in :mod:`.functions`; ``onnx::`` ops: the inputs
  and attributes of ``onnx.defs.get_schema``; variadic ops take any name); an argument the
  function needs must be in ``args`` or be a value of the node with that name (modeci_mdf passes
  the node's values to the function too, which is how ``onnx::Cast`` gets ``to``);
* every expression parses through the whitelist and refers only to the node's input ports,
  parameters and functions (and, inside a function call, its other arguments); a string that is
  exactly an id in scope is a reference to it (``"onnx::Add_1"``), as modelspec reads it;
* a time derivative needs an initial value; a parameter needs some way to get a value;
* cycles: modeci_mdf drops an edge into an input port that has a ``default_value`` from the
  scheduling dependencies (the port reads its default on the first pass, then the sender's
  latest value), and that is the only thing that lets it run a cycle: with no such port it
  either loops forever ordering the edges (no root node) or graph_scheduler refuses the cycle.
  Stateful parameters do not help it.  So a cycle of edges is an error unless an edge on it
  feeds an input port with a ``default_value``;
* conditions: known graph_scheduler types (the table in :mod:`.conditions`), node ids that
  exist, Threshold parameters that exist.

Files declaring a format older than v0.4 (PsyNeuLink writes v0.1) predate the v0.4 function
ontology: their function names and extra arguments come from the generating application, so
unknown function names and extra argument names are accepted there (their values are still
checked).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

import numpy as np
import torch

from torchmdf.errors import ExpressionError, ValidationError

from . import torchmdf_metadata
from .conditions import KNOWN_CONDITION_TYPES, NODE_ARGUMENTS
from .expressions import free_names, parse_in_scope
from .functions import (
    STANDARD_FUNCTIONS,
    function_argument_names,
    is_known_function,
    onnx_signature,
)
from .model import (
    Condition,
    ConditionSet,
    Edge,
    Function,
    Graph,
    InputPort,
    Model,
    Node,
    OutputPort,
    Parameter,
    ParameterCondition,
    _combine,
    format_location,
    seg,
)
from .scheduler import flatten

__all__ = ["validate", "check", "is_known_function", "KNOWN_CONDITION_TYPES", "format_version",
           "string_attribute_names"]

_REDUCE = ("overwrite", "add", "multiply")
_VERSION_RE = re.compile(r"v?(\d{1,9})\.(\d{1,9})")  # bounded: linear on any string


def format_version(fmt: Any) -> tuple[int, int] | None:
    """``"ModECI MDF v0.4"`` -> ``(0, 4)``; None when there is no version to read."""
    if not isinstance(fmt, str):
        return None
    m = _VERSION_RE.search(fmt[:1000])
    return (int(m.group(1)), int(m.group(2))) if m else None


def string_attribute_names(node: Node) -> frozenset[str]:
    """Ids that name a string attribute (onnx type STRING/STRINGS) of an ``onnx::`` function of
    the node.  A parameter with such an id whose value is a string naming nothing in scope holds
    that string itself (``mode: "constant"`` for ``onnx::Pad``), as modeci_mdf passes it."""
    out: set = set()
    for f in (*node.parameters, *node.functions):
        name = getattr(f, "function", None)
        if isinstance(name, str) and name.startswith("onnx::"):
            sig = onnx_signature(name[6:])
            if sig is not None:
                out.update(k for k, t in sig.attributes.items() if t in ("STRING", "STRINGS"))
    return frozenset(out)


def _aten_string_args(name: str) -> frozenset[str]:
    """The string-typed arguments of an ``aten::`` function (enumerations: the file allow-list
    admits no other strings), which a file writes as literal strings."""
    if not name.startswith("aten::"):
        return frozenset()
    from torchmdf.ops.registry import resolve_aten

    ov = resolve_aten(name)
    if ov is None:
        return frozenset()
    out = set()
    for a in ov._schema.arguments:
        t = a.type
        if isinstance(t, torch._C.OptionalType):
            t = t.getElementType()
        if isinstance(t, torch._C.StringType):
            out.add(a.name)
    return frozenset(out)


def _is_id(x: Any) -> bool:
    return type(x) is str and x.strip() != ""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number, np.bool_)) and not isinstance(x, str)


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


def _is_value(x: Any) -> bool:
    return _is_number(x) or _is_array(x) or isinstance(x, (str, list, dict))


def _close(name: str, options: Iterable[str]) -> str | None:
    opts = [o for o in options if isinstance(o, str)]
    m = difflib.get_close_matches(name, opts, n=3) if isinstance(name, str) else []
    if m:
        return "did you mean " + " or ".join(repr(x) for x in m) + "?"
    if opts:
        shown = ", ".join(repr(o) for o in opts[:12]) + (", ..." if len(opts) > 12 else "")
        return f"known here: {shown}"
    return None


class _Validator:
    def __init__(self, model: Any, strict: bool = False):
        self.prefix = model.location if isinstance(model, Model) else None
        self.problems: list[ValidationError] = []
        self.legacy = False
        self.strict = strict

    def extra(self, path: tuple, obj: Any) -> None:
        """Keys kept from a file that MDF does not define: problems only when ``strict``."""
        extra = getattr(obj, "extra", None)
        if extra is None:
            return
        if not isinstance(extra, dict):
            self.type_err(path, "extra", "a mapping", extra)
        elif self.strict:
            for k in extra:
                self.err(path, f"unknown key {k!r}")

    # -- reporting -----------------------------------------------------------------------------

    def err(self, path: tuple, message: str, hint: str | None = None, cls=ValidationError) -> None:
        self.problems.append(cls(message, location=format_location(self.prefix, path), hint=hint))

    def type_err(self, path: tuple, what: str, want: str, got: Any) -> None:
        self.err(path, f"{what} must be {want}, not {type(got).__name__} {_short(got)}")

    def common(self, path: tuple, obj: Any, torchmdf_keys: dict | None = None) -> None:
        self.extra(path, obj)
        if obj.metadata is not None and not isinstance(obj.metadata, dict):
            self.type_err(path, "metadata", "a mapping", obj.metadata)
        if torchmdf_keys is not None:
            for key, want in torchmdf_metadata.problems(obj.metadata, torchmdf_keys):
                self.err(path + ("metadata", "torchmdf", key), want)
        if obj.notes is not None and not isinstance(obj.notes, str):
            self.type_err(path, "notes", "a string", obj.notes)

    def ident(self, path: tuple, obj: Any, kind: str) -> bool:
        ident = getattr(obj, "id", None)
        if ident is None or ident == "":
            self.err(path, f"the {kind} has no id")
            return False
        if not _is_id(ident):
            self.type_err(path, "the id", "a non-empty string", ident)
            return False
        return True

    def unique(self, path: tuple, items: Iterable[tuple[str, Any]], what: str) -> None:
        seen: dict = {}
        for kind, ident in items:
            if not isinstance(ident, (str, int, float, bool)):
                continue
            if ident in seen:
                first = seen[ident]
                both = f"two {kind}s" if first == kind else f"a {first} and a {kind}"
                self.err(path, f"duplicate id {ident!r}: {both} in {what}")
            else:
                seen[ident] = kind

    def listof(self, path: tuple, value: Any, cls: type | tuple, key: str) -> list:
        if not isinstance(value, list):
            self.type_err(path, key, "a list", value)
            return []
        ok = []
        names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        for i, item in enumerate(value):
            if isinstance(item, cls):
                ok.append(item)
            else:
                self.type_err(path + (f"{key}[{i}]",), f"each of {key}", f"a {names}", item)
        return ok

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, path: tuple, field: str, text: str, scope: Any, extra: Any = ()) -> None:
        loc = format_location(self.prefix, path + (field,))
        try:
            tree = parse_in_scope(text, scope if not extra else _Scope(scope, extra), location=loc)
        except ExpressionError as e:
            self.problems.append(e)
            return
        for name in sorted(free_names(tree)):
            if name not in scope and name not in extra:
                near = _close(name, list(scope) + list(extra)) if len(scope) + len(extra) <= 1000 else None
                self.err(path + (field,), f"unknown name {name!r} in the expression {_short(text)}",
                         hint=near, cls=ExpressionError)

    def value(self, path: tuple, field: str, v: Any, scope: Any, extra: Any = (),
              allow_str: bool = True) -> None:
        if v is None:
            return
        if isinstance(v, str):
            if allow_str:
                self.expr(path, field, v, scope, extra)
            else:
                self.type_err(path + (field,), field, "a number or an array", v)
        elif not _is_value(v):
            self.type_err(path + (field,), field, "a number, an array or an expression string", v)
        elif isinstance(v, torch.Tensor) and v.is_complex():
            self.err(path + (field,), f"{field} is a complex tensor, which MDF cannot hold")

    # -- model, graph --------------------------------------------------------------------------

    def model(self, m: Any) -> None:
        if not isinstance(m, Model):
            self.err((), f"expected a torchmdf.mdf.Model, not {type(m).__name__}")
            return
        path = (seg("model", m.id),)
        self.ident(path, m, "model")
        self.common(path, m, torchmdf_metadata.MODEL_KEYS)
        for key in ("format", "generating_application"):
            v = getattr(m, key)
            if v is not None and not isinstance(v, str):
                self.type_err(path, key, "a string", v)
        ver = format_version(m.format)
        self.legacy = ver is not None and ver < (0, 4)
        op = m.onnx_opset_version
        if op is not None and not ((type(op) is int and op > 0) or (isinstance(op, str) and op.isdigit())):
            self.type_err(path, "onnx_opset_version", "a positive integer", op)
        graphs = self.listof(path, m.graphs, Graph, "graphs")
        if isinstance(m.graphs, list) and not m.graphs:
            self.err(path, "the model has no graphs")
        self.unique(path, (("graph", g.id) for g in graphs), "the model")
        for g in graphs:
            self.graph(path + (seg("graph", g.id),), g)

    def graph(self, path: tuple, g: Graph) -> None:
        self.ident(path, g, "graph")
        self.common(path, g, torchmdf_metadata.MODEL_KEYS)
        if g.parameters is not None and not isinstance(g.parameters, dict):
            self.type_err(path, "parameters", "a mapping", g.parameters)
        members = self.listof(path, g.distinct_nodes() if isinstance(g.nodes, list) else g.nodes, (Node, Graph),
                              "nodes")
        edges = self.listof(path, g.edges, Edge, "edges")
        self.unique(path, (("graph" if isinstance(n, Graph) else "node", n.id) for n in members),
                    "the graph")
        self.unique(path, (("edge", e.id) for e in edges), "the graph")
        by_id: dict = {}
        for n in members:
            if isinstance(n, Graph):
                self.graph(path + (seg("graph", n.id),), n)
                if isinstance(n.id, str) and n.id.startswith("LoopSubgraph"):
                    by_id.setdefault(n.id[len("LoopSubgraph"):], n)
            else:
                self.node(path + (seg("node", n.id),), n)
            if isinstance(n.id, (str, int, float, bool)):
                by_id[n.id] = n
        for e in edges:
            self.edge(path + (seg("edge", e.id),), e, by_id)
        self.cycles(path, edges, by_id, members)
        if g.conditions is not None:
            if isinstance(g.conditions, ConditionSet):
                self.condition_set(path + ("conditions",), g.conditions, by_id)
            else:
                self.type_err(path, "conditions", "a ConditionSet", g.conditions)

    # -- node ----------------------------------------------------------------------------------

    def node(self, path: tuple, n: Node) -> None:
        self.ident(path, n, "node")
        self.common(path, n, torchmdf_metadata.NODE_KEYS)
        ips = self.listof(path, n.input_ports, InputPort, "input_ports")
        params = self.listof(path, n.parameters, Parameter, "parameters")
        funcs = self.listof(path, n.functions, Function, "functions")
        ops = self.listof(path, n.output_ports, OutputPort, "output_ports")
        self.unique(path, [("input port", p.id) for p in ips] + [("parameter", p.id) for p in params]
                    + [("function", f.id) for f in funcs], "the node")
        self.unique(path, (("output port", p.id) for p in ops), "the node's output ports")
        scope = frozenset(x.id for x in (*ips, *params, *funcs) if isinstance(x.id, str))
        literal_ok = string_attribute_names(n)
        for p in ips:
            self.input_port(path + (seg("input port", p.id),), p)
        for p in params:
            self.parameter(path + (seg("parameter", p.id),), p, scope,
                           p.id in literal_ok and isinstance(p.value, str) and p.value not in scope)
        for f in funcs:
            self.function(path + (seg("function", f.id),), f, scope)
        self.function_cycles(path, funcs, scope)
        for p in ops:
            self.output_port(path + (seg("output port", p.id),), p, scope)

    def shape(self, path: tuple, shape: Any) -> None:
        if shape is None:
            return
        if not isinstance(shape, (tuple, list)) or not all(
                type(d) is int and d >= 0 for d in shape):
            self.type_err(path, "shape", "a list of non-negative integers", shape)

    def input_port(self, path: tuple, p: InputPort) -> None:
        self.ident(path, p, "input port")
        self.common(path, p, torchmdf_metadata.PORT_KEYS)
        self.shape(path, p.shape)
        if p.type is not None and not isinstance(p.type, str):
            self.type_err(path, "type", "a string", p.type)
        if p.reduce is not None and p.reduce not in _REDUCE:
            self.err(path, f"reduce must be one of {', '.join(_REDUCE)}, not {_short(p.reduce)}")
        v = p.default_value
        if v is not None and (isinstance(v, str) or not _is_value(v)):
            self.type_err(path + ("default_value",), "default_value", "a number or an array", v)

    def output_port(self, path: tuple, p: OutputPort, scope: frozenset) -> None:
        self.ident(path, p, "output port")
        self.common(path, p)
        self.shape(path, p.shape)
        if p.type is not None and not isinstance(p.type, str):
            self.type_err(path, "type", "a string", p.type)
        if p.value is not None:
            if isinstance(p.value, str):
                self.expr(path, "value", p.value, scope)
            else:
                self.type_err(path + ("value",), "value", "an expression string", p.value)

    def parameter(self, path: tuple, p: Parameter, scope: frozenset, literal: bool = False) -> None:
        """``literal``: the value is a string for an ONNX string attribute of the same name."""
        self.ident(path, p, "parameter")
        self.common(path, p, torchmdf_metadata.PARAMETER_KEYS)
        args = p.args if isinstance(p.args, dict) else {}
        arg_names = frozenset(k for k in args if isinstance(k, str))
        if p.value is None and p.function is None and p.default_initial_value is None \
                and p.time_derivative is None and not p.conditions:
            self.err(path, "the parameter has no value, function, default_initial_value, "
                     "time_derivative or conditions")
        if not literal:
            self.value(path, "value", p.value, scope, arg_names)
        self.value(path, "default_initial_value", p.default_initial_value, scope)
        if p.time_derivative is not None:
            if isinstance(p.time_derivative, str):
                self.expr(path, "time_derivative", p.time_derivative, scope)
            elif not _is_number(p.time_derivative):
                self.type_err(path, "time_derivative", "an expression string", p.time_derivative)
            if p.default_initial_value is None:
                self.err(path, "a time_derivative needs a default_initial_value to start from")
        if p.function is not None:
            self.call(path, p.function, p.args, scope)
        elif p.args is not None and p.value is None:
            self.err(path, "args given without a function")
        if isinstance(p.conditions, list):
            conds = self.listof(path, p.conditions, ParameterCondition, "conditions")
            self.unique(path, (("condition", c.id) for c in conds), "the parameter's conditions")
            for c in conds:
                cp = path + (seg("condition", c.id),)
                self.ident(cp, c, "condition")
                self.extra(cp, c)
                if c.test is None:
                    self.err(cp, "the condition has no test")
                self.value(cp, "test", c.test, scope)
                self.value(cp, "value", c.value, scope)
        else:
            self.type_err(path, "conditions", "a list", p.conditions)

    def function(self, path: tuple, f: Function, scope: frozenset) -> None:
        self.ident(path, f, "function")
        self.common(path, f)
        args = f.args if isinstance(f.args, dict) else {}
        if f.function is None and f.value is None:
            self.err(path, "the function has neither a function name nor a value expression")
        if f.function is not None:
            self.call(path, f.function, f.args, scope)
        elif f.args is not None and not isinstance(f.args, dict):
            self.type_err(path, "args", "a mapping", f.args)
        self.value(path, "value", f.value, scope, frozenset(k for k in args if isinstance(k, str)))
        if f.function is None and f.args is not None:
            argset = frozenset(args)
            for k, v in args.items():
                self.value(path + (f"arg {k!r}",), "value", v, scope, _Except(argset, k))

    def call(self, path: tuple, name: Any, args: Any, scope: frozenset) -> None:
        """A ``function`` with its ``args``: a known name, argument names it takes, arguments
        it needs present, argument values well-formed."""
        args_ok = args is None or isinstance(args, dict)
        if not args_ok:
            self.type_err(path, "args", "a mapping", args)
            args = None
        args = args or {}
        for k in args:
            if not _is_id(k):
                self.type_err(path + ("args",), "an argument name", "a non-empty string", k)
        if not isinstance(name, str) or not name:
            self.type_err(path, "function", "a function name", name)
            known = False
        else:
            known = is_known_function(name)
            refusal = None
            if not known and name.startswith("aten::"):  # (only aten:: names are refused by the allow-list)
                from torchmdf.ops.registry import file_op_refusal

                refusal = file_op_refusal(name)
            if refusal is not None and name.startswith("aten::") and refusal != "no such ATen op":
                self.err(path + ("function",), f"a model file may not call {name}: {refusal}",
                         hint="model files may name the MDF standard functions, ONNX ops, registered ops "
                         "and pure, memory-safe core ATen ops")
            elif not known and not self.legacy:
                hint = _close(name, STANDARD_FUNCTIONS)
                if "::" not in name and name not in STANDARD_FUNCTIONS:
                    hint = (hint + " " if hint and hint.startswith("did") else "") + \
                        "functions are MDF standard functions, onnx::<Op> or aten::<op>"
                self.err(path + ("function",), f"unknown function {name!r}", hint=hint)
        sig = onnx_signature(name[6:]) if known and name.startswith("onnx::") else None
        if known:
            takes = function_argument_names(name)
            std = STANDARD_FUNCTIONS.get(name)
            if takes is not None and not (sig is not None and sig.variadic) and \
                    not (self.legacy and std is not None):
                extra = [k for k in args if isinstance(k, str) and k not in takes]
                if extra:
                    order = std.arguments if std is not None else sorted(takes)
                    self.err(path + ("args",), f"{name} does not take the argument(s) "
                             f"{', '.join(map(repr, extra))}", hint=f"{name} takes {', '.join(order)}")
            need: tuple = ()
            if std is not None and std.kind == "mdf":
                need = std.arguments
            elif sig is not None:
                need = sig.required_inputs + sig.required_attributes
            missing = [a for a in need if a not in args and a not in scope]
            if missing and args_ok:
                self.err(path + ("args",), f"{name} needs the argument(s) {', '.join(map(repr, missing))}",
                         hint="give them in args or as values of the node with those ids")
        arg_names = frozenset(k for k in args if isinstance(k, str))
        for k, v in args.items():
            ap = path + (f"arg {k!r}",)
            if v is None:
                self.err(ap, "the argument has no value")
                continue
            if isinstance(v, str) and sig is not None and sig.attributes.get(k) in ("STRING", "STRINGS") \
                    and v not in scope:
                continue  # a literal string attribute, e.g. onnx::Pad mode "constant"
            if isinstance(v, str) and isinstance(name, str) and k in _aten_string_args(name) and v not in scope:
                continue  # likewise an ATen string argument (div rounding_mode "floor")
            if isinstance(v, str):
                self.expr(ap, "value", v, scope, _Except(arg_names, k))
            elif not _is_value(v):
                self.type_err(ap, "the argument", "a number, an array or an expression string", v)

    def function_cycles(self, path: tuple, funcs: list, scope: frozenset) -> None:
        """modeci_mdf orders a node's functions by what they use and gives up on a cycle."""
        ids = {f.id for f in funcs if isinstance(f.id, str)}
        deps: dict = {}
        for f in funcs:
            if not isinstance(f.id, str):
                continue
            used: set = set()
            texts = [f.value] + (list(f.args.values()) if isinstance(f.args, dict) else [])
            for t in texts:
                if isinstance(t, str):
                    try:
                        used |= free_names(parse_in_scope(t, scope))
                    except ExpressionError:
                        pass
            if isinstance(f.args, dict):
                used -= set(f.args)
            deps[f.id] = sorted(used & ids)
        for comp in _cycles(deps):
            self.err(path, "the functions " + ", ".join(map(repr, comp)) + " depend on each other "
                     "in a cycle", hint="a function can use another only if that one does not use it")

    # -- edges and cycles ----------------------------------------------------------------------

    def edge(self, path: tuple, e: Edge, by_id: dict) -> None:
        self.ident(path, e, "edge")
        self.common(path, e)
        ok = True
        for key in ("sender", "receiver", "sender_port", "receiver_port"):
            v = getattr(e, key)
            if not _is_id(v):
                self.type_err(path, key, "a non-empty string", v)
                ok = False
        if e.parameters is not None:
            if not isinstance(e.parameters, dict):
                self.type_err(path, "parameters", "a mapping", e.parameters)
            else:
                w = e.parameters.get("weight")
                if w is not None and (isinstance(w, str) or not _is_value(w) or isinstance(w, dict)):
                    self.type_err(path + ("parameters", "weight"), "weight", "a number or an array", w)
        if not ok:
            return
        for end, port, kind in ((e.sender, e.sender_port, "output"), (e.receiver, e.receiver_port, "input")):
            target = by_id.get(end)
            role = "sender" if kind == "output" else "receiver"
            if target is None:
                self.err(path, f"the {role} node {end!r} does not exist", hint=_close(end, by_id))
                continue
            if isinstance(target, Graph):
                continue  # a nested graph declares no ports of its own
            ports = target.output_ports if kind == "output" else target.input_ports
            ids = [p.id for p in ports if isinstance(p, (InputPort, OutputPort))]
            if port not in ids:
                self.err(path, f"the {role} node {end!r} has no {kind} port {port!r}",
                         hint=_close(port, ids) or f"node {end!r} has no {kind} ports")

    def cycles(self, path: tuple, edges: list, by_id: dict, members: list) -> None:
        deps: dict = {n.id: [] for n in members if isinstance(n.id, (str, int, float, bool))}
        for e in edges:
            if not (_is_id(e.sender) and _is_id(e.receiver)):
                continue  # reported by edge()
            s, r = by_id.get(e.sender), by_id.get(e.receiver)
            if s is None or r is None:
                continue
            if isinstance(r, Node):
                port = next((p for p in r.input_ports if isinstance(p, InputPort)
                             and p.id == e.receiver_port), None)
                if port is not None and port.default_value is not None:
                    continue  # modeci_mdf: not a scheduling dependency; breaks the cycle
            deps.setdefault(s.id, []).append(r.id)
        for comp in _cycles(deps):
            self.err(path, "the edges between the nodes " + ", ".join(map(repr, comp)) +
                     " form a cycle that nothing breaks",
                     hint="give an input port on the cycle a default_value (its edge then carries "
                     "the previous evaluation's value, as in modeci_mdf); stateful parameters "
                     "alone do not let modeci_mdf run a cycle")

    # -- conditions ----------------------------------------------------------------------------

    def condition_set(self, path: tuple, cs: ConditionSet, by_id: dict) -> None:
        self.common(path, cs)
        for key in ("node_specific", "termination"):
            conds = getattr(cs, key)
            if conds is None:
                continue
            if not isinstance(conds, dict):
                self.type_err(path, key, "a mapping", conds)
                continue
            for k, c in conds.items():
                p = path + (f"{key} {k!r}",)
                if key == "node_specific" and k not in by_id:
                    self.err(p, f"a condition for the node {k!r}, which does not exist",
                             hint=_close(k, by_id))
                elif not isinstance(k, str):
                    self.type_err(p, "a time scale", "a string", k)
                self.condition(p, c, by_id, 0)

    def condition(self, path: tuple, c: Any, by_id: dict, depth: int) -> None:
        if depth > 50:
            self.err(path, "conditions nested too deeply")
            return
        if not isinstance(c, Condition):
            self.type_err(path, "a condition", "a Condition", c)
            return
        self.common(path, c)
        if not isinstance(c.type, str):
            self.type_err(path, "type", "a condition type name", c.type)
        elif c.type not in KNOWN_CONDITION_TYPES:
            self.err(path, f"unknown condition type {c.type!r}", hint=_close(c.type, sorted(KNOWN_CONDITION_TYPES)))
        if not isinstance(c.kwargs, dict):
            self.type_err(path, "kwargs", "a mapping", c.kwargs)
            return
        for k, v in c.kwargs.items():
            kp = path + (f"kwargs {k!r}",)
            items = v if isinstance(v, list) else [v]
            for item in items:
                if isinstance(item, Condition):
                    self.condition(kp, item, by_id, depth + 1)
                elif k in NODE_ARGUMENTS and isinstance(item, str) and item not in by_id:
                    self.err(kp, f"the condition depends on the node {item!r}, which does not exist",
                             hint=_close(item, by_id))
        if c.type == "Threshold":
            dep, par = c.kwargs.get("dependency"), c.kwargs.get("parameter")
            node = by_id.get(dep) if isinstance(dep, str) else None
            if isinstance(node, Node) and isinstance(par, str):
                names = node.names() + [p.id for p in node.output_ports]
                if par not in names:
                    self.err(path + ("kwargs 'parameter'",),
                             f"the node {dep!r} has no parameter, port or function {par!r}",
                             hint=_close(par, names))


class _Except:
    """``names`` without ``k`` (a call's other arguments), in O(1) instead of a new set."""

    __slots__ = ("names", "k")

    def __init__(self, names: frozenset, k: Any):
        self.names, self.k = names, k

    def __contains__(self, x: Any) -> bool:
        return x != self.k and x in self.names

    def __iter__(self):
        return (n for n in self.names if n != self.k)

    def __len__(self) -> int:
        return len(self.names) - (self.k in self.names)


class _Scope:
    """Names in scope for an argument: the node's plus the call's other arguments."""

    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any):
        self.a, self.b = a, b

    def __contains__(self, x: Any) -> bool:
        return x in self.a or x in self.b


def _cycles(deps: dict) -> list[list]:
    """The strongly connected components that are cycles (several members, or a self-loop),
    members in insertion order; iterative Tarjan, so deep graphs cannot hit the recursion limit."""
    index: dict = {}
    low: dict = {}
    on: set = set()
    stack: list = []
    out: list[list] = []
    counter = 0
    order = {k: i for i, k in enumerate(deps)}
    for root in deps:
        if root in index:
            continue
        work = [(root, iter(deps.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(deps.get(w, ()))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in deps.get(v, ()):
                    out.append(sorted(comp, key=lambda x: order.get(x, len(order))))
    return out


def _short(v: Any, limit: int = 60) -> str:
    if isinstance(v, torch.Tensor):
        return f"(tensor of shape {tuple(v.shape)})"
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def validate(model: Model, *, lowering: bool = True, strict: bool = False) -> list[ValidationError]:
    """Every problem of the model (an empty list when it is valid), each located by file and
    MDF path (``file 'm.json' > model 'm' > graph 'g' > node 'A' > parameter 'slope'``).

    With ``lowering`` (the default), a structurally valid model is also lowered the way
    ``compile`` and ``simulate`` lower it (every graph; the first evaluation and a later one;
    the default passes: constant folding, shape inference; the size limits), so "valid"
    means "compiles": bad condition arguments, unknown cast types and shape mismatches that
    can be seen without running are reported too.  ``load`` checks only the structure.
    ``strict=True`` also reports the keys MDF does not define that a file carried (kept on
    each object's ``extra``; ``load`` keeps them with a warning)."""
    from torchmdf.api import gc_paused

    with gc_paused():
        v = _Validator(model, strict)
        v.model(model)
        if isinstance(model, Model):  # [issue 17] a weight still in its sidecar cannot be checked or run
            from .weights import unresolved_references

            v.problems.extend(unresolved_references(model))
        if v.problems or not lowering or not isinstance(model, Model):
            return v.problems
        return _lowering_problems(model)


def _evaluations_differ(prog: Any, s0: list, s1: list) -> bool:
    """Whether a later evaluation lowers to something other than the first: another schedule,
    state (a stateful parameter, a parameter with conditions) or a cycle (an edge into a port
    with a default value, carrying the previous evaluation's value)."""
    if s0 != s1 or prog.has_conditions:
        return True
    for n in prog.nodes:
        for p in getattr(n, "parameters", None) or ():
            if p.conditions or p.is_stateful():
                return True
    return any(prog.incoming[n.id][port.id] for n in prog.nodes for port in n.input_ports
               if port.default_value is not None)


def _lowering_problems(model: Model) -> list[ValidationError]:
    from torchmdf.errors import TorchMDFError
    from torchmdf.frontends.mdf import program
    from torchmdf.limits import check_graph_sizes
    from torchmdf.passes import run_passes

    out: list[ValidationError] = []
    for mg in model.graphs:
        try:
            prog = program(model, mg.id)
            if prog.dynamic_condition is not None:
                continue  # simulate schedules it between node runs: conditions parsed above
            scheds = prog.schedules(2)
            s0 = flatten(next(scheds))
            segs = [prog.segment(s0, first=True, dt=None)]
            s1 = next(scheds, None)
            if s1 is not None and _evaluations_differ(prog, s0, flatten(s1)):
                segs.append(prog.segment(flatten(s1), first=False, dt=0.01, ran_before=frozenset(s0)))
            for seg in segs:
                g = prog.finish(seg)
                g, _ = run_passes(g, None, verify_each=False)
                check_graph_sizes(g)
        except TorchMDFError as e:
            out.append(e if isinstance(e, ValidationError) else
                       ValidationError(e.raw_message, location=e.location or model.location, hint=e.hint))
        except Exception as e:  # noqa: BLE001 - still a located problem, never a traceback
            out.append(ValidationError(f"cannot be compiled: {type(e).__name__}: {str(e)[:300]}",
                                       location=f"{model.location} > graph '{mg.id}'"
                                       if model.location else f"graph '{mg.id}'"))
    return out


def check(model: Model, *, strict: bool = False) -> None:
    """Raise one ValidationError (``.problems`` lists each) if the model has any problem."""
    problems = validate(model, lowering=False, strict=strict)
    if problems:
        raise _combine(problems, model.location if isinstance(model, Model) else None)
