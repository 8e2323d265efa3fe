"""The graph_scheduler condition types an MDF file may name, as one table.

Each :class:`ConditionType` says what a Condition's ``type`` takes (its argument names, as
graph_scheduler's class takes them) and how it compiles to a
:class:`~torchmdf.mdf.scheduler.CompiledCondition`, or why torchmdf refuses it.  Validation
(:mod:`torchmdf.mdf.validate`: known types, node arguments) and the scheduler
(:class:`ConditionCompiler`, used by :mod:`torchmdf.frontends.mdf`) read the same table, so a
new condition type is one entry here.

Arguments follow modeci_mdf's conventions: a ``dependencies`` key stands for one
``dependency``, and a list for ``*args``.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import numpy as np
import torch

from torchmdf.errors import ConversionError, ValidationError

from .attributes import as_tensor, port_default
from .scheduler import CSE, ES, ESU, PASS, TIME_SCALES, CompiledCondition, Scheduler, time_scale

__all__ = ["ConditionType", "CONDITION_TYPES", "KNOWN_CONDITION_TYPES", "NODE_ARGUMENTS",
           "ConditionCompiler", "threshold_getter"]

#: Condition arguments that name nodes of the graph (validation checks they exist).
NODE_ARGUMENTS = ("dependency", "dependencies")

_COMPARATORS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
_TORCH_COMPARATORS = {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge}


@dataclass(frozen=True, slots=True)
class ConditionType:
    """One condition type: ``args`` are the keyword arguments it takes; ``compile(a)`` (``a``
    an :class:`_Args`) returns the compiled condition, or raises the located reason it is
    refused; None: known to graph_scheduler, not supported by torchmdf."""

    name: str
    args: tuple[str, ...]
    compile: Callable[[_Args], CompiledCondition] | None
    doc: str = ""


class _Args:
    """The arguments of one Condition being compiled, read with modeci_mdf's conventions;
    every bad argument is a located ValidationError."""

    __slots__ = ("cc", "t", "kw", "owner", "where")

    def __init__(self, cc: ConditionCompiler, t: str, kw: dict[str, Any], owner: str | None, where: str):
        self.cc, self.t, self.kw, self.owner, self.where = cc, t, kw, owner, where

    def node(self, name: str = "dependency") -> str:
        kw = self.kw
        v = kw.get(name, kw.get("dependencies") if name == "dependency" else None)
        if isinstance(v, list) and len(v) == 1:
            v = v[0]
        if not isinstance(v, str) or v not in self.cc.by_id:
            raise ValidationError(f"{self.t} needs '{name}': the id of a node of this graph, got {v!r}",
                                  location=self.where)
        return v

    def nodes(self, name: str = "dependencies") -> list[str]:
        v = self.kw.get(name, [])
        v = v if isinstance(v, list) else [v]
        for x in v:
            if not isinstance(x, str) or x not in self.cc.by_id:
                raise ValidationError(f"{self.t}: {x!r} is not the id of a node of this graph", location=self.where)
        return list(v)

    def integer(self, name: str = "n", default: Any = ...) -> int:
        v = self.kw.get(name, default)
        if v is ... or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or int(v) != v:  # inf/nan: int() raises OverflowError/ValueError (long profile)
            raise ValidationError(f"{self.t} needs an integer '{name}', got {v!r}", location=self.where)
        return int(v)

    def scale(self, default: int) -> int:
        v = self.kw.get("time_scale")
        if v is None:
            return default
        ts = time_scale(v)
        if ts is None:
            raise ValidationError(f"{self.t}: unknown time_scale {v!r}", location=self.where,
                                  hint="one of " + ", ".join(TIME_SCALES))
        return ts

    def condition(self, name: str = "condition") -> CompiledCondition:
        return self.cc.compile(self.kw.get(name), self.owner, self.where)

    def conditions(self) -> list[CompiledCondition]:
        from .model import Condition

        out: list[CompiledCondition] = []
        for v in self.kw.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, Condition):
                    out.append(self.cc.compile(x, self.owner, self.where))
                else:
                    raise ValidationError(f"{self.t} combines conditions, got {x!r}", location=self.where)
        return out

    def cond(self, ok: Callable[[Scheduler], bool], **kw: Any) -> CompiledCondition:
        return CompiledCondition(ok, self.where, **kw)


# ---------------------------------------------------------------------------------------------
# The entries
# ---------------------------------------------------------------------------------------------

def _all(a: _Args) -> CompiledCondition:
    parts = a.conditions()
    return a.cond(lambda s: s.all_of(parts), parts=tuple(parts), absolute=_absolute_of(parts))


def _any(a: _Args) -> CompiledCondition:
    parts = a.conditions()
    return a.cond(lambda s: s.any_of(parts), parts=tuple(parts), absolute=_absolute_of(parts))


def _absolute_of(parts: list[CompiledCondition]) -> tuple[list[Fraction], list[Fraction]] | None:
    """graph_scheduler's All/Any: absolute when a part is; its intervals and fixed points."""
    found = [p.absolute for p in parts if p.absolute is not None]
    if not found:
        return None
    return [i for iv, _ in found for i in iv], [f for _, fixed in found for f in fixed]


