"""modeci_mdf's ACT-R helpers (``modeci_mdf.functions.actr``, which wraps the ``ccm`` library)
on plain Python values, for the ACT-R models its ``actr_to_mdf`` writes.

An ACT-R model's values are *chunks* (dicts of strings: ``{"ISA": "number", "number": "two"}``),
*productions* (dicts with ``lhs``/``rhs`` lists of buffer patterns) and lists of those, not
tensors, so these helpers run in the symbolic evaluator (:mod:`torchmdf.mdf.symbolic`), never in
the tensor lowering.  Names and argument lists are the function table's
(:data:`torchmdf.mdf.functions.STANDARD_FUNCTIONS`, kind ``"actr"``); this module is only what
they compute.

What they compute is the reference's, step for step: a chunk or pattern is turned into ccm's text
form (``chunk_to_string``/``pattern_to_string``), and ccm's pattern language is matched slot by
slot: a word matches itself, ``!word`` anything else, ``?v`` binds ``v`` (or, bound already,
matches its value), ``!?v`` anything but ``v``'s value, ``?`` anything, ``slot:...`` a named slot.
Declarative memory keeps the first of equal chunks and retrieves the first match, in memory
order; conflict resolution picks one matching production with :func:`random.choice` (seed
Python's :mod:`random` for a repeatable run, as with the reference).

Differences, none visible in what the reference returns: the reference's helpers change their
arguments in place (``change_goal`` updates the previous goal dict, ``match_production`` adds
``bindings`` to the productions of the model's parameter); these return new values and leave
their arguments as they were.  Where the reference fails with a raw ``KeyError``/``TypeError``
(a pattern word ccm cannot read, a chunk type missing from ``types``, a value that is not text),
these raise :class:`~torchmdf.errors.ConversionError`, which the evaluator locates.  The work of
one evaluation's matching is counted against ``LIMITS.max_schedule_work``.
"""

from __future__ import annotations

import contextlib
import random
import re
from typing import Any, Callable, Iterator

from torchmdf.errors import ConversionError
from torchmdf.limits import LIMITS

__all__ = ["ACTR_HELPERS", "WorkBudget", "evaluation_budget", "Pattern", "chunk_to_string", "pattern_to_string", "change_goal",
           "retrieve_chunk", "match_production", "pattern_matching_function", "update_buffer",
           "update_goal", "update_retrieval", "conflict_resolution_function", "check_termination"]


class WorkBudget:
    """Slot comparisons left in one evaluation (``LIMITS.max_schedule_work``): matching costs
    productions x pattern words, or chunks x pattern words, so a file cannot make one evaluation
    cost more than the limit."""

    def __init__(self) -> None:
        self.used = 0

    def charge(self, n: int) -> None:
        self.used += n
        if self.used > LIMITS.max_schedule_work:
            raise ConversionError(f"ACT-R matching in one evaluation took more than {LIMITS.max_schedule_work:,} "
                                  "slot comparisons",
                                  hint="raise torchmdf.limits.LIMITS.max_schedule_work if the file is trusted")


_BUDGET: list[WorkBudget] = []  # one per evaluation in progress (the symbolic evaluator's)


@contextlib.contextmanager
def evaluation_budget() -> Iterator[WorkBudget]:
    """Count the matching work done inside the ``with`` block (one evaluation) against the limit;
    outside one, a direct call of a helper is not counted."""
    _BUDGET.append(WorkBudget())
    try:
        yield _BUDGET[-1]
    finally:
        _BUDGET.pop()


