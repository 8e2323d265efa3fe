"""Benchmark family ``sim_program`` (issue 12): MDF dynamical models as compiled programs.

    python benchmarks/bench_simulation.py [--quick | --smoke] [--device cpu|cuda] [--json out.json]

(the same as ``python benchmarks/run.py --only sim_program``).  Figures:

- ``MODEL/us_per_step``: ``torchmdf.simulate``'s time per step, marginal (the time of ``3N``
  steps minus that of ``N``, over ``2N``: lowering and compiling, paid once per call, left
  out); ``MODEL/modeci_us_per_step``: modeci_mdf's ``evaluate(time_increment=dt)`` per step,
  in the same run; ``MODEL/speedup_vs_modeci``: their ratio per round (higher is better; the
  target for FitzHugh-Nagumo is >= 100).  MODEL: ``fn`` (FitzHugh-Nagumo), ``states``,
  ``newton_cooling``, ``abc_conditions``.
- ``fn/compiled/us_per_step``, ``fn/compiled/speedup_vs_modeci``: the same with
  ``compile=True`` (chunks of unrolled steps under ``torch.compile``); ``fn/compiled/compile_s``:
  the one-time compile (skipped in ``--smoke``: it takes minutes on a small CPU).
- ``fn/region/fx_us_per_step``, ``fn/region/ort_us_per_step``: the program form,
  ``torchmdf.simulation_graph`` (one IR graph whose time loop is an ``onnx::Loop``), compiled
  to FX (the loop as ``torch.ops.higher_order.scan``, eager) and to ONNX run by onnxruntime
  (one thread): per step, marginal (graphs of ``N`` and ``3N`` steps, the build and the
  session left out), the trajectory checked equal to ``simulate``'s; ``fn/region/build_s``:
  building the graph of ``3N`` steps, emitting FX and ONNX and opening the session.
- ``fn/batch/seconds``: 10,000 FitzHugh-Nagumo parameter sets (``Iext`` swept) for 1,000 steps
  in one ``simulate`` call, compilation included (smaller in ``--quick``/``--smoke``: the
  sizes are in the figure's params), checked against the same equations hand-coded in torch;
  on ``--device cuda`` it runs there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import EXAMPLES, Context, Skip  # noqa: E402

FN_DT = 0.00005
MODELS = {"fn": ("MDF/FN.mdf.json", FN_DT), "states": ("MDF/States.json", 0.01),
          "newton_cooling": ("MDF/NewtonCoolingModel.json", 0.01), "abc_conditions": ("MDF/abc_conditions.json", 0.01)}
REGION_KEYS = ("fx_us_per_step", "ort_us_per_step", "build_s")
KEYS = ([f"{m}/{k}" for m in MODELS for k in ("us_per_step", "modeci_us_per_step", "speedup_vs_modeci")]
        + [f"fn/compiled/{k}" for k in ("us_per_step", "speedup_vs_modeci", "compile_s")]
        + [f"fn/region/{k}" for k in REGION_KEYS] + ["fn/batch/seconds"])


def _path(rel: str) -> str:
    p = EXAMPLES / rel
    if not p.is_file():
        raise Skip(f"{p} is not present")
    return str(p)


def _modeci_per_step(path: str, dt: float, n: int) -> float:
    """Seconds per ``evaluate(time_increment=dt)`` of modeci_mdf (after its first evaluate)."""
    import contextlib
    import io

    from modeci_mdf.execution_engine import EvaluableGraph
    from modeci_mdf.utils import load_mdf

    with contextlib.redirect_stdout(io.StringIO()):
        eg = EvaluableGraph(load_mdf(path).graphs[0], verbose=False)
        eg.evaluate()
        t0 = time.perf_counter()
        for _ in range(n):
            eg.evaluate(time_increment=dt)
        return (time.perf_counter() - t0) / n


def _ours_per_step(path: str, dt: float, n: int, device: str, **kw: Any) -> float:
    """Marginal seconds per step of ``simulate``: (time of 3n steps - time of n) / 2n."""
    import torchmdf
    from _harness import sync

    def t(steps: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        torchmdf.simulate(path, steps=steps, dt=dt, device=device, **kw)
        sync(device)
        return time.perf_counter() - t0
    a = t(n)
    b = t(3 * n)
    return max(b - a, 1e-9) / (2 * n)


def sim_program(ctx: Context) -> None:
    """See the module docstring."""
    try:
        import modeci_mdf  # noqa: F401
        have_modeci = True
    except ImportError:
        have_modeci = False
    n = ctx.pick(100, 300, 2000)
    rounds = ctx.pick(1, 3, 5)
    for label, (rel, dt) in MODELS.items():
        keys = [f"{label}/us_per_step", f"{label}/modeci_us_per_step", f"{label}/speedup_vs_modeci"]
        with ctx.case(*keys):
            path = _path(rel)
            ctx.progress(f"{label}: {n} and {3 * n} steps")
            _ours_per_step(path, dt, 2, ctx.device)  # warm-up
            ours, theirs = [], []
            for _ in range(rounds):
                ours.append(_ours_per_step(path, dt, n, ctx.device))
                if have_modeci:
                    theirs.append(_modeci_per_step(path, dt, n))
            ctx.record(keys[0], [x * 1e6 for x in ours], "us", params={"steps": n, "dt": dt})
            if not have_modeci:
                raise Skip("modeci_mdf is not installed")
            ctx.record(keys[1], [x * 1e6 for x in theirs], "us", params={"steps": n, "dt": dt})
            ctx.record(keys[2], [b / a for a, b in zip(ours, theirs)], "ratio", higher_is_better=True,
                       target=">= 100" if label == "fn" else None)

    ckeys = [f"fn/compiled/{k}" for k in ("us_per_step", "speedup_vs_modeci", "compile_s")]
    with ctx.case(*ckeys):
        if ctx.mode == "smoke":
            raise Skip("torch.compile of the chunk takes minutes on a small CPU: not in --smoke")
        path = _path(MODELS["fn"][0])
        chunk = ctx.pick(8, 32, 64)
        steps = ctx.pick(64, 8192, 65536)
        ctx.progress(f"fn: compile=True, chunk {chunk}")
        import torchmdf

        t0 = time.perf_counter()
        torchmdf.simulate(path, steps=4 * chunk, dt=FN_DT, compile=True, chunk=chunk, device=ctx.device)
        ctx.record(ckeys[2], [time.perf_counter() - t0], "s", params={"chunk": chunk})
        ours = [_ours_per_step(path, FN_DT, steps, ctx.device, compile=True, chunk=chunk) for _ in range(rounds)]
        ctx.record(ckeys[0], [x * 1e6 for x in ours], "us", params={"steps": steps, "chunk": chunk})
        if not have_modeci:
            raise Skip("modeci_mdf is not installed")
        theirs = [_modeci_per_step(path, FN_DT, n) for _ in range(rounds)]
        ctx.record(ckeys[1], [b / a for a, b in zip(ours, theirs)], "ratio", higher_is_better=True,
                   target=">= 100")

    _region(ctx, n, rounds)

    with ctx.case("fn/batch/seconds"):
        import torch

        import torchmdf
        from families import _check_same, _fn_params, fn_torch_loop

        path = _path(MODELS["fn"][0])
        batch, steps = ctx.pick((100, 100), (10_000, 1_000), (10_000, 1_000))
        ctx.progress(f"fn: {batch} parameter sets x {steps} steps")
        iext = torch.linspace(0.0, 1.0, batch, dtype=torch.float64)
        got: dict[str, Any] = {}

        def run() -> None:
            got["out"] = torchmdf.simulate(path, steps=steps, dt=FN_DT, params={"FNpop_0.Iext": iext},
                                           device=ctx.device)["FNpop_0.OUTPUT"]
        t = ctx.time(run, repeats=rounds, slow=True)
        ctx.record("fn/batch/seconds", t, "s", params={"batch": batch, "steps": steps, "device": ctx.device})
        p = _fn_params(Path(path))
        ref = fn_torch_loop({**p, "Iext": 0.0}, steps, FN_DT, 1, "cpu")[:, 0]
        _check_same(got["out"][:, 0].cpu(), ref, "FN batch column 0 vs torch loop", rtol=1e-9, atol=1e-12)
        last = fn_torch_loop({**p, "Iext": 1.0}, steps, FN_DT, 1, "cpu")[:, 0]
        _check_same(got["out"][:, -1].cpu(), last, "FN batch last column vs torch loop", rtol=1e-9, atol=1e-12)


def _region(ctx: Context, n: int, rounds: int) -> None:
    """``fn/region/...``: FitzHugh-Nagumo as one graph with a time loop, through FX and
    onnxruntime."""
    keys = [f"fn/region/{k}" for k in REGION_KEYS]
    with ctx.case(*keys):
        import torch

        import torchmdf
        from families import _check_same

        path = _path(MODELS["fn"][0])
        ctx.progress(f"fn: simulation_graph of {n} and {3 * n} steps, FX and onnxruntime")
        args = (torch.tensor(FN_DT, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        fx, sessions, build = {}, {}, 0.0
        for k in (n, 3 * n):
            t0 = time.perf_counter()
            g = torchmdf.simulation_graph(path, k, params=["FNpop_0.Iext"])
            gm = torchmdf.compile(g, target="fx")
            fx[k] = (lambda gm=gm: gm(*args))
            if ort is not None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = opts.inter_op_num_threads = 1
                proto = torchmdf.compile(g, target="onnx")
                sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
                sessions[k] = (lambda sess=sess, feed=feed: sess.run(None, feed))
            build = time.perf_counter() - t0
        want = torchmdf.simulate(path, steps=3 * n, dt=FN_DT)["FNpop_0.OUTPUT"]
        _check_same(fx[3 * n]()["FNpop_0.OUTPUT"], want, "FN region form (FX) vs simulate", rtol=0, atol=0)

        def per_step(calls: dict) -> list[float]:
            a = ctx.time(calls[n], repeats=rounds, slow=True)
            b = ctx.time(calls[3 * n], repeats=rounds, slow=True)
            return [max(y - x, 1e-12) / (2 * n) * 1e6 for x, y in zip(a, b)]
        ctx.record(keys[0], per_step(fx), "us", params={"steps": [n, 3 * n], "dt": FN_DT})
        ctx.record(keys[2], [build], "s", params={"steps": 3 * n})
        if ort is None:
            raise Skip("onnxruntime is not installed")
        _check_same(torch.from_numpy(sessions[3 * n]()[0]), want, "FN region form (onnxruntime) vs simulate",
                    rtol=0, atol=0)
        ctx.record(keys[1], per_step(sessions), "us", params={"steps": [n, 3 * n], "dt": FN_DT, "threads": 1})


if __name__ == "__main__":
    from run import main

    sys.exit(main([*sys.argv[1:], "--only", "sim_program"]))
