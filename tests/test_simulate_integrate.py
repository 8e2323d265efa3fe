"""Time derivatives as integrate nodes: forward Euler (modeci_mdf's) by default, RK4 on request,
each checked for its order of accuracy on ODEs with known solutions (issue 12, item 2)."""

from __future__ import annotations

import math

import pytest
import torch

import torchmdf
from torchmdf import mdf


def _model(params: list[mdf.Parameter], ports: dict[str, str]) -> mdf.Model:
    node = mdf.Node("n", parameters=params, output_ports=[mdf.OutputPort(k, value=v) for k, v in ports.items()])
    return mdf.Model("ode", graphs=[mdf.Graph("g", nodes=[node])])


def _decay() -> mdf.Model:
    """y' = -k y, y(0) = 1: y(t) = exp(-k t)."""
    return _model([mdf.Parameter("k", value=1.0),
                   mdf.Parameter("y", default_initial_value=1.0, time_derivative="-k * y")], {"y": "y"})


def _oscillator() -> mdf.Model:
    """x' = v, v' = -x, x(0) = 1, v(0) = 0: x(t) = cos t (two states, coupled)."""
    return _model([mdf.Parameter("x", default_initial_value=1.0, time_derivative="v"),
                   mdf.Parameter("v", default_initial_value=0.0, time_derivative="-x")], {"x": "x"})


def _error_at_1(model: mdf.Model, port: str, n: int, method: str, exact: float) -> float:
    traj = torchmdf.simulate(model, steps=n + 1, dt=1.0 / n, method=method)[port]  # step i is t = i dt
    return abs(float(traj[-1]) - exact)


@pytest.mark.parametrize("method,order", [("euler", 1), ("rk4", 4)])
@pytest.mark.parametrize("which", ["decay", "oscillator"])
def test_order_of_accuracy(method, order, which):
    model, port, exact = ((_decay(), "n.y", math.exp(-1.0)) if which == "decay"
                          else (_oscillator(), "n.x", math.cos(1.0)))
    e1 = _error_at_1(model, port, 20, method, exact)
    e2 = _error_at_1(model, port, 40, method, exact)
    assert math.log2(e1 / e2) == pytest.approx(order, abs=0.25)


def test_rk4_step_is_the_textbook_formula():
    dt = 0.1
    y = torchmdf.simulate(_decay(), steps=2, dt=dt, method="rk4")["n.y"]
    k1 = -1.0
    k2 = -(1 + dt / 2 * k1)
    k3 = -(1 + dt / 2 * k2)
    k4 = -(1 + dt * k3)
    assert float(y[1]) == pytest.approx(1 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), rel=1e-14)


def test_rk4_batches_and_differentiates():
    k = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = torchmdf.simulate(_decay(), steps=11, dt=0.1, method="rk4", params={"n.k": k})["n.y"]
    torch.testing.assert_close(y[-1], torch.exp(-k.detach()), rtol=1e-4, atol=0)  # RK4: (k dt)^4 error
    (g,) = torch.autograd.grad(y[-1].sum(), k)
    torch.testing.assert_close(g, -torch.exp(-k.detach()), rtol=1e-3, atol=0)  # d/dk exp(-k t) at t = 1


def test_the_integrate_pass_refuses_an_unknown_method():
    from torchmdf.passes.integrate import Integrate

    with pytest.raises(torchmdf.TorchMDFError, match="midpoint"):
        Integrate(method="midpoint")


@pytest.mark.slow
def test_compiled_chunks_equal_the_step_by_step_run():
    """compile=True: chunks of unrolled steps under torch.compile, the rest step by step."""
    model = _oscillator()
    eager = torchmdf.simulate(model, steps=23, dt=0.05, method="rk4")["n.x"]
    seen = []
    chunked = torchmdf.simulate(model, steps=23, dt=0.05, method="rk4", compile=True, chunk=4,
                                progress=lambda d, t: seen.append(d))["n.x"]
    torch.testing.assert_close(chunked, eager, rtol=1e-12, atol=1e-12)
    assert seen == [1, 2, 6, 10, 14, 18, 22, 23]  # two steps, five compiled chunks of 4, one step


def test_rk4_refuses_a_node_that_runs_twice_in_one_evaluation():
    node = mdf.Node("n", parameters=[mdf.Parameter("y", default_initial_value=1.0, time_derivative="-y")],
                    output_ports=[mdf.OutputPort("y", value="y")])
    twice = mdf.ConditionSet(termination={"environment_state_update": mdf.Condition("AfterNCalls", dependency="n", n=2)})
    model = mdf.Model("m", graphs=[mdf.Graph("g", nodes=[node], conditions=twice)])
    with pytest.raises(torchmdf.TorchMDFError, match="more than once"):
        torchmdf.simulate(model, steps=3, dt=0.1, method="rk4")
    y = torchmdf.simulate(model, steps=3, dt=0.1)["n.y"]  # Euler: two steps per evaluation
    assert y.tolist() == pytest.approx([1.0, 0.9 ** 2, 0.9 ** 4], rel=1e-12)