def _charge(n: int) -> None:
    if _BUDGET:
        _BUDGET[-1].charge(n)


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise ConversionError(f"{what} must be text, got {type(v).__name__} {_short(v)}")
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _mapping(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise ConversionError(f"{what} must be a dict, got {type(v).__name__} {_short(v)}")
    return v


def _items(v: Any, what: str) -> list:
    """A list argument; numpy object arrays (the reference's input ports hold them) as lists."""
    if isinstance(v, (list, tuple)):
        return list(v)
    tolist = getattr(v, "tolist", None)
    if callable(tolist) and getattr(v, "ndim", None) == 1:
        return list(tolist())
    raise ConversionError(f"{what} must be a list, got {type(v).__name__} {_short(v)}")


# -- text forms -----------------------------------------------------------------------------------

def chunk_to_string(chunk: Any) -> str:
    """The chunk's slot values but its ``name``, joined by spaces (ccm's chunk text)."""
    d = _mapping(chunk, "a chunk")
    return " ".join(_text(v, f"slot {k!r} of a chunk") for k, v in d.items() if k != "name")


def pattern_to_string(chunk: Any) -> str:
    """A pattern's values after the first (its buffer), in ccm's syntax: ``=v`` -> ``?v``,
    ``-=v`` -> ``!?v``.  (The argument is ``chunk`` as modeci_mdf's function table names it; its
    Python function calls it ``pattern``.)"""
    d = _mapping(chunk, "a pattern")
    vals = [_text(v, f"slot {k!r} of a pattern") for k, v in d.items()]
    return " ".join(vals[1:]).replace("-=", "!?").replace("=", "?")


def _parse_chunk(text: str) -> dict:
    """ccm's ``Chunk(text)``: words are slots 0, 1, ...; ``name:value`` is a named slot."""
    out: dict[Any, str] = {}
    for i, x in enumerate(text.split()):
        key: Any = i
        if ":" in x:
            key, x = x.split(":", 1)
        if x.startswith("?"):
            raise ConversionError(f"the chunk {text!r} has an unbound variable {x!r}")
        out[key] = x
    return out


# -- ccm's pattern matching -------------------------------------------------------------------

_NAMED = re.compile(r"([?]?[\w\.]+):")
_WORD = re.compile(r"([\w\.-]+)")
_NOT_WORD = re.compile(r"!([\w\.-]+)")
_VAR = re.compile(r"\?(\w+)")
_NOT_VAR = re.compile(r"!\?(\w+)")


class _NoMatch(Exception):
    """A slot the pattern reads is missing (ccm's KeyError/TypeError: not a match)."""


def _get(obj: Any, buffer: str | None, key: Any) -> str:
    a = obj if buffer is None else obj.get(buffer) if isinstance(obj, dict) else None
    if a is None or not isinstance(a, dict):
        raise _NoMatch
    while isinstance(key, str) and "." in key:
        k1, key = key.split(".", 1)
        a = a.get(k1)
        if not isinstance(a, dict):
            raise _NoMatch
    if key not in a:
        raise _NoMatch
    x = a[key]
    if isinstance(x, float):
        return f"{x:g}"
    return x if isinstance(x, str) else repr(x)


class Pattern:
    """ccm's ``Pattern``: ``{buffer: text}`` (or one text for a chunk itself), compiled once into
    slot tests; :meth:`match` returns the variable bindings, or None."""

    def __init__(self, patterns: dict[str | None, str]):
        first: list[tuple] = []
        later: list[tuple] = []  # tests on variables bound by the first group (ccm's funcs2)
        bound: set[str] = set()
        for buffer, text in patterns.items():
            named = False
            for j, word in enumerate(text.split()):
                key: Any = j
                m = _NAMED.match(word)
                if m is not None:
                    key = m.group(1)
                    try:
                        key = int(key)
                    except ValueError:
                        pass
                    word = word[m.end():]
                    if not word:
                        raise ConversionError(f"no value for slot {key!r} in the pattern {text!r}")
                    named = True
                elif named:
                    raise ConversionError(f"the unnamed slot {word!r} follows a named slot in the pattern {text!r}")
                if word == "?":
                    continue
                while word:
                    m = _WORD.match(word)
                    if m is not None:
                        first.append(("eq", buffer, key, m.group(1)))
                    elif (m := _NOT_WORD.match(word)) is not None:
                        first.append(("ne", buffer, key, m.group(1)))
                    elif (m := _VAR.match(word)) is not None:
                        v = m.group(1)
                        if v in bound:
                            later.append(("eqvar", buffer, key, v))
                        else:
                            bound.add(v)
                            first.append(("bind", buffer, key, v))
                    elif (m := _NOT_VAR.match(word)) is not None:
                        later.append(("nevar", buffer, key, m.group(1)))
                    else:
                        raise ConversionError(f"unknown text {word!r} in the pattern {text!r}")
                    word = word[m.end():]
        self.tests = first + later

    def match(self, obj: Any) -> dict[str, str] | None:
        _charge(len(self.tests) + 1)
        b: dict[str, str] = {}
        try:
            for kind, buffer, key, t in self.tests:
                if isinstance(key, str) and key.startswith("?"):
                    if key[1:] not in b:
                        return None
                    key = b[key[1:]]
                if kind == "bind":
                    b[t] = _get(obj, buffer, key)
                    continue
                v = _get(obj, buffer, key)
                if kind == "eq":
                    ok = v == t
                elif kind == "ne":
                    ok = v != t
                else:
                    if t not in b:
                        return None
                    ok = (v == b[t]) if kind == "eqvar" else (v != b[t])
                if not ok:
                    return None
        except _NoMatch:
            return None
        return b


# -- the helpers ----------------------------------------------------------------------------------

def _is_zero(v: Any) -> bool:
    return type(v) in (int, float, bool) and v == 0


def change_goal(pattern: Any, curr_goal: Any) -> dict:
    """The current goal updated with the pattern's slots (its ``buffer`` key dropped); ``{}``
    while the goal is still 0 (never set)."""
    if _is_zero(curr_goal):
        return {}
    goal = dict(_mapping(curr_goal, "the current goal"))
    goal.update(_mapping(pattern, "the goal pattern"))
    goal.pop("buffer", None)
    return goal


def retrieve_chunk(pattern: Any, dm_chunks: Any, types: Any) -> dict:
    """The first chunk of declarative memory that matches the pattern, with its slots named by
    its type (``types[ISA]``); ``{}`` for an empty pattern or no match."""
    if isinstance(pattern, dict) and not pattern:
        return {}
    chunks = _items(dm_chunks, "declarative memory (dm_chunks)")
    _charge(len(chunks))
    memory: list[dict] = []
    for c in chunks:
        parsed = _parse_chunk(chunk_to_string(c))
        if parsed not in memory:
            memory.append(parsed)
        _charge(len(memory))
    pat = Pattern({None: pattern_to_string(pattern)})
    match = next((c for c in memory if pat.match(c) is not None), None)
    if match is None:
        return {}
    if 0 not in match:
        raise ConversionError(f"the retrieved chunk {_short(match)} has no type (slot 0)")
    isa = match[0]
    slots = _mapping(types, "the chunk types").get(isa)
    if not isinstance(slots, (list, tuple)) or len(slots) < len(match) - 1:
        raise ConversionError(f"the chunk types do not list {len(match) - 1} slots for the type {isa!r}")
    retrieved = {"ISA": isa}
    for i in range(1, len(match)):
        if i not in match:
            raise ConversionError(f"the retrieved chunk {_short(match)} mixes named and positional slots")
        retrieved[_text(slots[i - 1], f"a slot name of type {isa!r}")] = match[i]
    return retrieved


def match_production(production: Any, context: Any) -> dict | None:
    """The production with its variable ``bindings`` when its left-hand side matches the
    buffers in ``context`` (``{buffer: chunk dict or None}``), else None."""
    prod = _mapping(production, "a production")
    lhs = _items(prod.get("lhs"), "a production's lhs")
    patterns: dict[str | None, str] = {}
    for p in lhs:
        patterns[_text(_mapping(p, "a pattern").get("buffer"), "a pattern's buffer")] = pattern_to_string(p)
    bindings = Pattern(patterns).match(context)
    if bindings is None:
        return None
    return {**prod, "bindings": bindings}


def pattern_matching_function(productions: Any, goal: Any, retrieval: Any) -> list[dict]:
    """The productions whose left-hand sides match the goal and retrieval buffers (an empty
    retrieval matches no retrieval pattern), each with its bindings."""
    context = {"goal": _parse_chunk(chunk_to_string(goal)),
               "retrieval": _parse_chunk(chunk_to_string(retrieval)) if retrieval != {} else None}
    out = []
    for p in _items(productions, "the productions"):
        m = match_production(p, context)
        if m is not None:
            out.append(m)
    return out


def conflict_resolution_function(productions: Any) -> dict:
    """One of the matching productions, picked with :func:`random.choice` (the reference's
    rule: no utilities yet); ``{}`` when none matched."""
    ps = _items(productions, "the matching productions")
    if not ps:
        return {}
    return random.choice(ps)


def update_buffer(production: Any, buffer: Any) -> dict:
    """The production's right-hand-side pattern for ``buffer`` (the last one naming it), its
    variables replaced by their bindings; ``{}`` for no production."""
    prod = _mapping(production, "a production")
    if not prod:
        return {}
    pattern: dict = {}
    for p in _items(prod.get("rhs"), "a production's rhs"):
        if _mapping(p, "a pattern").get("buffer") == buffer:
            pattern = dict(p)
    bindings = _mapping(prod.get("bindings"), "a production's bindings (it did not come from matching)")
    for k, v in list(pattern.items()):
        name = _text(v, f"slot {k!r} of a pattern").replace("=", "")
        if name in bindings:
            pattern[k] = bindings[name]
    return pattern


def update_goal(production: Any) -> dict:
    """:func:`update_buffer` for the goal buffer."""
    return update_buffer(production, "goal")


def update_retrieval(production: Any) -> dict:
    """:func:`update_buffer` for the retrieval buffer."""
    return update_buffer(production, "retrieval")


def check_termination(production: Any) -> bool:
    """True when no production was selected (the run is over)."""
    return isinstance(production, dict) and not production


#: name -> the helper; the names and argument lists are the function table's (kind "actr")
ACTR_HELPERS: dict[str, Callable[..., Any]] = {f.__name__: f for f in (
    chunk_to_string, pattern_to_string, change_goal, retrieve_chunk, match_production,
    pattern_matching_function, update_buffer, update_goal, update_retrieval,
    conflict_resolution_function, check_termination)}
