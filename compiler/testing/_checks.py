"""Ready-made properties: each check raises ``AssertionError`` saying what differs (so that
hypothesis shrinks a failing example), and returns nothing when the property holds."""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from typing import Any, Callable, Sequence

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ..errors import TorchMDFError, UnknownKeyWarning
from ..ir import Graph, TensorType
from ..mdf.symbolic import SymbolicGraph, is_symbolic
from ._ir_graphs import GraphCase, ir_graphs

ATOL = 1e-5
RTOL = 1e-4


def _flat(x: Any) -> list[Any]:
    """The tensors of a (nested) output, in order; a dict by its keys' order."""
    if isinstance(x, dict):
        return [t for k in x for t in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for e in x for t in _flat(e)]
    return [x]


def assert_outputs_close(got: Any, expected: Any, what: str, *, atol: float = ATOL, rtol: float = RTOL) -> None:
    """``got`` equals ``expected`` (nested lists/tuples/dicts of tensors; NaN equals NaN)."""
    g, e = _flat(got), _flat(expected)
    if len(g) != len(e):
        raise AssertionError(f"{what}: {len(g)} outputs, expected {len(e)}")
    for k, (a, b) in enumerate(zip(g, e)):
        if not isinstance(b, torch.Tensor):
            if a != b and not (isinstance(a, torch.Tensor) and a.numel() == 1 and float(a) == float(b)):
                raise AssertionError(f"{what}: output {k} is {a!r}, expected {b!r}")
            continue
        a = torch.as_tensor(a)
        if a.shape != b.shape:
            raise AssertionError(f"{what}: output {k} has shape {tuple(a.shape)}, expected {tuple(b.shape)}")
        if b.dtype == torch.bool or not (b.is_floating_point() or b.is_complex()):
            if not torch.equal(a.to(b.dtype), b):
                raise AssertionError(f"{what}: output {k} differs:\n{a}\nexpected\n{b}")
            continue
        try:
            torch.testing.assert_close(a.to(b.dtype), b, atol=atol, rtol=rtol, equal_nan=True)
        except AssertionError as err:
            raise AssertionError(f"{what}: output {k} differs: {err}") from None


# -- passes ------------------------------------------------------------------------------------


def _as_pass(pass_: Any) -> Callable[[Graph], Graph]:
    """A pass name (``"fold_constants{...}"``), a ``Pass``, or a function ``graph -> graph|None``."""
    from torchmdf.passes import Pass, get_pass

    if isinstance(pass_, str):
        pass_ = get_pass(pass_)
    if isinstance(pass_, Pass):
        p = pass_
        return lambda g: p(g).graph
    return lambda g: pass_(g) or g


