"""graph_scheduler's ``Scheduler.run`` over node ids and counters: which nodes run in one
MDF evaluation, and in what consideration sets (see :mod:`torchmdf.frontends.mdf` for the
semantics).  Conditions arrive compiled (:class:`CompiledCondition`, built from the table in
:mod:`torchmdf.mdf.conditions`); the scheduler only counts and asks them.

Linear in the graph: no n x n tables, and every condition check of one evaluation is counted
against ``LIMITS.max_schedule_work``."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any, Callable, Iterator

from torchmdf.errors import ConversionError, ValidationError
from torchmdf.limits import LIMITS

__all__ = ["CSE", "PASS", "ESU", "ES", "LIFE", "TIME_SCALES", "time_scale", "CompiledCondition",
           "Scheduler", "MaskedScheduler", "MAX_PASSES", "consideration_queue", "schedules", "flatten"]

#: Passes one evaluation may take before it is declared non-terminating.
MAX_PASSES = 10_000

#: graph_scheduler's time scales, finest first (a count at one scale resets at each coarser one).
CSE, PASS, ESU, ES, LIFE = range(5)
TIME_SCALES = {"CONSIDERATION_SET_EXECUTION": CSE, "PASS": PASS, "ENVIRONMENT_STATE_UPDATE": ESU,
               "ENVIRONMENT_SEQUENCE": ES, "LIFE": LIFE}


def time_scale(v: Any) -> int | None:
    """``"TimeScale.PASS"``, ``"PASS"``, ``"pass"`` -> the scale, or None."""
    if not isinstance(v, str):
        return None
    name = v.strip()
    name = name[len("TimeScale"):] if name.startswith("TimeScale") else name
    return TIME_SCALES.get(name.lstrip(".").upper()) if len(name) < 64 else None


class CompiledCondition:
    """A compiled condition: ``ok(scheduler)``; ``history``: it reads counters that survive a
    run; ``dynamic``: it reads computed values (Threshold); ``cost``: the work of one check
    (counted against ``LIMITS.max_schedule_work``)."""

    __slots__ = ("ok", "history", "justran", "dynamic", "where", "cost", "absolute")

    def __init__(self, ok: Callable[[Scheduler], bool], where: str, *, history: bool = False,
                 justran: bool = False, dynamic: bool = False, parts: tuple[CompiledCondition, ...] = (),
                 cost: int = 1, absolute: tuple[list[Fraction], list[Fraction]] | None = None):
        self.ok = ok
        # graph_scheduler's absolute_intervals and absolute_fixed_points (seconds), or None:
        # not an absolute-time condition
        self.absolute = absolute
        self.where = where
        self.history = history or any(p.history for p in parts)
        self.justran = justran or any(p.justran for p in parts)
        self.dynamic = dynamic or any(p.dynamic for p in parts)
        self.cost = cost + sum(p.cost for p in parts)


class Scheduler:
    """graph_scheduler's ``Scheduler.run`` over node ids: each :meth:`run` is one evaluation
    and yields its consideration set executions (lists of node ids, in run order).

    ``value_of(node, name)`` answers Threshold conditions (None: refuse them).

    Linear in the graph: graph_scheduler keeps an n x n table of "useable" counts for
    EveryNCalls; here each node counts its runs since the evaluation began, and a node that
    owns ``EveryNCalls(dep)`` notes ``dep``'s count when it runs (``watch`` lists those pairs),
    so the useable count is a difference.  The condition checks of one evaluation are counted
    against ``LIMITS.max_schedule_work``."""

    def __init__(self, nodes: list[str], queue: list[list[str]], conds: dict[str, CompiledCondition],
                 term_esu: CompiledCondition, term_es: CompiledCondition, where: str,
                 watch: dict[str, list[str]] | None = None):
        self.nodes = nodes
        self.queue = queue
        self.conds = conds
        self.term_esu = term_esu
        self.term_es = term_es
        self.where = where
        self.counts = [dict.fromkeys(nodes, 0) for _ in range(5)]
        self.watch = watch or {}
        self.calls: dict[str, int] = dict.fromkeys(nodes, 0)  # runs since this evaluation began
        self.snap: dict[str, dict[str, int]] = {}  # owner -> dep -> calls[dep] when owner last ran
        self.ran_this_run = 0  # nodes with counts[ESU] >= 1 (AllHaveRun without dependencies)
        self.last: list[str] | None = None  # the last consideration set execution, for JustRan
        self.last_set: frozenset[str] = frozenset()
        self.pass_run = self.pass_total = 0
        self.cse_pass = self.cse_run = self.cse_total = 0
        self.runs = 0
        self.work = 0
        self.value_of: Callable[[str, str], Any] | None = None
        allc = [*conds.values(), term_esu, term_es]
        self.history = any(c.history for c in allc)
        self.justran = any(c.justran for c in allc)
        self.dynamic = any(c.dynamic for c in allc)
        self.queue_index = {n: i for i, cs in enumerate(queue) for n in cs}
        # graph_scheduler's absolute time (seconds, exact): on when any condition is an
        # absolute one; then every consideration set execution (empty ones too) advances it
        absolute = [c.absolute for c in allc if c.absolute is not None]
        self.absolute_mode = bool(absolute)
        self.absolute = Fraction(0)
        self.absolute_start = min((min(fixed) if fixed else Fraction(0)) for _, fixed in absolute) \
            if absolute else Fraction(0)
        self.absolute_interval = _absolute_interval([i for iv, _ in absolute for i in iv], len(queue))

    masked = False  # MaskedScheduler: counters and condition outcomes are per batch element

    # what conditions combine through (MaskedScheduler answers with masks)
    def all_of(self, parts: Any) -> Any:
        return all(p.ok(self) for p in parts)

    def any_of(self, parts: Any) -> Any:
        return any(p.ok(self) for p in parts)

    def negate(self, x: Any) -> Any:
        return not x

    def conjunction(self, values: Any) -> Any:
        return all(values)

    def just_ran(self, node: str) -> Any:
        return node in self.last_set

    def useable(self, dep: str, owner: str) -> int:
        """Runs of ``dep`` since ``owner`` last ran (in this evaluation)."""
        return self.calls[dep] - self.snap.get(owner, {}).get(dep, 0)

    def relative(self, query: int, base: int, where: str) -> int:
        """``Clock.get_total_times_relative(query, base)`` for the current time."""
        if query == PASS and base == ESU:
            return self.pass_run
        if query == PASS and base in (ES, LIFE):
            return self.pass_total
        if query == CSE and base == PASS:
            return self.cse_pass
        if query == CSE and base == ESU:
            return self.cse_run
        if query == CSE and base in (ES, LIFE):
            return self.cse_total
        if query == ESU and base in (ES, LIFE):
            return self.runs
        if query == ES and base == LIFE:
            return 0
        raise ConversionError("this condition counts a time scale relative to one that is not coarser",
                              location=where)

    def _check(self, c: CompiledCondition) -> bool:
        self.work += c.cost
        if self.work > LIMITS.max_schedule_work:
            raise ConversionError(f"scheduling one evaluation took more than {LIMITS.max_schedule_work:,} "
                                  "condition checks", location=self.where,
                                  hint="the conditions make the scheduler loop (or the graph is huge); raise "
                                  "torchmdf.limits.LIMITS.max_schedule_work if the file is trusted")
        return c.ok(self)

    def _terminated(self) -> bool:
        return self._check(self.term_esu) or self._check(self.term_es)

    def _ran(self, node: str) -> None:
        if self.counts[ESU][node] == 0:
            self.ran_this_run += 1
        for ts in range(5):
            self.counts[ts][node] += 1
        deps = self.watch.get(node)
        if deps:
            snap = self.snap.setdefault(node, {})
            for d in deps:
                snap[d] = self.calls[d]
        self.calls[node] += 1

    def run(self, value_of: Callable[[str, str], Any] | None = None) -> Iterator[list[str]]:
        """One evaluation; a generator, so that a Threshold sees the values of the executions
        yielded before it is checked."""
        self.value_of = value_of
        self.work = 0
        self.calls = dict.fromkeys(self.nodes, 0)
        self.snap = {}
        self.ran_this_run = 0
        for ts in (CSE, PASS, ESU):
            self.counts[ts] = dict.fromkeys(self.nodes, 0)
        self.pass_run = self.cse_run = 0
        if self.absolute_mode:
            self.absolute = max(self.absolute, self.absolute_start)
        while not self._terminated():
            for ts in (CSE, PASS):
                self.counts[ts] = dict.fromkeys(self.nodes, 0)
            self.cse_pass = 0
            changed = False
            for cs in self.queue:
                if self._terminated():
                    break
                ex: list[str] = []
                done: set[str] = set()
                added = True
                while added:
                    added = False
                    for node in cs:
                        if node not in done and self._check(self.conds[node]):
                            ex.append(node)
                            done.add(node)
                            added = changed = True
                            self._ran(node)
                if ex or self.absolute_mode:
                    self.last = ex
                    self.last_set = frozenset(ex)
                    yield ex
                    self._tick_cse()
            if not changed and not self.absolute_mode:
                self.last = []
                self.last_set = frozenset()
                self._tick_cse()
            self.pass_run += 1
            self.pass_total += 1
            if self.pass_run > MAX_PASSES:
                raise ConversionError(f"an evaluation did not terminate after {MAX_PASSES} passes",
                                      location=self.where,
                                      hint="check the environment_state_update termination condition "
                                      "(default AllHaveRun: every node must be able to run)")
        self.runs += 1

    def _tick_cse(self) -> None:
        if self.absolute_mode:
            self.absolute += self.absolute_interval
        self.cse_pass += 1
        self.cse_run += 1
        self.cse_total += 1


class MaskedScheduler(Scheduler):
    """:class:`Scheduler` for a batch of ``batch`` runs in lockstep, each on its own schedule:
    every counter is a tensor ``[batch]`` and every condition outcome a mask, so a condition
    that reads values (Threshold) may hold for some elements and not others.  :meth:`run`
    yields each consideration set execution as ``[(node, mask), ...]`` in run order: the node
    runs for the elements where ``mask`` holds (an element runs its nodes in the same order as
    :class:`Scheduler` would for it alone, since the order is by round, then by queue position).
    ``considering`` is the mask of elements a condition is asked for (NWhen counts only those,
    and All/Any narrow it as they short-circuit)."""

    masked = True

    def __init__(self, base: Scheduler, batch: int, device: Any = None):
        import torch

        self.__dict__.update({k: getattr(base, k) for k in ("nodes", "queue", "conds", "term_esu", "term_es",
                                                             "where", "watch", "history", "justran", "dynamic",
                                                             "absolute_mode")})
        self.torch = torch
        self.batch = batch
        zero = torch.zeros(batch, dtype=torch.long, device=device)
        self.zero = zero
        self.no = torch.zeros(batch, dtype=torch.bool, device=device)
        self.counts = [dict.fromkeys(self.nodes, zero) for _ in range(5)]
        self.calls = dict.fromkeys(self.nodes, zero)
        self.snap = {}
        self.ran_this_run = zero
        self.last_mask: dict[str, Any] = {}
        self.pass_run = self.pass_total = self.cse_pass = self.cse_run = self.cse_total = self.runs = zero
        self.work = 0
        self.value_of = None
        self.considering = ~self.no
        self.nwhen_counts: dict[int, Any] = {}

    def mask(self, x: Any) -> Any:
        """A condition's outcome as a bool mask ``[batch]``."""
        if isinstance(x, self.torch.Tensor):
            return x.to(self.no.device, self.torch.bool).expand(self.batch)
        return ~self.no if x else self.no

    def all_of(self, parts: Any) -> Any:
        acc, saved = ~self.no, self.considering
        for p in parts:
            self.considering = saved & acc
            acc = acc & self.mask(p.ok(self))
        self.considering = saved
        return acc

    def any_of(self, parts: Any) -> Any:
        acc, saved = self.no, self.considering
        for p in parts:
            self.considering = saved & ~acc
            acc = acc | self.mask(p.ok(self))
        self.considering = saved
        return acc

    def negate(self, x: Any) -> Any:
        return ~self.mask(x)

    def conjunction(self, values: Any) -> Any:
        acc = ~self.no
        for v in values:
            acc = acc & self.mask(v)
        return acc

    def just_ran(self, node: str) -> Any:
        return self.last_mask.get(node, self.no)

    def nwhen(self, box: list, inner: CompiledCondition, limit: int) -> Any:
        """NWhen: holds the first ``limit`` times ``inner`` holds, counted per element."""
        count = self.nwhen_counts.get(id(box), self.zero)
        saved = self.considering
        self.considering = saved & (count < limit)
        ok = self.considering & self.mask(inner.ok(self))
        self.considering = saved
        self.nwhen_counts[id(box)] = count + ok.long()
        return ok

    def _check_mask(self, c: CompiledCondition, considering: Any) -> Any:
        self.considering = considering
        return considering & self.mask(self._check(c))

    def _terminated_mask(self, live: Any) -> Any:
        esu = self._check_mask(self.term_esu, live)
        return esu | self._check_mask(self.term_es, live & ~esu)

    def _ran_masked(self, node: str, m: Any) -> None:
        where, ml = self.torch.where, m.long()
        self.ran_this_run = self.ran_this_run + (m & (self.counts[ESU][node] == 0)).long()
        for ts in range(5):
            self.counts[ts][node] = self.counts[ts][node] + ml
        deps = self.watch.get(node)
        if deps:
            snap = self.snap.setdefault(node, {})
            for d in deps:
                snap[d] = where(m, self.calls[d], snap.get(d, self.zero))
        self.calls[node] = self.calls[node] + ml

    def _tick_cse_masked(self, m: Any) -> None:
        ml = m.long()
        self.cse_pass = self.cse_pass + ml
        self.cse_run = self.cse_run + ml
        self.cse_total = self.cse_total + ml

    def _reset(self, m: Any, scales: tuple[int, ...], names: tuple[str, ...]) -> None:
        """Zero these counters where ``m`` holds."""
        every = bool(m.all())
        where = self.torch.where
        for ts in scales:
            self.counts[ts] = dict.fromkeys(self.nodes, self.zero) if every else \
                {n: where(m, self.zero, c) for n, c in self.counts[ts].items()}
        for name in names:
            setattr(self, name, self.zero if every else where(m, self.zero, getattr(self, name)))

    def run(self, value_of: Callable[[str, str], Any] | None = None) -> Iterator[list[tuple[str, Any]]]:
        """One evaluation of every element (see :meth:`Scheduler.run`)."""
        where = self.torch.where
        self.value_of = value_of
        self.work = 0
        every = ~self.no
        self.calls = dict.fromkeys(self.nodes, self.zero)
        self.snap = {}
        self._reset(every, (CSE, PASS, ESU), ("ran_this_run", "pass_run", "cse_run"))
        active = ~self._terminated_mask(every)
        while bool(active.any()):
            self._reset(active, (CSE, PASS), ("cse_pass",))
            changed = self.no
            inpass = active
            for cs in self.queue:
                inpass = inpass & ~self._terminated_mask(inpass)
                if not bool(inpass.any()):
                    break
                ex: list[tuple[str, Any]] = []
                done = dict.fromkeys(cs, self.no)
                looping = inpass
                while bool(looping.any()):
                    added = self.no
                    for node in cs:
                        considered = looping & ~done[node]
                        if not bool(considered.any()):
                            continue
                        ok = self._check_mask(self.conds[node], considered)
                        if bool(ok.any()):
                            ex.append((node, ok))
                            done[node] = done[node] | ok
                            added = added | ok
                            self._ran_masked(node, ok)
                    looping = added
                    changed = changed | added
                if ex:
                    any_ran = self.no
                    for _, m in ex:
                        any_ran = any_ran | m
                    self.last_mask = {n: where(any_ran, done.get(n, self.no), self.last_mask.get(n, self.no))
                                      for n in self.nodes}
                    yield ex
                    self._tick_cse_masked(any_ran)
            idle = active & ~changed
            self.last_mask = {n: m & ~idle for n, m in self.last_mask.items()}
            self._tick_cse_masked(idle)
            self.pass_run = self.pass_run + active.long()
            self.pass_total = self.pass_total + active.long()
            if bool((self.pass_run > MAX_PASSES).any()):
                raise ConversionError(f"an evaluation did not terminate after {MAX_PASSES} passes",
                                      location=self.where,
                                      hint="check the environment_state_update termination condition "
                                      "(default AllHaveRun: every node must be able to run)")
            active = active & ~self._terminated_mask(active)
        self.runs = self.runs + 1