def _not(a: _Args) -> CompiledCondition:
    inner = a.condition()
    return a.cond(lambda s: s.negate(inner.ok(s)), parts=(inner,))


def _nwhen(a: _Args) -> CompiledCondition:
    inner = a.condition()
    limit = a.integer("n", 1)
    box = [0]

    def nwhen(s: Scheduler) -> Any:
        if s.masked:
            return s.nwhen(box, inner, limit)
        if box[0] < limit and inner.ok(s):
            box[0] += 1
            return True
        return False
    return a.cond(nwhen, history=True, parts=(inner,))


def _every_n_calls(a: _Args) -> CompiledCondition:
    return a.cc.every_n_calls(a.node(), a.integer(), a.owner, a.where)


def _calls(cmp: Callable[[int, int], bool]) -> Callable[[_Args], CompiledCondition]:
    """A count of a dependency's runs at a time scale, compared with ``n``."""
    def compile(a: _Args) -> CompiledCondition:
        dep, n, ts = a.node(), a.integer(), a.scale(ESU)
        return a.cond(lambda s: cmp(s.counts[ts][dep], n), history=ts > ESU)
    return compile


def _after_n_calls_combined(a: _Args) -> CompiledCondition:
    deps, n, ts = a.nodes(), a.integer(), a.scale(ESU)
    return a.cond(lambda s: sum(s.counts[ts][d] for d in deps) >= n, history=ts > ESU, cost=len(deps))


def _just_ran(a: _Args) -> CompiledCondition:
    dep = a.node()
    return a.cond(lambda s: s.just_ran(dep), justran=True)


def _all_have_run(a: _Args) -> CompiledCondition:
    deps, ts = a.nodes(), a.scale(ESU)
    if not deps and ts == ESU:
        return a.cond(lambda s: s.ran_this_run == len(s.nodes))
    return a.cond(lambda s: s.conjunction(s.counts[ts][d] >= 1 for d in (deps or s.nodes)), history=ts > ESU,
                  cost=len(deps) or len(a.cc.ids))


def _clock(query: int, default: int, how: str) -> Callable[[_Args], CompiledCondition]:
    """The clock relative to a coarser time scale (default ``default``), compared with ``n``."""
    def compile(a: _Args) -> CompiledCondition:
        n, ts = a.integer(), a.scale(default)
        if how == "%" and n == 0:
            raise ValidationError(f"{a.t} needs n > 0", location=a.where)
        return clock(query, ts, how, n, a.where)
    return compile


def clock(query: int, base: int, how: str, n: int, where: str) -> CompiledCondition:
    """Holds when the count of ``query`` relative to ``base`` compares with ``n`` by ``how``."""
    if base <= query:
        raise ConversionError("the time_scale must be coarser than what the condition counts",
                              location=where)

    def ok(s: Scheduler) -> bool:
        x = s.relative(query, base, where)
        return {"<": x < n, "==": x == n, ">": x > n, ">=": x >= n}[how] if how != "%" else x % n == 0
    return CompiledCondition(ok, where, history=base > ESU or query == ESU)


def _at_esu_n_start(a: _Args) -> CompiledCondition:
    parts = (clock(PASS, ESU, "==", 0, a.where), clock(ESU, a.scale(ES), "==", a.integer(), a.where))
    return a.cond(lambda s: s.all_of(parts), parts=parts)


def _environment_sequence(ok_for: Callable[[int], bool]) -> Callable[[_Args], CompiledCondition]:
    """modeci_mdf never ends an environment sequence: its index stays 0."""
    def compile(a: _Args) -> CompiledCondition:
        ok = ok_for(a.integer())
        return a.cond(lambda s: ok)
    return compile


