"""Fit FitzHugh-Nagumo's external current to a target trajectory with ``torch.optim``:
gradients flow through ``torchmdf.simulate`` to the MDF parameter given in ``params=``.

    python -m torchmdf.examples.fit_fitzhugh_nagumo [--out DIR] [--steps N] [--true-iext X]

The model is FN.mdf.json's cell (the NeuroML/LEMS FitzHugh-Nagumo, as the MDF examples
write it), built here and saved to ``DIR/fitzhugh_nagumo.json``.  The target is the model's own
trajectory at ``--true-iext``; the fit starts from ``Iext = 0`` and runs L-BFGS on the mean
squared error of ``V``.  The example passes when the recovered current is within 1e-4 of the
true one.  A sweep of currents in one batched call shows the loss landscape the fit descends.
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch

import torchmdf
from torchmdf.mdf import Graph, InputPort, Model, Node, OutputPort, Parameter

from ._common import Report, example_parser, out_dir

DT = 5e-5
IEXT = "FNpop_0.Iext"
OUT = "FNpop_0.OUTPUT"


def build_model() -> Model:
    """FN.mdf.json's FitzHugh-Nagumo cell: V and W with time derivatives, Iext a parameter."""
    values = {"initial_w": 0.0, "initial_v": -1.0, "a_v": -1 / 3, "b_v": 0.0, "c_v": 1.0, "d_v": 1.0,
              "e_v": -1.0, "f_v": 1.0, "time_constant_v": 1.0, "a_w": 1.0, "b_w": -0.8, "c_w": 0.7,
              "time_constant_w": 12.5, "threshold": -1.0, "mode": 1.0, "uncorrelated_activity": 0.0,
              "Iext": 0.0, "MSEC": 0.001}
    params = [Parameter(k, value=v) for k, v in values.items()]
    params += [
        Parameter("V", default_initial_value="initial_v",
                  time_derivative="(a_v*V*V*V + (1+threshold)*b_v*V*V + (-1*threshold)*c_v*V + d_v + e_v*W "
                                  "+ f_v*Iext + INPUT) / (time_constant_v*MSEC)"),
        Parameter("W", default_initial_value="initial_w",
                  time_derivative="(mode*a_w*V + b_w*W + c_w + (1-mode)*uncorrelated_activity) / "
                                  "(time_constant_w*MSEC)"),
    ]
    node = Node("FNpop_0", input_ports=[InputPort("INPUT")], parameters=params,
                output_ports=[OutputPort("OUTPUT", value="V")])
    return Model("FN", graphs=[Graph("FN", nodes=[node])])


def fit(model: Model, target: torch.Tensor, steps: int, start: float = 0.0, iterations: int = 30
        ) -> tuple[float, list[float]]:
    """L-BFGS on the external current; returns it and the loss after each evaluation."""
    iext = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([iext], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)
    losses: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        v = torchmdf.simulate(model, steps=steps, dt=DT, params={IEXT: iext})[OUT]
        loss = torch.mean((v - target) ** 2)
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    opt.step(closure)
    return float(iext.detach()), losses


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("fit_fitzhugh_nagumo", __doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--true-iext", type=float, default=0.6)
    args = p.parse_args(argv)
    out = out_dir(args)
    model = build_model()
    path = out / "fitzhugh_nagumo.json"
    torchmdf.mdf.save(model, path)
    print(f"wrote {path}")
    model = torchmdf.mdf.load(path)
    report = Report()

    with torch.no_grad():
        target = torchmdf.simulate(model, steps=args.steps, dt=DT, params={IEXT: args.true_iext})[OUT]
        sweep = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
        traj = torchmdf.simulate(model, steps=args.steps, dt=DT, params={IEXT: sweep})[OUT]  # [steps, 11]
        landscape = ((traj - target[:, None]) ** 2).mean(dim=0)
    print("loss over Iext (one batched simulate call):")
    print("  " + "  ".join(f"{float(i):.1f}:{float(x):.2e}" for i, x in zip(sweep, landscape)))

    got, losses = fit(model, target, args.steps)
    print(f"fitted Iext = {got:.6f} (true {args.true_iext}) after {len(losses)} simulations; "
          f"loss {losses[0]:.3e} -> {losses[-1]:.3e}")
    report.verdict("recovered Iext", abs(got - args.true_iext), 1e-4)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