class NestedScheduler:
    """A graph's scheduler whose nested graphs run as nodes: each time ``outer`` runs a nested
    graph's id, that graph's own scheduler runs one evaluation (its conditions, its counters
    kept from one run to the next) and its node runs take the nested graph's place."""

    def __init__(self, outer: Scheduler, inner: dict[str, Any]):
        self.outer = outer
        self.inner = inner
        self.history = True  # the nested schedulers' counters survive runs: never memoized
        self.justran = outer.justran
        self.dynamic = False
        self.last: list[str] | None = None
        self.last_set: frozenset[str] = frozenset()

    def run(self, value_of: Callable[[str, str], Any] | None = None) -> Iterator[list[str]]:
        for cs in self.outer.run(value_of):
            out: list[str] = []
            for nid in cs:
                sub = self.inner.get(nid)
                if sub is None:
                    out.append(nid)
                else:
                    out.extend(flatten(list(sub.run(value_of))))
            self.last, self.last_set = self.outer.last, self.outer.last_set
            yield out


def _absolute_interval(intervals: list[Fraction], queue_length: int) -> Fraction:
    """graph_scheduler's ``_get_absolute_consideration_set_execution_unit`` (standard mode):
    the greatest common divisor of the conditions' intervals shared among the consideration
    sets of a pass; 1 ms without intervals."""
    if not intervals:
        return Fraction(1, 1000)
    den = math.lcm(*(i.denominator for i in intervals))
    g = Fraction(math.gcd(*(int(i * den) for i in intervals)), den)
    return g / queue_length if queue_length > 1 else g