def _at_es_n_start(a: _Args) -> CompiledCondition:
    n = a.integer()
    at0 = clock(ESU, ES, "==", 0, a.where)
    return a.cond(lambda s: s.all_of((at0,)) if n == 0 else False, parts=(at0,))


#: Time units an absolute-time condition may name, in seconds (graph_scheduler uses pint; a model
#: file's unit is looked up here, never parsed as an expression).
_TIME_UNITS = {"s": Fraction(1), "second": Fraction(1), "ms": Fraction(1, 10**3), "millisecond": Fraction(1, 10**3),
               "us": Fraction(1, 10**6), "microsecond": Fraction(1, 10**6), "ns": Fraction(1, 10**9),
               "nanosecond": Fraction(1, 10**9), "ps": Fraction(1, 10**12), "picosecond": Fraction(1, 10**12)}
_QUANTITY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*")


def _time(a: _Args, name: str, unit: Fraction) -> Fraction | None:
    """A time argument (a number of ``unit``, or a string such as ``"2 ms"``) in seconds,
    exact (a float as its decimal digits)."""
    v = a.kw.get(name)
    if v is None:
        return None
    if isinstance(v, str):
        m = _QUANTITY.fullmatch(v) if len(v) < 64 else None
        if m is None or (m.group(2) and m.group(2) not in _TIME_UNITS):
            raise ValidationError(f"{a.t}: {name} must be a number or a time such as '2ms', got {v!r}",
                                  location=a.where, hint="units: " + ", ".join(_TIME_UNITS))
        return Fraction(m.group(1)) * (_TIME_UNITS[m.group(2)] if m.group(2) else unit)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValidationError(f"{a.t}: {name} must be a time of at least 0, got {v!r}", location=a.where)
    return Fraction(repr(v)) * unit


def _time_unit(a: _Args) -> Fraction:
    u = a.kw.get("unit", "ms")
    u = u.split(".")[-1] if isinstance(u, str) else u  # "TimeUnit.ms", as pint prints it
    if not isinstance(u, str) or u not in _TIME_UNITS:
        raise ValidationError(f"{a.t}: unknown time unit {u!r}", location=a.where, hint="one of " + ", ".join(_TIME_UNITS))
    return _TIME_UNITS[u]


def _flag(a: _Args, name: str) -> bool:
    v = a.kw.get(name, True)
    if not isinstance(v, bool):
        raise ValidationError(f"{a.t}: {name} must be true or false, got {v!r}", location=a.where)
    return v


def _time_interval(a: _Args) -> CompiledCondition:
    """graph_scheduler's TimeInterval: every ``repeat`` of absolute time, at/after ``start``,
    before/through ``end`` (the repeat counted from the owner's consideration set's offset in a
    pass, or from ``start`` when the graph has one consideration set)."""
    unit = _time_unit(a)
    repeat, start, end = (_time(a, k, unit) for k in ("repeat", "start", "end"))
    start_inclusive, end_inclusive = _flag(a, "start_inclusive"), _flag(a, "end_inclusive")
    if repeat is start is end is None:
        raise ValidationError("TimeInterval needs at least one of repeat, start, end", location=a.where)
    if start is not None and end is not None and start > end:
        raise ValidationError(f"TimeInterval: start ({a.kw['start']}) is later than end ({a.kw['end']})",
                              location=a.where)
    if repeat == 0:
        raise ValidationError("TimeInterval: repeat must be more than 0", location=a.where)
    owner, where = a.owner, a.where

    def ok(s: Scheduler) -> bool:
        now = s.absolute
        if repeat is not None:
            if len(s.queue) == 1 and start is not None:
                offset = start
            elif owner is not None:
                offset = s.queue_index[owner] * s.absolute_interval
            else:
                raise ConversionError("a TimeInterval with a repeat needs an owner node (or a graph of one "
                                      "consideration set) when it is a termination condition", location=where)
            if (now - offset) % repeat != 0:
                return False
        if start is not None and (now < start if start_inclusive else now <= start):
            return False
        return end is None or (now <= end if end_inclusive else now < end)
    fixed = [t for t, inc in ((start, start_inclusive), (end, end_inclusive)) if t is not None and inc]
    return a.cond(ok, history=True, absolute=([repeat] if repeat is not None else [], fixed))


def _time_termination(a: _Args) -> CompiledCondition:
    """graph_scheduler's TimeTermination: at/after absolute time ``t``."""
    unit = _time_unit(a)
    t = _time(a, "t", unit)
    if t is None:
        raise ValidationError("TimeTermination needs a time 't'", location=a.where)
    inclusive = _flag(a, "inclusive")
    return a.cond(lambda s: s.absolute >= t if inclusive else s.absolute > t, history=True,
                  absolute=([], [t] if inclusive else []))


