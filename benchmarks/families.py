"""The benchmark families: each is one function ``fn(ctx)`` recording figures on a
:class:`_harness.Context`, registered in :data:`FAMILIES` (its key is the family's JSON key).

Adding a family is one place: write ``def my_family(ctx): ...`` here (or import it here) and
add ``"my_family": my_family`` to ``FAMILIES``.  Record through the context, so the figure
gets min/median/spread and shows in the table, the JSON, ``--compare`` and the README:

- ``ctx.ab(key, a, b, names=(...), unit=...)``: interleaved A/B timing, figure = time(a)/time(b);
- ``ctx.record(key, samples, unit, target=...)``: any other figure from repeated samples
  (``ctx.time(fn)`` gives seconds per call over repeats after warm-up);
- ``with ctx.case(*keys):`` around each case: a failure or ``raise Skip("why")`` marks those
  keys and the run goes on; ``with ctx.budget(seconds, what):`` caps a case's time;
- ``ctx.isolated(worker, args, timeout)`` runs a function of :data:`WORKERS` in a fresh
  process (for honest peak memory);
- ``ctx.pick(smoke, quick, full)`` sizes the work by mode (``--smoke`` is for the CI test:
  seconds per family; ``--quick`` under 3 minutes in all on 2 cores).

Every family records the same figure keys in every mode and on every device (a figure that
cannot be measured is recorded as skipped, with the reason), so runs compare key by key.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _harness import EXAMPLES, REPO, Context, Skip

# -------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------

_TMP: tempfile.TemporaryDirectory | None = None


def tmpdir() -> Path:
    """One temporary directory for the whole run (removed at exit)."""
    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="torchmdf-bench-")
    return Path(_TMP.name)


def _zoo():
    import sys

    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import zoo

    return zoo


def _size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _leaves(out: Any) -> list:
    import torch
    from torch.utils import _pytree as pytree

    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def _check_same(got: Any, ref: Any, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """A benchmark of a wrong result is meaningless: fail the case when outputs differ."""
    import torch

    a, b = _leaves(got), _leaves(ref)
    if len(a) != len(b):
        raise AssertionError(f"{what}: {len(a)} outputs, the reference has {len(b)}")
    for x, y in zip(a, b):
        torch.testing.assert_close(x.double(), y.double(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _batched(inputs: tuple, batch: int) -> tuple:
    """The zoo's inputs with their batch dimension (dim 0 of the first input, and of every
    input that shares it) made ``batch`` by repeating the zoo's samples."""
    import torch

    n0 = inputs[0].shape[0]
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == n0:
            reps = -(-batch // n0)
            t = t.repeat(reps, *([1] * (t.dim() - 1)))[:batch].contiguous()
        out.append(t)
    return tuple(out)


def _to(inputs: tuple, device: str) -> tuple:
    return tuple(t.to(device) if hasattr(t, "to") else t for t in inputs)


@contextlib.contextmanager
def _quiet() -> Any:
    """modeci_mdf prints as it builds and evaluates: keep it off the report."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# -------------------------------------------------------------------------------------------
# native: the converted GraphModule against the original module
# -------------------------------------------------------------------------------------------


def native(ctx: Context) -> None:
    """torch -> IR -> default passes -> FX, timed against the original module on the same
    inputs (interleaved A/B, no_grad), at batch 1 and 64, eager and under ``torch.compile``.
    Target: ratio <= 1.03."""
    import torch

    import torchmdf

    zoo = _zoo()
    models = ["mlp", "cnn", "resnet18", "inception", "transformer_layer", "bert"]
    run_models = ctx.pick(["mlp"], ["mlp", "resnet18", "bert"], models)
    compiled = ctx.pick([("mlp", 1)], [("mlp", 1)], [(m, b) for m in models for b in (1, 64)])
    backend = ctx.pick("eager", "inductor", "inductor")
    if backend != "inductor":
        ctx.note(f"--{ctx.mode}: torch.compile uses backend={backend!r} (checks the path, not inductor's speed)")
    for name in models:
        for batch in (1, 64):
            keys = [f"{name}/b{batch}/eager", f"{name}/b{batch}/compiled"]
            with ctx.case(*keys):
                if name not in run_models:
                    raise Skip(f"not run in --{ctx.mode}")
                ctx.progress(f"{name} batch {batch}")
                entry = zoo.get(name)
                model = entry.make_model().eval().to(ctx.device)
                inputs = _to(_batched(entry.make_inputs(), batch), ctx.device)
                gm = torchmdf.compile(model, target="fx", example_inputs=inputs).eval()  # on the device
                with torch.no_grad():
                    _check_same(gm(*inputs), model(*inputs), name)
                    ctx.ab(keys[0], lambda: gm(*inputs), lambda: model(*inputs),
                           names=("converted", "native"), unit="ms", target="<= 1.03")
                    if (name, batch) not in compiled:
                        raise Skip(f"not run in --{ctx.mode} (torch.compile)")
                    ctx.progress(f"{name} batch {batch} torch.compile")
                    torch._dynamo.reset()
                    cgm = torch.compile(gm, backend=backend)
                    cmodel = torch.compile(model, backend=backend)
                    _check_same(cgm(*inputs), cmodel(*inputs), f"{name} compiled")
                    ctx.ab(keys[1], lambda: cgm(*inputs), lambda: cmodel(*inputs),
                           names=("converted", "native"), unit="ms", target="<= 1.03",
                           params={"backend": backend})


# -------------------------------------------------------------------------------------------
# conversion: torch -> MDF and MDF file -> GraphModule vs torch.export; per-node pass costs
# -------------------------------------------------------------------------------------------


def ir_chain(n: int):
    """An IR chain of ``n`` nodes alternating Relu / Add-a-constant / Tanh, with a dead Neg
    hanging off every tenth node (so DCE has work)."""
    import torch

    from torchmdf.ir import Graph, TensorType

    g = Graph("chain")
    v = g.add_input("x", TensorType(torch.float32, (8,)))
    c = g.add_constant(torch.tensor(0.5))
    built = 0
    while built < n:
        k = built % 3
        op = ("onnx::Relu", "onnx::Add", "onnx::Tanh")[k]
        v = g.create_node(op, [v, c] if k == 1 else [v]).output
        built += 1
        if built % 10 == 0 and built < n:
            g.create_node("onnx::Neg", [v])
            built += 1
    g.outputs = [v]
    return g


def ir_wide(n: int):
    """``n`` independent nodes fed by one input, each a graph output: Add / Mul of the input
    and a constant of its own (distinct nodes: none is a common subexpression of another)."""
    import torch

    from torchmdf.ir import Graph, TensorType

    g = Graph("wide")
    x = g.add_input("x", TensorType(torch.float32, (8,)))
    outs = []
    for i in range(n):
        c = g.add_constant(torch.tensor(1.0 + i))
        outs.append(g.create_node("onnx::Add" if i % 2 else "onnx::Mul", [x, c]).output)
    g.outputs = outs
    return g


def conversion(ctx: Context) -> None:
    import torch

    import torchmdf

    zoo = _zoo()
    models = ["mlp", "resnet18", "bert"]
    run_models = ctx.pick(["mlp"], ["resnet18"], models)
    for name in models:
        k_mdf, k_fx = f"{name}/to_mdf_vs_export", f"{name}/file_to_fx_vs_export"
        with ctx.case(k_mdf, k_fx):
            if name not in run_models:
                raise Skip(f"not run in --{ctx.mode}")
            ctx.progress(f"{name} -> MDF")
            entry = zoo.get(name)
            model, inputs = entry.make_model(), entry.make_inputs()

            def export():
                return torch.export.export(model, inputs)

            ctx.ab(k_mdf, lambda: torchmdf.compile(model, target="mdf", example_inputs=inputs), export,
                   names=("torchmdf.compile(target='mdf')", "torch.export.export"), unit="s", slow=True)
            path = tmpdir() / f"conversion_{name}.json"
            torchmdf.mdf.save(torchmdf.compile(model, target="mdf", example_inputs=inputs), path)
            ctx.progress(f"{name} MDF file -> GraphModule")
            gm = torchmdf.compile(path, target="fx")
            with torch.no_grad():
                _check_same(gm(*inputs), model(*inputs), f"{name} from file")
            ctx.ab(k_fx, lambda: torchmdf.compile(path, target="fx"), export,
                   names=("torchmdf.compile(file, target='fx')", "torch.export.export"), unit="s", slow=True,
                   params={"file_bytes": path.stat().st_size})

    key = "examples/inception_file_to_fx"
    with ctx.case(key):
        path = _example("PyTorch/inception.json")
        ctx.progress("inception.json -> GraphModule")
        samples = ctx.time(lambda: torchmdf.compile(path, target="fx"), repeats=ctx.pick(2, 5, 15), slow=True)
        ctx.record(key, [t * 1e3 for t in samples], "ms", target="< 100")

    _per_node(ctx)


def _example(rel: str):
    """A shared example file, or Skip where the shared folder lacks it."""
    path = EXAMPLES / rel
    if not path.is_file():
        raise Skip(f"{path} is not present")
    return path


def _per_node(ctx: Context) -> None:
    """The default pass pipeline (``compile(graph, target='ir')``: clone + passes with
    compile's defaults) and MDF emission, per IR node, on chain and wide graphs."""
    import torchmdf

    sizes = [1000, 10_000, 100_000]
    run_sizes = ctx.pick([1000], [1000, 10_000], sizes)
    budget = ctx.pick(20.0, 20.0, 300.0)
    builders: dict[str, Callable] = {"chain": ir_chain, "wide": ir_wide}
    for shape, build in builders.items():
        history: list[tuple[int, float]] = []
        for n in sizes:
            k_pipe, k_emit = f"per_node/{shape}/{_size(n)}/pipeline", f"per_node/{shape}/{_size(n)}/mdf_emit"
            with ctx.case(k_pipe, k_emit):
                if n not in run_sizes:
                    raise Skip(f"not run in --{ctx.mode}")
                reps = ctx.pick(1, 3, 3) if n == sizes[0] else ctx.pick(1, 1, 3)
                _check_prediction(history, n, reps, budget)
                ctx.progress(f"per-node cost, {shape} {_size(n)}")
                g = build(n)
                nodes = len(g)
                with ctx.budget(budget, f"{shape} {_size(n)}"):
                    pipe = ctx.time(lambda: torchmdf.compile(g, target="ir"), repeats=reps, slow=True,
                                    warmup=n == sizes[0])
                    history.append((n, min(pipe)))
                    g2 = torchmdf.compile(g, target="ir")
                    emit = ctx.time(lambda: torchmdf.emit(g2, target="mdf"), repeats=reps, slow=True)
                us = [t / nodes * 1e6 for t in pipe]
                ctx.record(k_pipe, us, "us/node", params={"nodes": nodes})
                ctx.record(k_emit, [t / nodes * 1e6 for t in emit], "us/node", params={"nodes": nodes})
        key = f"per_node/{shape}/pipeline_growth"
        with ctx.case(key):
            _growth(ctx, key, [f"per_node/{shape}/{_size(n)}/pipeline" for n in sizes])


def _growth(ctx: Context, key: str, keys: list[str]) -> None:
    """Per-node cost at the largest measured size over that at the smallest: 1 = linear."""
    figs = [ctx.figures.get(k, {}) for k in keys]
    measured = [(k, f) for k, f in zip(keys, figs) if "median" in f]
    if len(measured) < 2:
        raise Skip("needs two measured sizes")
    (k0, f0), (k1, f1) = measured[0], measured[-1]
    ctx.record(key, [f1["median"] / f0["median"]], "ratio", target="<= 2",
               params={"from": k0.split("/")[-2], "to": k1.split("/")[-2]})


# -------------------------------------------------------------------------------------------
# file_scaling: load, validate and compile MDF files of 1k / 10k / 100k nodes
# -------------------------------------------------------------------------------------------


def mdf_dict(shape: str, n: int) -> dict:
    """An MDF model as plain data: an input node, then ``n`` nodes, each computing either an
    expression (``inp * 0.5 + k``) or ``onnx::Relu`` of its input port; ``wide``: all fed by
    the input node (each edge with its own weight), ``chain``: each fed by the one before."""
    nodes: dict[str, Any] = {"input": {"parameters": {"x": {"value": [1.0, -2.0, 3.0]}},
                                       "output_ports": {"out": {"value": "x"}}}}
    edges: dict[str, Any] = {}
    prev = "input"
    for i in range(n):
        nid = f"n{i}"
        if i % 2 == 0:
            p = {"value": f"inp * 0.5 + {i % 997}"}
        else:
            p = {"function": "onnx::Relu", "args": {"X": "inp"}}
        nodes[nid] = {"input_ports": {"inp": {"shape": [3]}}, "parameters": {"y": p},
                      "output_ports": {"out": {"value": "y"}}}
        edge = {"sender": "input" if shape == "wide" else prev, "receiver": nid, "sender_port": "out",
                "receiver_port": "inp"}
        if shape == "wide":
            edge["parameters"] = {"weight": 1.0 + (i + 1) / n}  # distinct inputs: no node repeats another
        edges[f"e{i}"] = edge
        prev = nid
    return {"scaling": {"format": "ModECI MDF v0.4", "generating_application": "torchmdf benchmarks",
                        "graphs": {"g": {"nodes": nodes, "edges": edges}}}}


def file_scaling(ctx: Context) -> None:
    """Per MDF node: ``torchmdf.mdf.load`` (parse, build, validate) against ``json.load`` of the
    same file, ``torchmdf.mdf.validate`` alone, and ``torchmdf.compile(path, target='fx')``.
    Each stage has a time budget; a stage over it (or predicted over it from the smaller
    sizes) is skipped, with the reason, and so are its larger sizes."""
    import torchmdf
    from torchmdf.mdf import load, validate

    sizes = [1000, 10_000, 100_000]
    run_sizes = ctx.pick([1000], [1000, 10_000], sizes)
    budget = ctx.pick(20.0, 15.0, 120.0)  # seconds for one stage at one size, repeats included
    stages = ["load_vs_json", "validate", "to_fx"]
    key = "examples/mlp_pure_mdf/load_vs_json"
    with ctx.case(key):
        path = _example("PyTorch/mlp_pure_mdf.json")
        ctx.progress("PyTorch/mlp_pure_mdf.json")
        ctx.ab(key, lambda: load(path), lambda: _json_load(path), names=("torchmdf.mdf.load", "json.load"),
               unit="ms", slow=True, rounds=ctx.pick(1, 5, 15), target="< 3",
               params={"file_bytes": path.stat().st_size})
    for shape in ("wide", "chain"):
        history: dict[str, list[tuple[int, float]]] = {s: [] for s in stages}
        dead: dict[str, str] = {}
        warm = tmpdir() / f"scaling_{shape}_warmup.json"  # warm-up on a small file: imports, caches
        warm.write_text(json.dumps(mdf_dict(shape, 10)))
        validate(load(warm, validate=False))
        torchmdf.compile(warm, target="fx")
        for n in sizes:
            keys = {s: f"{shape}/{_size(n)}/{s}" for s in stages}
            if n not in run_sizes:
                for k in keys.values():
                    ctx.skip(k, f"not run in --{ctx.mode}")
                continue
            reps = ctx.pick(1, 3, 3) if n == sizes[0] else ctx.pick(1, 1, 3)  # larger: fewer (time)
            ctx.progress(f"{shape} {_size(n)}: writing the file")
            path = tmpdir() / f"scaling_{shape}_{n}.json"
            path.write_text(json.dumps(mdf_dict(shape, n)))
            model = None
            for stage in stages:
                key = keys[stage]
                with ctx.case(key):
                    if stage in dead:
                        raise Skip(dead[stage])
                    _check_prediction(history[stage], n, reps, budget)
                    ctx.progress(f"{shape} {_size(n)}: {stage}")
                    t0 = time.perf_counter()
                    try:
                        with ctx.budget(budget, f"{stage} of {_size(n)} {shape} nodes"):
                            if stage == "load_vs_json":
                                fig = ctx.ab(key, lambda: load(path), lambda: _json_load(path),
                                             names=("torchmdf.mdf.load", "json.load"), unit="ms", slow=True,
                                             rounds=reps, params={"nodes": n}, warmup=False)
                                per_call = fig["parts"]["torchmdf.mdf.load"]["median"] / 1e3
                            elif stage == "validate":
                                model = model or load(path, validate=False)
                                t = ctx.time(lambda: validate(model), repeats=reps, slow=True, warmup=False)
                                ctx.record(key, [x / n * 1e6 for x in t], "us/node", params={"nodes": n})
                                per_call = min(t)
                            else:
                                t = ctx.time(lambda: torchmdf.compile(path, target="fx"), repeats=reps,
                                             slow=True, warmup=False)
                                ctx.record(key, [x / n * 1e6 for x in t], "us/node", params={"nodes": n})
                                per_call = min(t)
                    except Skip as e:
                        dead[stage] = f"a smaller size was skipped: {e}"
                        raise
                    except Exception:
                        dead[stage] = f"failed at {_size(n)} nodes"
                        raise
                    finally:
                        if stage not in dead and time.perf_counter() - t0 > budget:
                            dead[stage] = f"over the budget of {budget:g} s at {_size(n)} nodes"
                    history[stage].append((n, per_call))
            path.unlink()
        for stage in ("validate", "to_fx"):
            key = f"{shape}/{stage}_growth"
            with ctx.case(key):
                _growth(ctx, key, [f"{shape}/{_size(n)}/{stage}" for n in sizes])


def _json_load(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)


def _check_prediction(history: list[tuple[int, float]], n: int, reps: int, budget: float) -> None:
    pred = _predict(history, n)
    if pred is not None and pred * reps > budget:
        raise Skip(f"predicted {pred:.1f} s per call from the smaller sizes: over the budget of {budget:g} s")


def _predict(history: list[tuple[int, float]], n: int) -> float | None:
    """Seconds per call at ``n`` nodes, extrapolated from the measured sizes (the growth
    exponent of the last two, at least linear)."""
    if not history:
        return None
    import math

    (n1, t1) = history[-1]
    k = 1.0
    if len(history) >= 2:
        n0, t0 = history[-2]
        if t0 > 0 and t1 > 0:
            k = max(1.0, math.log(t1 / t0) / math.log(n1 / n0))
    return t1 * (n / n1) ** k


# -------------------------------------------------------------------------------------------
# modeci: the shared examples and FitzHugh-Nagumo against modeci_mdf's EvaluableGraph
# -------------------------------------------------------------------------------------------


def _examples() -> list[str]:
    exp = EXAMPLES / "expected.json"
    if not exp.is_file():
        return []
    return sorted(json.loads(exp.read_text())["ok"])


FN_FILE = "MDF/FN.mdf.json"
FN_DT = 0.00005


def modeci(ctx: Context) -> None:
    """torchmdf against modeci_mdf 0.4 on the shared example files: ``from_file`` = load, build
    and one evaluation (``torchmdf.simulate(path, steps=1)`` vs ``load_mdf`` +
    ``EvaluableGraph`` + ``evaluate()``); ``evaluate`` = one more evaluation of what is built
    (the GraphModule's call vs ``EvaluableGraph.evaluate()``, files without state); and
    ``fn_steps``: simulating FitzHugh-Nagumo (``simulate(steps)`` vs ``evaluate()`` then
    ``evaluate(time_increment=dt)`` in a loop)."""
    import torch

    import torchmdf

    files = _examples()
    keys = [f"{f}/{k}" for f in files for k in ("from_file", "evaluate")] + ["fn_steps"]
    try:
        from modeci_mdf.execution_engine import EvaluableGraph
        from modeci_mdf.utils import load_mdf
    except ImportError:
        for k in keys:
            ctx.skip(k, "modeci_mdf is not installed")
        return
    if not files:
        ctx.skip("fn_steps", f"the shared examples are not present ({EXAMPLES})")
        return
    if ctx.device != "cpu":
        ctx.note("modeci_mdf runs on the CPU (numpy); these figures run torchmdf.simulate on the CPU "
                 "too, on any --device")
    quick = ["MDF/ABCD.json", "MDF/Simple.json", "MDF/States.json", "MDF/abc_conditions.json", FN_FILE,
             "ONNX/ab.json"]
    run_files = ctx.pick(["MDF/Simple.json", FN_FILE], quick, files)
    for f in files:
        k1, k2 = f"{f}/from_file", f"{f}/evaluate"
        with ctx.case(k1, k2):
            if f not in run_files:
                raise Skip(f"not run in --{ctx.mode}")
            ctx.progress(f)
            path = str(EXAMPLES / f)

            def ref_build(path=path):
                with _quiet():
                    eg = EvaluableGraph(load_mdf(path).graphs[0], verbose=False)
                    eg.evaluate()
                return eg

            ctx.ab(k1, lambda path=path: torchmdf.simulate(path, steps=1), ref_build,
                   names=("torchmdf", "modeci_mdf"), unit="ms", slow=True, rounds=ctx.pick(1, 3, 5))
            try:
                gm = torchmdf.compile(path, target="fx")
            except torchmdf.TorchMDFError as e:
                raise Skip(f"no single GraphModule for this file ({str(e).splitlines()[0][:120]})") from e
            eg = ref_build()

            def ref_eval(eg=eg):
                with _quiet():
                    eg.evaluate()

            with torch.no_grad():
                ctx.ab(k2, gm, ref_eval, names=("torchmdf", "modeci_mdf"), unit="ms")

    with ctx.case("fn_steps"):
        steps = ctx.pick(100, 500, 10_000)
        ctx.progress(f"FitzHugh-Nagumo, {steps} steps")
        path = str(EXAMPLES / FN_FILE)
        got: dict[str, Any] = {}

        def ours():
            got["ours"] = torchmdf.simulate(path, steps=steps, dt=FN_DT)["FNpop_0.OUTPUT"]

        def theirs():
            with _quiet():
                eg = EvaluableGraph(load_mdf(path).graphs[0], verbose=False)
                eg.evaluate()
                for _ in range(steps - 1):
                    eg.evaluate(time_increment=FN_DT)
                got["theirs"] = float(eg.enodes["FNpop_0"].evaluable_outputs["OUTPUT"].curr_value)

        ctx.ab("fn_steps", ours, theirs, names=("torchmdf.simulate", "modeci_mdf"), unit="s", slow=True,
               rounds=ctx.pick(1, 1, 3), params={"steps": steps, "dt": FN_DT})
        _check_same(got["ours"][-1], torch.tensor(got["theirs"]), "FN last step", rtol=1e-6, atol=1e-9)


# -------------------------------------------------------------------------------------------
# simulation: throughput of torchmdf.simulate
# -------------------------------------------------------------------------------------------


def _fn_params(path: Path) -> dict[str, float]:
    node = json.loads(path.read_text())["FN"]["graphs"]["FN"]["nodes"]["FNpop_0"]
    return {k: p["value"] for k, p in node["parameters"].items() if "value" in p}


def fn_torch_loop(p: dict[str, float], steps: int, dt: float, batch: int, device: str):
    """FitzHugh-Nagumo as FN.mdf.json writes it, hand-coded in torch (forward Euler, the
    output recorded after each step, as simulate does): the native reference."""
    import torch

    iext = torch.full((batch,), p["Iext"], dtype=torch.float64, device=device)
    v = torch.full((batch,), p["initial_v"], dtype=torch.float64, device=device)
    w = torch.full((batch,), p["initial_w"], dtype=torch.float64, device=device)
    th, msec = p["threshold"], p["MSEC"]
    out = torch.empty((steps, batch), dtype=torch.float64, device=device)
    out[0] = v
    for i in range(1, steps):
        dv = (p["a_v"] * v * v * v + (1 + th) * p["b_v"] * v * v + (-1 * th) * p["c_v"] * v + p["d_v"]
              + p["e_v"] * w + p["f_v"] * iext) / (p["time_constant_v"] * msec)
        v = v + dv * dt  # parameters update in declaration order: W's derivative sees the new V
        dw = (p["mode"] * p["a_w"] * v + p["b_w"] * w + p["c_w"]
              + (1 - p["mode"]) * p["uncorrelated_activity"]) / (p["time_constant_w"] * msec)
        w = w + dw * dt
        out[i] = v
    return out


def _simulate_batch(path: str, steps: int, dt: float, batch: int, device: str, param: tuple[str, float]):
    """``torchmdf.simulate`` of ``batch`` copies of the model (``param``: "node.parameter" and
    its value in the file, given to every copy), when it can batch (a ``params=`` argument)
    and place (``device=``) a run; batch 1 on the CPU otherwise."""
    import inspect

    import torch

    import torchmdf

    sig = inspect.signature(torchmdf.simulate).parameters
    kw: dict[str, Any] = {}
    if batch != 1:
        if "params" not in sig:
            raise Skip("torchmdf.simulate does not batch yet (no params=)")
        kw["params"] = {param[0]: torch.full((batch,), param[1], dtype=torch.float64)}
    if device != "cpu":
        if "device" not in sig:
            raise Skip("torchmdf.simulate has no device= yet")
        kw["device"] = device
    return lambda: torchmdf.simulate(path, steps=steps, dt=dt, **kw)


def simulation(ctx: Context) -> None:
    """Steps x batch per second of ``torchmdf.simulate`` (compilation included: it is one
    call), and FitzHugh-Nagumo against the same equations hand-coded in torch."""
    steps = ctx.pick(200, 1000, 10_000)
    batches = [1, 64, 1024]
    run_batches = ctx.pick([1, 64], [1, 64], batches)
    ctx.note("the batch axis is one parameter given to simulate(params=...) (_simulate_batch)")
    models = {"fn": (FN_FILE, ("FNpop_0.Iext", 0.0)),
              "newton_cooling": ("MDF/NewtonCoolingModel.json", ("cool_node.T_a", 20.0)),
              "rlc": ("MDF/SwitchedRLC_Circuit.json", ("V.R", 100.0))}
    for label, (f, param) in models.items():
        for batch in batches:
            k_tp, k_ratio = f"{label}/b{batch}/steps_per_s", f"{label}/b{batch}/vs_torch_loop"
            keys = [k_tp, k_ratio] if label == "fn" else [k_tp]
            with ctx.case(*keys):
                path = _example(f)
                if batch not in run_batches:
                    raise Skip(f"not run in --{ctx.mode}")
                sim = _simulate_batch(str(path), steps, FN_DT, batch, ctx.device, param)
                ctx.progress(f"simulate {label}, batch {batch}, {steps} steps")
                t = ctx.time(sim, repeats=ctx.slow_rounds, slow=True)
                ctx.record(k_tp, [steps * batch / x for x in t], "steps/s", higher_is_better=True,
                           params={"steps": steps})
                if label == "fn":
                    p = _fn_params(path)
                    ref = fn_torch_loop(p, steps, FN_DT, batch, ctx.device)
                    _check_same(sim()["FNpop_0.OUTPUT"].reshape(steps, -1), ref, "FN vs torch loop",
                                rtol=1e-6, atol=1e-9)
                    ctx.ab(k_ratio, sim, lambda: fn_torch_loop(p, steps, FN_DT, batch, ctx.device),
                           names=("torchmdf.simulate", "torch loop"), unit="s", slow=True,
                           params={"steps": steps})


# -------------------------------------------------------------------------------------------
# memory: peak RSS (and GPU memory) of conversion against the parameters' bytes
# -------------------------------------------------------------------------------------------


def _rss() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) in bytes, from /proc/self/status."""
    cur = peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cur, peak


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class WideMLP:
    """A plain MLP big enough that its parameters dominate (``width`` x ``width`` x
    ``layers``)."""

    @staticmethod
    def make(width: int, layers: int):
        import torch

        torch.manual_seed(0)
        mods: list[Any] = []
        for _ in range(layers):
            mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
        return torch.nn.Sequential(*mods).eval(), (torch.randn(1, width),)


def memory_case(case: str, width: int, layers: int, device: str, path: str | None = None) -> dict:
    """Runs in a fresh process (``ctx.isolated``): build what the case starts from, reset the
    peak, convert, and return the peak above the starting RSS (and on CUDA the peak allocated
    above the starting allocation)."""
    import gc

    import torch

    import torchmdf

    if not os.path.exists("/proc/self/status"):
        return {"skip": "peak RSS is read from /proc/self/status (Linux only)"}
    torch.set_num_threads(1)
    model, inputs = WideMLP.make(width, layers)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    cuda = device.startswith("cuda")
    if case == "file_to_fx":
        del model
        run: Callable[[], Any] = lambda: torchmdf.compile(path, target="fx")  # noqa: E731
    else:
        model.to(device)
        inputs = _to(inputs, device)
        target = "mdf" if case == "to_mdf" else "fx"
        run = lambda: torchmdf.compile(model, target=target, example_inputs=inputs)  # noqa: E731
    torchmdf.compile(WideMLP.make(8, 1)[0], target="fx", example_inputs=(torch.randn(1, 8),))  # imports, caches
    gc.collect()
    base, _ = _rss()
    if not _reset_peak():
        return {"skip": "cannot reset the peak RSS (/proc/self/clear_refs)"}
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    out = run()
    _, peak = _rss()
    res = {"param_bytes": param_bytes, "peak_rss_extra": peak - base, "base_rss": base}
    if cuda:
        torch.cuda.synchronize()
        res["peak_cuda_extra"] = torch.cuda.max_memory_allocated() - cuda_base
    del out
    return res


WORKERS: dict[str, Callable[..., dict]] = {"memory_case": memory_case}


def memory(ctx: Context) -> None:
    """Peak RSS above the starting point while converting a wide MLP, over its parameters'
    bytes (target < 2), each case in a fresh process: torch -> MDF object, torch -> GraphModule,
    MDF file -> GraphModule; on CUDA also the peak allocated GPU memory."""
    import torchmdf

    width, layers = ctx.pick((256, 2), (384, 4), (2048, 8))
    reps = ctx.pick(1, 1, 3)
    cases = ["to_mdf", "to_fx", "file_to_fx"]
    run_cases = ctx.pick(["to_fx"], cases, cases)  # a fresh process each: seconds of imports
    path = None
    cuda = ctx.device.startswith("cuda")
    for case in cases:
        k_rss, k_gpu = f"{case}/peak_rss_over_params", f"{case}/peak_cuda_over_params"
        with ctx.case(k_rss, k_gpu):
            if case not in run_cases:
                raise Skip(f"not run in --{ctx.mode}")
            if case == "file_to_fx" and path is None:
                ctx.progress("writing the MDF file")
                model, inputs = WideMLP.make(width, layers)
                path = tmpdir() / "memory_mlp.json"
                torchmdf.mdf.save(torchmdf.compile(model, target="mdf", example_inputs=inputs), path)
                del model
            ctx.progress(f"{case} in a fresh process")
            runs = [ctx.isolated("memory_case", {"case": case, "width": width, "layers": layers,
                                                 "device": ctx.device, "path": str(path) if path else None},
                                 timeout=ctx.pick(120, 180, 600)) for _ in range(reps)]
            pb = runs[0]["param_bytes"]
            params = {"param_bytes": pb, "width": width, "layers": layers}
            if case == "file_to_fx":
                params["file_bytes"] = path.stat().st_size
            ctx.record(k_rss, [r["peak_rss_extra"] / pb for r in runs], "x", target="< 2", params=params,
                       parts={"peak_rss_extra": _mb([r["peak_rss_extra"] for r in runs])}, parts_unit="MB")
            if not cuda:
                ctx.skip(k_gpu, "no --device cuda")
            elif case == "file_to_fx":
                ctx.skip(k_gpu, "an MDF file is built on the CPU (compile has no device= for files)")
            else:
                ctx.record(k_gpu, [r["peak_cuda_extra"] / pb for r in runs], "x", target="< 2", params=params)


def _mb(xs: list[int]) -> dict:
    from _harness import summarize

    return summarize([x / 2**20 for x in xs])


# -------------------------------------------------------------------------------------------
# the table of families (JSON keys, in run order)
# -------------------------------------------------------------------------------------------

from bench_simulation import sim_program  # noqa: E402 - a family of its own file (issue 12)

FAMILIES: dict[str, Callable[[Context], None]] = {
    "native": native,
    "conversion": conversion,
    "file_scaling": file_scaling,
    "modeci": modeci,
    "simulation": simulation,
    "memory": memory,
    "sim_program": sim_program,
}
