"""Pass infrastructure, modeled on onnx-ir's ``passes/_pass_infra.py`` with MLIR-style
instrumentation: every pass is ``call(graph) -> PassResult(graph, modified)``; the
:class:`PassManager` runs a list of them, optionally to a fixed point, verifying after each,
and records the time each took and (optionally) the IR after each pass that changed it."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Sequence

from torchmdf.errors import PassError, TorchMDFError, VerificationError
from torchmdf.ir import Graph, inner_first


@dataclasses.dataclass
class PassResult:
    graph: Graph
    modified: bool


class Pass:
    """Base class.  Subclass and implement :meth:`call`; set ``name`` to select it by string.

    ``requires(graph)`` / ``ensures(graph)`` may raise :class:`PassError` to state a pass's
    pre- and postconditions; they run around every call.

    ``regions`` says how a graph-local pass meets control flow (nodes owning nested graphs):
    None (default): ``call`` sees the top-level graph only, and handles regions itself or
    treats their nodes as opaque; ``"inner_first"``: ``call`` runs on every region, each before
    the graph holding its node (DCE, folding: an inner result is settled before its node is
    looked at), then on the graph; ``"outer_first"``: on the graph, then on its regions
    (looked up after their graph was processed, so a removed node's regions are skipped).
    ``call`` must then return the graph it was given.
    """

    name: str = ""
    regions: str | None = None

    def call(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def requires(self, graph: Graph) -> None:
        return None

    def ensures(self, graph: Graph) -> None:
        return None

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__

    def __call__(self, graph: Graph) -> PassResult:
        self.requires(graph)
        result = self._call_nested(graph) if self.regions and graph.has_regions else self.call(graph)
        if not isinstance(result, PassResult):
            raise PassError(f"pass {self.display_name} returned {type(result).__name__}, "
                            "not a PassResult")
        self.ensures(result.graph)
        return result

    def _call_nested(self, graph: Graph) -> PassResult:
        """``call`` on every graph of the nest, in the order ``regions`` asks for."""
        if self.regions not in ("inner_first", "outer_first"):
            raise PassError(f"pass {self.display_name}: regions={self.regions!r} is not "
                            "'inner_first', 'outer_first' or None")
        order = inner_first(graph) if self.regions == "inner_first" else graph.graphs()
        modified = False
        for g in order:
            result = self.call(g)
            if not isinstance(result, PassResult) or result.graph is not g:
                raise PassError(f"pass {self.display_name} runs on regions, so it must return "
                                f"a PassResult of the graph it was given (graph '{g.name}')")
            modified |= result.modified
        return PassResult(graph, modified)

    def __repr__(self) -> str:
        return f"<pass {self.display_name}>"


class FunctionPass(Pass):
    """A pass made from a function ``f(graph) -> bool`` (modified) or ``-> PassResult``."""

    def __init__(self, fn: Callable[[Graph], Any], name: str | None = None):
        self.fn = fn
        self.name = name or fn.__name__

    def call(self, graph: Graph) -> PassResult:
        out = self.fn(graph)
        if isinstance(out, PassResult):
            return out
        return PassResult(graph, bool(out))


_NAMED: dict[str, Callable[[], Pass]] = {}


def register_pass(name: str, factory: Callable[[], Pass] | None = None):
    """Make a pass selectable by string: ``register_pass("my_pass", MyPass)`` or as decorator
    on a Pass subclass or on a function ``f(graph) -> bool``."""

    def deco(obj):
        if isinstance(obj, type) and issubclass(obj, Pass):
            _NAMED[name] = obj
            if not obj.name:
                obj.name = name
        else:
            _NAMED[name] = lambda: FunctionPass(obj, name)
        return obj

    if factory is not None:
        return deco(factory)
    return deco


def graph_pass(name: str | Callable[[Graph], Any] | None = None):
    """Decorator turning ``f(graph) -> bool`` into a :class:`Pass` object (and, given a name,
    registering it so ``compile(..., passes=["name"])`` finds it)."""
    if callable(name):
        return FunctionPass(name)

    def deco(fn: Callable[[Graph], Any]) -> Pass:
        p = FunctionPass(fn, name or fn.__name__)
        if name:
            _NAMED[name] = lambda: FunctionPass(fn, name)
        return p

    return deco


def available_passes() -> list[str]:
    _load_builtins()
    return sorted(_NAMED)


def get_pass(spec: Any) -> Pass:
    """A pass from an instance, a Pass subclass, a plain function, a name, a name with options
    (``"fold_constants{fold_parameters=True, max_output_elements=1000}"``) or a
    ``(name, {option: value})`` pair.  Options are the keyword arguments of the pass's
    constructor; an unknown one is an error that lists the known ones."""
    if isinstance(spec, Pass):
        return spec
    if isinstance(spec, type) and issubclass(spec, Pass):
        return spec()
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return _named_pass(spec[0], dict(spec[1]))
    if isinstance(spec, str):
        name, options = parse_pass_spec(spec)
        return _named_pass(name, options)
    if callable(spec):
        return FunctionPass(spec)
    raise PassError(f"{spec!r} is not a pass, a pass name or a function")


def _named_pass(name: str, options: dict[str, Any]) -> Pass:
    _load_builtins()
    if name not in _NAMED:
        raise PassError(f"unknown pass {name!r}", hint=f"known passes: {', '.join(sorted(_NAMED))}")
    factory = _NAMED[name]
    if not options:
        return factory()
    known = pass_options(name)
    bad = sorted(set(options) - set(known))
    if bad:
        raise PassError(f"pass {name!r} has no option {', '.join(map(repr, bad))}",
                        hint=f"its options: {', '.join(known) or '(none)'}")
    try:
        return factory(**options)
    except (TypeError, ValueError) as e:
        raise PassError(f"pass {name!r}: bad options {options!r}: {e}") from e


def pass_options(name: str) -> dict[str, Any]:
    """The options of the named pass with their defaults (its constructor's keyword arguments)."""
    import inspect

    _load_builtins()
    factory = _NAMED[name]
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty}


def parse_pass_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name{a=1, b=True, c='x'}"`` -> ``("name", {"a": 1, "b": True, "c": "x"})``.  Values
    are Python literals (numbers, strings, True/False/None, lists), read with
    ``ast.literal_eval``, so a pass list from a command line runs no code."""
    import ast

    spec = spec.strip()
    if "{" not in spec:
        return spec, {}
    if not spec.endswith("}"):
        raise PassError(f"bad pass spec {spec!r}", hint="write name{option=value, ...}")
    name, body = spec[:-1].split("{", 1)
    try:
        call = ast.parse(f"f({body})", mode="eval").body
    except SyntaxError as e:
        raise PassError(f"bad pass options in {spec!r}: {e.msg}", hint="write name{option=value, ...}") from e
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise PassError(f"bad pass options in {spec!r}", hint="write name{option=value, ...}")
    options = {}
    for k in call.keywords:
        try:
            options[k.arg] = ast.literal_eval(k.value)
        except ValueError as e:
            raise PassError(f"pass {name.strip()!r}: option {k.arg} is not a literal value",
                            hint="numbers, strings, True/False/None, lists") from e
    return name.strip(), options


def split_pass_list(text: str) -> list[str]:
    """A comma-separated pass list (commas inside ``{...}`` belong to the options)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


def _load_builtins() -> None:
    import torchmdf.passes  # noqa: F401 - registers the built-in passes


@dataclasses.dataclass
class PassRecord:
    """One pass execution as recorded by the instrumentation."""

    name: str
    iteration: int
    seconds: float
    modified: bool
    num_nodes: int
    ir_after: str | None = None


class Instrumentation:
    """Collects per-pass timings and, with ``dump_ir``, the IR after each pass that changed it
    (kept in memory and, with ``dump_dir``, written to ``NN_passname.ir`` files)."""

    def __init__(self, dump_ir: bool = False, dump_dir: str | None = None,
                 printer: Callable[[str], None] | None = None):
        self.records: list[PassRecord] = []
        self.dump_ir = dump_ir or dump_dir is not None
        self.dump_dir = dump_dir
        self.printer = printer

    def after_pass(self, p: Pass, graph: Graph, seconds: float, modified: bool, iteration: int) -> None:
        ir = str(graph) if (self.dump_ir and modified) else None
        rec = PassRecord(p.display_name, iteration, seconds, modified, len(graph), ir)
        self.records.append(rec)
        if ir is not None and self.dump_dir is not None:
            import os

            os.makedirs(self.dump_dir, exist_ok=True)
            path = os.path.join(self.dump_dir, f"{len(self.records):02d}_{rec.name}.ir")
            with open(path, "w", encoding="utf-8") as f:
                f.write(ir + "\n")
        if self.printer is not None:
            self.printer(f"{rec.name:<34} {seconds * 1e3:9.3f} ms  "
                         f"{'changed' if modified else 'unchanged':<9}  {rec.num_nodes} nodes")

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.records:
            out[r.name] = out.get(r.name, 0.0) + r.seconds
        return out

    def report(self) -> str:
        """A table of time per pass, one line each, plus the total."""
        lines = [f"{'pass':<34} {'time (ms)':>10} {'runs':>5} {'changed':>8}"]
        agg: dict[str, list[float]] = {}
        for r in self.records:
            a = agg.setdefault(r.name, [0.0, 0, 0])
            a[0] += r.seconds
            a[1] += 1
            a[2] += int(r.modified)
        for name, (sec, runs, ch) in agg.items():
            lines.append(f"{name:<34} {sec * 1e3:10.3f} {runs:5d} {ch:8d}")
        lines.append(f"{'total':<34} {sum(r.seconds for r in self.records) * 1e3:10.3f}")
        return "\n".join(lines)


class PassManager:
    """Runs passes in order.

    ``verify_each``: run ``graph.verify()`` after every pass and blame the pass that broke it.
    ``fixed_point``: repeat the whole list until no pass changes the graph (at most
    ``max_iterations`` rounds; more is an error since it means two passes undo each other).
    """

    def __init__(self, passes: Iterable[str | Pass | Callable[[Graph], Any]], *, verify_each: bool = True,
                 fixed_point: bool = False, max_iterations: int = 10,
                 instrument: Instrumentation | bool | None = None):
        self.passes: list[Pass] = [get_pass(p) for p in passes]
        self.verify_each = verify_each
        self.fixed_point = fixed_point
        self.max_iterations = max_iterations
        if instrument is True:
            instrument = Instrumentation()
        self.instrumentation: Instrumentation | None = instrument or None

    def __call__(self, graph: Graph) -> PassResult:
        return self.run(graph)

    def run(self, graph: Graph) -> PassResult:
        any_modified = False
        rounds = self.max_iterations if self.fixed_point else 1
        for it in range(rounds):
            round_modified = False
            for p in self.passes:
                t0 = time.perf_counter()
                try:
                    result = p(graph)
                except TorchMDFError:
                    raise
                except Exception as e:  # a bug in a pass: say which pass
                    raise PassError(f"pass {p.display_name} failed: {type(e).__name__}: {e}") from e
                dt = time.perf_counter() - t0
                graph = result.graph
                if self.verify_each:
                    try:
                        graph.verify()
                    except VerificationError as e:
                        raise VerificationError(
                            f"after pass {p.display_name}: {e.raw_message}", location=e.location) from e
                if self.instrumentation is not None:
                    self.instrumentation.after_pass(p, graph, dt, result.modified, it)
                round_modified |= result.modified
            any_modified |= round_modified
            if not round_modified or not self.fixed_point:
                break
        else:
            raise PassError(f"passes did not reach a fixed point in {self.max_iterations} iterations",
                            hint="two passes may be undoing each other")
        return PassResult(graph, any_modified)


def run_passes(graph: Graph, passes: Sequence[str | Pass | Callable[[Graph], Any]] | None, **kwargs: Any
               ) -> tuple[Graph, Instrumentation]:
    """Run ``passes`` (None: the default pipeline) on ``graph``; returns graph and timings."""
    from torchmdf.passes import DEFAULT_PIPELINE

    inst = kwargs.pop("instrument", None) or Instrumentation()
    pm = PassManager(DEFAULT_PIPELINE if passes is None else passes, instrument=inst, **kwargs)
    return pm.run(graph).graph, inst