def _threshold(a: _Args) -> CompiledCondition:
    kw, where = a.kw, a.where
    dep = a.node()
    name = kw.get("parameter")
    n = a.cc.by_id[dep]
    if not isinstance(name, str) or name not in {*(p.id for p in n.input_ports), *(p.id for p in n.parameters),
                                                 *(f.id for f in n.functions), *(p.id for p in n.output_ports)}:
        raise ValidationError(f"Threshold: node {dep!r} has no parameter, port or function {name!r}",
                              location=where)
    comparator = kw.get("comparator")
    if comparator not in ("<", "<=", ">", ">=", "==", "!="):
        raise ValidationError(f"Threshold: comparator must be one of <, <=, >, >=, ==, !=, got {comparator!r}",
                              location=where)
    threshold = kw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValidationError(f"Threshold needs a number 'threshold', got {threshold!r}", location=where)
    indices = kw.get("indices")
    ts = time_scale(indices) if isinstance(indices, str) else None
    indices = [ts] if ts is not None else indices
    if indices is not None and not isinstance(indices, list):
        indices = [indices]
    atol, rtol = float(kw.get("atol", 0) or 0), float(kw.get("rtol", 0) or 0)

    def ok(s: Scheduler) -> bool:
        if s.value_of is None:
            raise ConversionError("a Threshold condition depends on values computed while the graph "
                                  "runs, so the schedule is not known before it runs", location=where,
                                  hint="torchmdf.simulate() runs such graphs")
        v = s.value_of(dep, name)
        if s.masked:  # one value per batch element: a mask
            v = torch.as_tensor(v).detach()
            for i in indices or ():
                v = v[:, i]
            v = v.reshape(v.shape[0]).double()
            if comparator in ("==", "!="):
                close = torch.isclose(v, torch.full_like(v, float(threshold)), atol=atol, rtol=rtol)
                return close if comparator == "==" else ~close
            return _TORCH_COMPARATORS[comparator](v, float(threshold))
        for i in indices or ():
            v = v[i]
        v = float(v)
        if comparator == "==":
            return bool(np.isclose(v, threshold, atol=atol, rtol=rtol))
        if comparator == "!=":
            return not bool(np.isclose(v, threshold, atol=atol, rtol=rtol))
        return bool(_COMPARATORS[comparator](v, threshold))
    return a.cond(ok, dynamic=True)


_DEP = ("dependency",)
_CALLS = ("dependency", "n", "time_scale")
_CLOCK = ("n", "time_scale")
_ES_DOC = "environment sequences never end in modeci_mdf: the index stays 0"