def consideration_queue(ids: list[str], deps: dict[str, list[str]], dep_sets: dict[str, dict[str, None]],
                        where: str) -> list[list[str]]:
    """Topological levels of the dependencies, nodes of a level in file order (Kahn's
    algorithm: linear in nodes and edges).  A cycle nothing breaks (a self-edge included:
    graph_scheduler's default condition for it, EveryNCalls of itself, never holds) is an
    error, as in the validator."""
    order = {i: k for k, i in enumerate(ids)}
    indeg = {i: len(deps[i]) for i in ids}
    users: dict[str, list[str]] = {i: [] for i in ids}
    for i in ids:
        for d in deps[i]:
            users[d].append(i)
    loops = [i for i in ids if i in dep_sets[i]]
    queue: list[list[str]] = []
    level = [i for i in ids if indeg[i] == 0]
    placed = 0
    while level and not loops:
        queue.append(level)
        placed += len(level)
        nxt = []
        for i in level:
            for u in users[i]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    nxt.append(u)
        nxt.sort(key=order.__getitem__)
        level = nxt
    if loops or placed < len(ids):
        comp = loops[:1] or [i for i in ids if indeg[i] > 0]
        raise ValidationError("the edges between the nodes " + ", ".join(map(repr, comp[:20])) +
                              (f" (and {len(comp) - 20} more)" if len(comp) > 20 else "") +
                              " form a cycle that nothing breaks", location=where,
                              hint="give an input port on the cycle a default_value (its edge then "
                              "carries the previous evaluation's value, as in modeci_mdf)")
    return queue


def schedules(sch: Scheduler, count: int) -> Iterator[list[list[str]]]:
    """The consideration set executions of ``count`` evaluations (no Threshold).  When no
    condition reads counters that survive a run, a run's schedule depends at most on the
    last consideration set before it (JustRan), so schedules are computed once per case."""
    memo: dict[Any, tuple[list[list[str]], list[str] | None]] = {}
    for _ in range(count):
        sig = (tuple(sch.last) if sch.last is not None else None) if sch.justran else 0
        if not sch.history and sig in memo:
            sched, last = memo[sig]
            sch.last = last
            sch.last_set = frozenset(last or ())
            yield sched
            continue
        sched = list(sch.run())
        memo[sig] = (sched, sch.last)
        yield sched


def flatten(schedule: list[list[str]]) -> list[str]:
    """The node runs of one evaluation's schedule, in order."""
    return list(itertools.chain.from_iterable(schedule))
