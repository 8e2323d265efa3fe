"""The drift-diffusion model (DDM) of the reference's "PyTorch and MDF" page: the seed's plain
function (a noisy evidence ``x`` integrated in a data-dependent ``while`` until ``|x| >=
threshold``) converted to MDF, the file read back and simulated as a batch of trials, each
stopping at its own decision.

    python -m torchmdf.examples.ddm [--out DIR] [--trials N] [--runs R] [--seed S]

What is compared: the reaction-time mean and the probability of the upper decision of N
trials of the MDF file (one batched call: ``torchmdf.passes.batch_trials``) against R runs of
the original Python function, each as a difference in standard errors.  Written: ``ddm.json``
and ``ddm.png`` (a few evidence trajectories and the reaction-time histogram, needs
matplotlib: ``pip install 'torchmdf[plot]'``).  The trajectories are drawn by stepping the
same update in Python (the converted program returns only each trial's RT and decision).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from ._common import Report, example_parser, out_dir, torch_threads

PARAMS = {"starting_value": 0.0, "drift_rate": 0.3, "non_decision_time": 0.15, "threshold": 0.6,
          "noise": 1.0, "time_step_size": 0.001}
"""The reference's parameters, in the function's argument order."""

MAX_SE = 4.5
"""How many standard errors apart the two estimates may be (a failure by chance ~1e-5)."""


def ddm(starting_value, drift_rate, non_decision_time, threshold, noise, time_step_size):
    """The seed's DDM, as the reference writes it: one trial, returns (RT, upper decision)."""
    x = starting_value
    rt = torch.tensor(0.0)
    while torch.abs(x) < threshold:
        x = x + torch.normal(mean=drift_rate * time_step_size, std=noise) * torch.sqrt(time_step_size)
        rt = rt + 1.0
    rt = non_decision_time + rt * time_step_size
    decision = x >= threshold
    return rt, decision


def ddm_args(**overrides: float) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(float(overrides.get(k, v))) for k, v in PARAMS.items())


def convert(path: Path):
    """The function to an MDF file at ``path``; the MDF model."""
    from torchmdf import mdf
    from torchmdf.interfaces.pytorch import pytorch_to_mdf

    model, _ = pytorch_to_mdf(ddm, ddm_args())
    mdf.save(model, path)
    return model


def trials_program(path: Path):
    """The MDF file as one compiled batched program: ``f(*inputs[N]) -> (rt, upper, trips)``."""
    import torchmdf
    from torchmdf.frontends.mdf import lower_mdf
    from torchmdf.passes.batch_trials import batch_trials

    return torchmdf.compile(batch_trials(lower_mdf(path)), target="fx")


def run_trials(program, n: int, args: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RTs (float64), upper decisions (bool) and loop trips (int64) of ``n`` trials in one call."""
    from torchmdf.passes.batch_trials import broadcast_trials

    with torch.no_grad():
        rt, upper, trips = program(*broadcast_trials(n, *args))
    return rt.double(), upper.bool(), trips


def run_original(runs: int, args: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """RTs and decisions of ``runs`` calls of the original function (a Python loop)."""
    with torch.no_grad():
        out = [ddm(*args) for _ in range(runs)]
    return (torch.tensor([float(r) for r, _ in out], dtype=torch.float64),
            torch.tensor([bool(d) for _, d in out]))


def se_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mean(a) - mean(b)| in standard errors of the difference (a, b: independent samples)."""
    a, b = a.double(), b.double()
    se = math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))
    diff = abs(a.mean().item() - b.mean().item())
    return 0.0 if diff == 0 else diff / se if se > 0 else math.inf


def trajectories(k: int, args: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``k`` evidence paths, each stepped with the function's update until its decision."""
    x0, drift, _, threshold, noise, dt = args
    paths = []
    for _ in range(k):
        x, path = x0, [float(x0)]
        while torch.abs(x) < threshold:
            x = x + torch.normal(mean=drift * dt, std=noise) * torch.sqrt(dt)
            path.append(float(x))
        paths.append(torch.tensor(path))
    return paths


def plot(paths: list[torch.Tensor], rt: torch.Tensor, upper: torch.Tensor, args: Sequence[torch.Tensor],
         path: Path) -> Path | None:
    """Trajectories above, the RT histogram by decision below; None where matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        print("  plot skipped: matplotlib is not installed (pip install 'torchmdf[plot]')")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, _, t0, threshold, _, dt = (float(a) for a in args)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6))
    for p in paths:
        t = t0 + torch.arange(len(p), dtype=torch.float64) * dt
        top.plot(t.numpy(), p.numpy(), lw=0.8, color="tab:blue" if p[-1] >= threshold else "tab:red")
    for level in (threshold, -threshold):
        top.axhline(level, color="black", lw=1)
    top.set_ylabel("evidence x")
    top.set_title(f"DDM: {len(paths)} trajectories (upper blue, lower red)")
    bins = 40
    bottom.hist(rt[upper].numpy(), bins=bins, alpha=0.7, label=f"upper ({int(upper.sum())})", color="tab:blue")
    bottom.hist(rt[~upper].numpy(), bins=bins, alpha=0.7, label=f"lower ({int((~upper).sum())})", color="tab:red")
    bottom.set_xlabel("reaction time (s)")
    bottom.set_ylabel("trials")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"  plot: {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("ddm", __doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5000, help="trials of the MDF model, in one call (default 5000)")
    p.add_argument("--runs", type=int, default=500, help="runs of the original function (default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--paths", type=int, default=6, help="trajectories drawn (default 6)")
    args = p.parse_args(argv)
    out = out_dir(args)
    params = ddm_args()
    torch.manual_seed(args.seed)

    path = out / "ddm.json"
    convert(path)
    print(f"wrote {path}: the seed's ddm function as MDF (its while loop is an onnx::Loop nested graph)")
    program = trials_program(path)
    with torch_threads(1):  # a step is a few small vector ops: thread hand-offs would dominate
        start = time.perf_counter()
        rt, upper, trips = run_trials(program, args.trials, params)
        batched = time.perf_counter() - start
    start = time.perf_counter()
    rt0, upper0 = run_original(args.runs, params)
    single = time.perf_counter() - start
    print(f"MDF model: {args.trials} trials in one call, {args.trials / batched:,.0f} trials/s; "
          f"original function: {args.runs} runs in a Python loop, {args.runs / single:,.0f} runs/s")

    report = Report()
    print(f"\ncompared ({args.trials} MDF trials vs {args.runs} runs of the original):")
    for what, a, b in (("mean RT (s)", rt, rt0), ("P(upper)", upper.double(), upper0.double())):
        z = se_difference(a, b)
        print(f"  {what}: MDF {a.mean().item():.4f} vs original {b.mean().item():.4f}, "
              f"difference {z:.2f} standard errors (tolerance {MAX_SE})")
        report.require(f"{what} agrees", z <= MAX_SE)
    t0, dt = float(params[2]), float(params[5])
    own = torch.allclose(rt, t0 + trips.double() * dt, atol=1e-5) and bool((trips > 0).all())
    report.require("each trial's RT is t0 + its own trip count * dt", own)
    plot(trajectories(args.paths, params), rt, upper, params, out / "ddm.png")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