def _entries() -> list[ConditionType]:
    ct = ConditionType
    out = [
        ct("Always", (), lambda a: a.cond(lambda s: True)),
        ct("Never", (), lambda a: a.cond(lambda s: False)),
        ct("All", ("*conditions",), _all), ct("And", ("*conditions",), _all),
        ct("Any", ("*conditions",), _any), ct("Or", ("*conditions",), _any),
        ct("Not", ("condition",), _not),
        ct("NWhen", ("condition", "n"), _nwhen),
        ct("EveryNCalls", ("dependency", "n"), _every_n_calls),
        ct("BeforeNCalls", _CALLS, _calls(operator.lt)), ct("AtNCalls", _CALLS, _calls(operator.eq)),
        ct("AfterCall", _CALLS, _calls(operator.gt)), ct("AfterNCalls", _CALLS, _calls(operator.ge)),
        ct("AfterNCallsCombined", ("*dependencies", "n", "time_scale"), _after_n_calls_combined),
        ct("JustRan", _DEP, _just_ran),
        ct("AllHaveRun", ("*dependencies", "time_scale"), _all_have_run),
        ct("AtEnvironmentStateUpdateStart", (), lambda a: clock(PASS, ESU, "==", 0, a.where)),
        ct("AtEnvironmentStateUpdateNStart", _CLOCK, _at_esu_n_start),
        ct("AtEnvironmentSequence", ("n",), _environment_sequence(lambda n: 0 == n), _ES_DOC),
        ct("AfterEnvironmentSequence", ("n",), _environment_sequence(lambda n: 0 > n), _ES_DOC),
        ct("AfterNEnvironmentSequences", ("n",), _environment_sequence(lambda n: 0 >= n), _ES_DOC),
        ct("AtEnvironmentSequenceStart", (), lambda a: clock(ESU, ES, "==", 0, a.where), _ES_DOC),
        ct("AtEnvironmentSequenceNStart", ("n",), _at_es_n_start, _ES_DOC),
        ct("Threshold", ("dependency", "parameter", "threshold", "comparator", "indices", "atol", "rtol"),
           _threshold, "reads values computed while the graph runs: simulate() only"),
        ct("TimeInterval", ("repeat", "start", "end", "unit", "start_inclusive", "end_inclusive"),
           _time_interval, "graph_scheduler's absolute time, exact (fractions of a second)"),
        ct("TimeTermination", ("t", "inclusive", "unit"), _time_termination,
           "graph_scheduler's absolute time, exact (fractions of a second)"),
    ]
    clocks = {"BeforePass": (PASS, ESU, "<"), "AtPass": (PASS, ESU, "=="), "AfterPass": (PASS, ESU, ">"),
              "AfterNPasses": (PASS, ESU, ">="), "EveryNPasses": (PASS, ESU, "%"),
              "BeforeConsiderationSetExecution": (CSE, ESU, "<"),
              "AtConsiderationSetExecution": (CSE, ESU, "=="),
              "AfterConsiderationSetExecution": (CSE, ESU, ">"),
              "AfterNConsiderationSetExecutions": (CSE, ESU, ">="),
              "BeforeEnvironmentStateUpdate": (ESU, ES, "<"), "AtEnvironmentStateUpdate": (ESU, ES, "=="),
              "AfterEnvironmentStateUpdate": (ESU, ES, ">"),
              "AfterNEnvironmentStateUpdates": (ESU, ES, ">=")}
    out += [ct(name, _CLOCK, _clock(*spec)) for name, spec in clocks.items()]
    # known to graph_scheduler (so they validate), not supported when scheduling
    out += [ct("WhenFinished", _DEP, None), ct("WhenFinishedAll", ("*dependencies",), None),
            ct("WhenFinishedAny", ("*dependencies",), None), ct("While", ("func", "*args"), None),
            ct("WhileNot", ("func", "*args"), None)]
    return out


#: graph_scheduler (1.2) condition classes a Condition's ``type`` may name -> their entry.
CONDITION_TYPES: dict[str, ConditionType] = {c.name: c for c in _entries()}
KNOWN_CONDITION_TYPES = frozenset(CONDITION_TYPES)
_SUPPORTED = ("Always, Never, All, Any, Not, NWhen, EveryNCalls, AfterNCalls and the other call counts, "
              "JustRan, AllHaveRun, the Pass, ConsiderationSetExecution and EnvironmentStateUpdate "
              "families, Threshold, TimeInterval, TimeTermination")


# ---------------------------------------------------------------------------------------------
# Compiling a graph's conditions
# ---------------------------------------------------------------------------------------------