def _random_inputs(g: Graph, seed: int = 0) -> list[torch.Tensor]:
    """Inputs made from the graph's input types (for a user's strategy of plain graphs)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for v in g.inputs:
        t = v.type
        if t.shape is None or not t.is_static:
            raise AssertionError(f"input {v.name} has no static shape: draw GraphCase(graph, inputs) instead")
        x = torch.randn(tuple(t.shape), generator=gen)
        out.append(x.to(t.dtype) if t.dtype is not None else x)
    return out


def check_types_match(g: Graph, values: dict[str, Any], what: str) -> None:
    """Every value with a static type holds a tensor of that shape and dtype."""
    for gr in g.graphs():
        for node in gr:
            for o in node.outputs:
                t = o.type
                if o.name not in values or not isinstance(t, TensorType) or t.shape is None:
                    continue
                x = values[o.name]
                if not isinstance(x, torch.Tensor):
                    continue
                if t.is_static and tuple(x.shape) != tuple(t.shape):
                    raise AssertionError(f"{what}: {o.name} = {node.op} is typed {t} but computes shape "
                                         f"{tuple(x.shape)}")
                if t.rank is not None and x.dim() != t.rank:
                    raise AssertionError(f"{what}: {o.name} = {node.op} is typed {t} but computes rank {x.dim()}")
                if t.dtype is not None and x.dtype != t.dtype:
                    raise AssertionError(f"{what}: {o.name} = {node.op} is typed {t} but computes {x.dtype}")


def check_pass_on(pass_: Any, case: GraphCase | Graph, *, atol: float = ATOL, rtol: float = RTOL) -> Graph:
    """One example of :func:`check_pass`: the pass, on a copy of ``case``'s graph, leaves a
    graph that verifies, computes the same outputs on the case's inputs, and whose static types
    agree with the values computed.  Returns the rewritten graph."""
    from ..interpreter import run_graph

    if isinstance(case, Graph):
        case = GraphCase(case, _random_inputs(case))
    g0 = case.graph
    with torch.no_grad():
        expected, _ = run_graph(g0, case.inputs)
    g1 = _as_pass(pass_)(g0.clone())
    if not isinstance(g1, Graph):
        raise AssertionError(f"the pass returned {type(g1).__name__}, not a Graph")
    try:
        g1.verify()
    except TorchMDFError as e:
        raise AssertionError(f"the pass left an invalid graph: {e}\n{g1}") from None
    values: dict[str, Any] = {}
    with torch.no_grad():
        got, _ = run_graph(g1, case.inputs, values=values)
    assert_outputs_close(got, expected, f"after the pass\n{g1}\n", atol=atol, rtol=rtol)
    check_types_match(g1, values, "after the pass")
    return g1


def check_pass(pass_: Any, graphs: st.SearchStrategy | None = None, *, max_examples: int | None = None,
               atol: float = ATOL, rtol: float = RTOL) -> None:
    """Fuzz a pass: on every graph ``graphs`` draws (default :func:`ir_graphs`: every
    registered op, regions included), the pass keeps the IR valid, preserves the outputs and
    leaves correct types.  ``pass_``: a ``Pass``, a registered pass name (with options,
    ``"fold_constants{max_elements=10}"``) or a function ``graph -> graph | None``.  The
    hypothesis settings in force (a profile) apply; ``max_examples`` overrides them."""
    graphs = graphs if graphs is not None else ir_graphs()

    @given(graphs)
    def prop(case: Any) -> None:
        check_pass_on(pass_, case, atol=atol, rtol=rtol)

    if max_examples is not None:
        prop = settings(max_examples=max_examples)(prop)
    prop()


# -- backends ------------------------------------------------------------------------------------


def onnxruntime_outputs(onnx_model: Any, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Run an ``onnx.ModelProto`` with onnxruntime (CPU)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: torch.as_tensor(x).numpy() for i, x in zip(sess.get_inputs(), inputs)}
    return [torch.from_numpy(o) for o in sess.run(None, feed)]


def check_graph_backends(case: GraphCase, *, onnx: bool = True, atol: float = ATOL, rtol: float = RTOL) -> None:
    """An IR graph gives the interpreter's outputs through FX, through MDF (written to a file,
    read back, compiled to FX), and through ONNX (onnxruntime) when ``onnx``."""
    import torchmdf

    from ..interpreter import run_graph

    with torch.no_grad():
        expected, _ = run_graph(case.graph, case.inputs)
        gm = torchmdf.compile(case.graph.clone(), target="fx")
        assert_outputs_close(_run(gm, case.inputs, "IR -> FX"), expected, "IR -> FX")
        model = torchmdf.compile(case.graph.clone(), target="mdf")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "fuzz.json")
            torchmdf.mdf.save(model, path)
            gm2 = torchmdf.compile(path, target="fx")
            got = _mdf_call(gm2, case.inputs, "IR -> MDF file -> FX")
            if isinstance(got, list) and len(got) < len(expected):
                _assert_same_values(got, expected, "IR -> MDF file -> FX")
            else:
                assert_outputs_close(got, expected, "IR -> MDF file -> FX")
        if onnx:
            proto = torchmdf.compile(case.graph.clone(), target="onnx")
            assert_outputs_close(onnxruntime_outputs(proto, case.inputs), expected, "IR -> ONNX -> onnxruntime")


def _assert_same_values(got: list[Any], expected: list[Any], what: str) -> None:
    """An IR graph without a recorded signature comes back from MDF as a dict of output ports,
    and two outputs that passes made one value (CSE) are one port: every port equals some
    expected output and every expected output some port."""

    def close(a: Any, b: Any) -> bool:
        try:
            assert_outputs_close(a, b, what)
        except AssertionError:
            return False
        return True

    for k, e in enumerate(expected):
        if not any(close(g, e) for g in got):
            raise AssertionError(f"{what}: output {k} is in none of the {len(got)} output ports")
    for k, g in enumerate(got):
        if not any(close(g, e) for e in expected):
            raise AssertionError(f"{what}: output port {k} equals none of the expected outputs")


def _run(gm: Any, inputs: Sequence[Any], what: str) -> Any:
    """``gm(*inputs)``; an exception from the generated code is an ``AssertionError`` raised
    here: its traceback would name ``<eval_with_key>.N``, which changes with each module built,
    and hypothesis, replaying the example, would then report "Flaky" instead of shrinking it."""
    try:
        return gm(*inputs)
    except Exception as e:  # noqa: BLE001 - any failure of the compiled module fails the property
        raise AssertionError(f"{what} raised {type(e).__name__}: {e}") from None


def _mdf_call(gm: Any, inputs: Sequence[Any], what: str) -> Any:
    out = _run(gm, inputs, what)
    return list(out.values()) if isinstance(out, dict) else out


# -- torch models --------------------------------------------------------------------------------


def check_roundtrip(model: Any, inputs: Sequence[Any], *, onnx: bool = True, frontend: str | None = None,
                    atol: float = ATOL, rtol: float = RTOL, dynamic_batch: bool = False) -> None:
    """torch -> MDF -> file (JSON) -> FX gives what ``model(*inputs)`` gives, and so do the
    FX backend directly and, when ``onnx`` (and onnxruntime is installed), torch -> ONNX.
    ``frontend``: how the model enters (None: ``torch.export``; ``"fx"``: symbolic trace;
    ``"torchscript"``: ``torch.jit.script``; ``"trace"``: ``torch.jit.trace``).
    ``dynamic_batch``: converted with dim 0 of every input dynamic, and checked again on the
    inputs with one more row (each input's first row repeated)."""
    import torchmdf

    inputs = tuple(inputs)
    cases = [inputs]
    if dynamic_batch:
        cases.append(tuple(torch.cat([x, x[:1]]) if isinstance(x, torch.Tensor) and x.dim() else x
                           for x in inputs))
    with torch.no_grad():
        expected = [copy.deepcopy(model)(*case) for case in cases[1:]]
        expected.insert(0, model(*inputs))
    source: Any = model
    if frontend == "fx":
        source = torch.fx.symbolic_trace(model)
    elif frontend == "torchscript":
        source = torch.jit.script(model)
    elif frontend == "trace":
        with torch.no_grad():
            source = torch.jit.trace(model, inputs, check_trace=False)
    elif frontend is not None:
        raise ValueError(f"frontend must be None, 'fx', 'torchscript' or 'trace', not {frontend!r}")
    from ..passes import run_passes

    def check(run: Any, what: str) -> None:
        for case, want in zip(cases, expected):
            label = what if case is inputs else f"{what} (batch {len(case[0])})"
            assert_outputs_close(run(case, label), want, label, atol=atol, rtol=rtol)

    with torch.no_grad():
        # one lowering (the costly part) serves every backend: as lowered to MDF, and through
        # the default pipeline, as ``compile`` runs it, to FX and ONNX
        graph = torchmdf.lower(source, example_inputs=inputs, **({"dynamic_batch": True} if dynamic_batch else {}))
        compiled, _ = run_passes(graph.clone(), None)
        gm = torchmdf.emit(compiled.clone(), target="fx")
        check(lambda case, label: _run(gm, case, label), "torch -> FX")
        m = torchmdf.emit(graph, target="mdf")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.json")
            torchmdf.mdf.save(m, path)
            gm2 = torchmdf.compile(path, target="fx")
            check(lambda case, label: _run(gm2, case, label), "torch -> MDF file -> FX")
        if onnx:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return
            proto = torchmdf.emit(compiled, target="onnx")
            check(lambda case, label: onnxruntime_outputs(proto, case), "torch -> ONNX -> onnxruntime")


# -- MDF files -----------------------------------------------------------------------------------


def check_file_roundtrip(mdf_model: Any) -> None:
    """Writing ``mdf_model`` as JSON and as YAML and reading each back gives the same model
    (equal file form, ``to_dict``), and writing the read model again gives the same text."""
    import torchmdf

    want = mdf_model.to_dict()
    with tempfile.TemporaryDirectory() as d:
        for suffix in (".json", ".yaml"):
            path = os.path.join(d, "model" + suffix)
            torchmdf.mdf.save(mdf_model, path)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            back = torchmdf.mdf.load(path)
            got = back.to_dict()
            if got != want:
                raise AssertionError(f"{suffix} round trip changed the model:\n{_dict_diff(got, want)}")
            again = os.path.join(d, "again" + suffix)
            torchmdf.mdf.save(back, again)
            with open(again, encoding="utf-8") as f:
                if f.read() != text:
                    raise AssertionError(f"writing the {suffix} model read back gives another text")


def _dict_diff(got: Any, want: Any, path: str = "") -> str:
    """The first place two file forms differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        for k in list(want) + [k for k in got if k not in want]:
            if k not in got or k not in want:
                return f"{path}/{k}: {'missing' if k not in got else 'extra'}"
            if got[k] != want[k]:
                return _dict_diff(got[k], want[k], f"{path}/{k}")
        if list(got) != list(want):
            return f"{path}: key order {list(got)} != {list(want)}"
    return f"{path}: {got!r} != {want!r}"


# -- simulation ----------------------------------------------------------------------------------


def reference_trajectories(mdf_model: Any, steps: int, dt: float) -> dict[str, list[Any]]:
    """modeci_mdf's stepping, the contract of ``torchmdf.simulate``: ``evaluate()`` once, then
    ``evaluate(time_increment=dt)``; every output port's value after each step.  (Its engine,
    with the nodes of a consideration set run in a fixed order: see
    :func:`_order_consideration_sets`.)"""
    import numpy as np
    from modeci_mdf.execution_engine import EvaluableGraph
    from modeci_mdf.utils import load_mdf

    import torchmdf

    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(d, "model.json")
        torchmdf.mdf.save(mdf_model, path)
        mg = load_mdf(path).graphs[0]
        eg = EvaluableGraph(mg, verbose=False)
        _order_consideration_sets(eg, mg)
        out: dict[str, list[Any]] = {}
        for k in range(steps):
            if k == 0:
                eg.evaluate()
            else:
                eg.evaluate(time_increment=dt)
            for nid, en in eg.enodes.items():
                for pid, port in en.evaluable_outputs.items():
                    v = port.curr_value
                    out.setdefault(f"{nid}.{pid}", []).append(None if v is None else np.array(v, dtype=np.float64))
    return out


def _order_consideration_sets(eg: Any, graph: Any) -> None:
    """modeci_mdf runs the nodes of one consideration set in set order, which varies from run
    to run (a receiver may run before its sender and read its default): the reference runs
    them senders first (edges' topological order, file order between independent nodes)."""
    ids = [n.id for n in graph.nodes]
    preds = {i: {e.sender for e in graph.edges if e.receiver == i and e.sender != i} for i in ids}
    order: dict[str, int] = {}
    while len(order) < len(ids):
        ready = [i for i in ids if i not in order and preds[i] <= set(order)]
        for i in ready or [next(i for i in ids if i not in order)]:  # a cycle: file order
            order[i] = len(order)
    run = eg.scheduler.run

    def ordered_run(*args: Any, **kwargs: Any) -> Any:
        for ts in run(*args, **kwargs):
            yield sorted(ts, key=lambda n: order.get(n.id, len(order)))

    eg.scheduler.run = ordered_run


def check_simulation_equivalence(mdf_model: Any, steps: int = 5, dt: float = 0.01, *,
                                 atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """``torchmdf.simulate(mdf_model, steps, dt)`` gives, at every step and output port, what
    stepping the model with modeci_mdf's execution engine gives (needs ``modeci_mdf``)."""
    import torchmdf

    ref = reference_trajectories(mdf_model, steps, dt)
    traj = torchmdf.simulate(mdf_model, steps=steps, dt=dt)
    for key, values in ref.items():
        if key not in traj:
            if all(v is None for v in values):
                continue
            raise AssertionError(f"simulate has no trajectory for {key}")
        got = traj[key]
        for k, v in enumerate(values):
            g = torch.as_tensor(got[k], dtype=torch.float64)
            if v is None:
                if not bool(torch.isnan(g).all()):
                    raise AssertionError(f"{key} at step {k}: {g} before its node ran (expected NaN)")
                continue
            w = torch.from_numpy(v)
            if g.shape != w.shape and g.numel() == w.numel():
                g = g.reshape(w.shape)
            assert_outputs_close(g, w, f"{key} at step {k}", atol=atol, rtol=rtol)


# -- bad inputs ----------------------------------------------------------------------------------


def _snapshot(directory: str) -> dict[str, tuple[int, int]]:
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            st_ = os.stat(p)
            out[os.path.relpath(p, directory)] = (st_.st_size, st_.st_mtime_ns)
    return out


def _evaluate_symbolic(m: Any, steps: int) -> None:
    """``steps`` evaluations of a model on ACT-R chunks, every free input port holding the
    empty chunk (how the reference's scripts start one)."""
    sg = SymbolicGraph(m)
    inputs = {p.id: {} for _, p in sg.prog.free_ports}
    for _ in range(steps):
        sg.evaluate(inputs)


def check_bad_input(text: str, *, suffix: str = ".json", steps: int = 2) -> TorchMDFError | None:
    """Load, validate, compile (FX) and simulate a possibly hostile MDF file's ``text``: each
    either works or raises a located :class:`TorchMDFError`; never another exception, never a
    file written or changed in its directory, never a package imported that was not imported
    before.  Returns the error (None when the file is fine)."""
    import sys

    import torchmdf

    before_top = {m.split(".", 1)[0] for m in list(sys.modules)}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model" + suffix)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        files = _snapshot(d)
        err: TorchMDFError | None = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownKeyWarning)
                m = torchmdf.mdf.load(path)
            if m.graphs and is_symbolic(m.graphs[0]):  # ACT-R chunks: evaluated on Python values
                _evaluate_symbolic(m, steps)
            else:
                gm = torchmdf.compile(m, target="fx")
                with torch.no_grad():
                    gm()
                torchmdf.simulate(m, steps=steps)
        except TorchMDFError as e:
            err = e
            if not (e.location or "model" + suffix in str(e)) and not getattr(e, "ops", None):
                raise AssertionError(f"the error does not say where: {type(e).__name__}: {e}") from None
        except RecursionError as e:
            raise AssertionError(f"a bad file raised RecursionError, not a TorchMDFError: {e}") from e
        except Exception as e:  # noqa: BLE001 - the property: nothing else escapes
            raise AssertionError(f"a bad file raised {type(e).__name__}, not a TorchMDFError: {e}") from e
        after = _snapshot(d)
        if after != files:
            raise AssertionError(f"the directory of the file changed: {sorted(set(after) ^ set(files)) or after}")
    new_top = {m.split(".", 1)[0] for m in list(sys.modules)} - before_top
    if new_top:
        raise AssertionError(f"processing the file imported new packages: {sorted(new_top)}")
    return err