class ConditionCompiler:
    """Compiles the conditions of one MDF graph for :class:`~torchmdf.mdf.scheduler.Scheduler`:
    ``by_id``/``ids`` are the graph's nodes, ``deps`` their scheduling dependencies, ``loc``
    turns an MDF path into a located one.  ``watch`` collects the (owner, dependency) pairs
    EveryNCalls reads."""

    def __init__(self, by_id: dict[str, Any], ids: list[str], deps: dict[str, list[str]],
                 loc: Callable[[str], str]):
        self.by_id = by_id
        self.ids = ids
        self.deps = deps
        self.loc = loc
        self.watch: dict[str, dict[str, None]] = {}

    def graph(self, cs: Any, base: str) -> tuple[dict[str, CompiledCondition], CompiledCondition,
                                                 CompiledCondition]:
        """The node conditions (defaults where the file gives none: ``Always`` without
        dependencies, ``EveryNCalls(dep, 1)`` for each dependency) and the two termination
        conditions (default ``AllHaveRun`` and never)."""
        cbase = f"{base} > conditions"
        node_specific = (getattr(cs, "node_specific", None) or {}) if cs is not None else {}
        termination = (getattr(cs, "termination", None) or {}) if cs is not None else {}
        conds: dict[str, CompiledCondition] = {}
        for nid, c in node_specific.items():
            where = self.loc(f"{cbase} > node_specific {nid!r}")
            if nid not in self.by_id:
                raise ValidationError(f"a condition for the node {nid!r}, which does not exist", location=where)
            conds[nid] = self.compile(c, nid, where)
        for nid in self.ids:
            if nid in conds:
                continue
            deps = self.deps[nid]
            where = self.loc(f"{base} > node '{nid}' (default condition)")
            if not deps:
                conds[nid] = CompiledCondition(lambda s: True, where)
            else:
                parts = [self.every_n_calls(d, 1, nid, where) for d in deps]
                conds[nid] = CompiledCondition(lambda s, parts=parts: s.all_of(parts), where)
        term: dict[int, CompiledCondition] = {}
        for scale, c in termination.items():
            where = self.loc(f"{cbase} > termination {scale!r}")
            ts = time_scale(scale)
            if ts not in (ESU, ES):
                raise ConversionError(f"termination conditions are supported for environment_state_update "
                                      f"and environment_sequence, not {scale!r}", location=where)
            term[ts] = self.compile(c, None, where)
        all_have_run = CompiledCondition(lambda s: s.ran_this_run == len(s.nodes), self.loc(cbase))
        never = CompiledCondition(lambda s: False, self.loc(cbase))
        return conds, term.get(ESU, all_have_run), term.get(ES, never)

    def every_n_calls(self, dep: str, n: int, owner: str | None, where: str) -> CompiledCondition:
        if owner is None:
            raise ConversionError("EveryNCalls needs an owner node; it cannot be a termination condition",
                                  location=where)
        self.watch.setdefault(owner, {})[dep] = None
        return CompiledCondition(lambda s: s.useable(dep, owner) >= n, where)

    def compile(self, c: Any, owner: str | None, where: str) -> CompiledCondition:
        """A model Condition -> its compiled form, through :data:`CONDITION_TYPES`."""
        from .model import Condition

        if not isinstance(c, Condition):
            raise ValidationError(f"expected a condition, got {type(c).__name__}", location=where)
        t = c.type
        where = f"{where} > {t}"
        entry = CONDITION_TYPES.get(t) if isinstance(t, str) else None
        if entry is None or entry.compile is None:
            raise ConversionError(f"scheduling condition {t!r} is not supported", location=where,
                                  hint=f"supported: {_SUPPORTED}")
        return entry.compile(_Args(self, t, dict(c.kwargs or {}), owner, where))


# ---------------------------------------------------------------------------------------------
# What Threshold conditions read
# ---------------------------------------------------------------------------------------------

def _threshold_default(prog: Any, nid: str, name: str) -> Any:
    """What modeci_mdf's Threshold getter reads before the node ever ran."""
    n = prog.by_id[nid]
    for p in n.input_ports:
        if p.id == name:
            return port_default(p)
    for p in n.parameters:
        if p.id == name:
            dv = p.default_initial_value
            if dv is None or isinstance(dv, str):
                raise ConversionError(f"Threshold reads parameter {name!r} before node {nid!r} ran, and it "
                                      "has no numeric default_initial_value",
                                      location=prog.loc(f"{prog.node_where(n)} > parameter '{name}'"))
            return as_tensor(dv)
    for f in n.functions:
        if f.id == name:
            return torch.tensor(0)
    p = next(p for p in n.output_ports if p.id == name)
    return torch.zeros(tuple(p.shape) if p.shape else ())


def threshold_getter(prog: Any, state: dict[tuple, Any], has: dict[tuple, Any] | None = None
                     ) -> Callable[[str, str], Any]:
    """``value_of(node, name)`` for Threshold conditions over a simulation's ``state``
    (``(kind, node id, id) -> value``), with modeci_mdf's defaults for what has not run.
    With ``has`` (key -> mask ``[batch]`` of the elements that set it; the masked program), a
    value ``[batch, ...]``, the default where an element has not set it."""
    kinds = {}
    for nid, n in prog.by_id.items():
        for p in n.input_ports:
            kinds.setdefault((nid, p.id), "input")  # recorded when the graph has a Threshold
        for p in n.parameters:
            kinds.setdefault((nid, p.id), "param")
        for f in n.functions:
            kinds.setdefault((nid, f.id), "func")
        for p in n.output_ports:
            kinds.setdefault((nid, p.id), "port")

    def value_of(nid: str, name: str) -> Any:
        kind = kinds.get((nid, name))
        v = state.get((kind, nid, name)) if kind is not None else None
        if has is None:
            return _threshold_default(prog, nid, name) if v is None else v
        default = torch.as_tensor(_threshold_default(prog, nid, name))
        if v is None:
            return default.unsqueeze(0)  # one for every element
        return torch.where(has[(kind, nid, name)].view(-1, *[1] * (v.dim() - 1)), v, default.to(v.device, v.dtype))
    return value_of
