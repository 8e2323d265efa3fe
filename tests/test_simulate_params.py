"""simulate(params=, inputs=, device=): batches equal single runs, gradients agree with finite
differences, bad names and batch sizes are located errors (issue 12, item 1)."""

from __future__ import annotations

import pytest
import torch
from test_simulate_conditions import _threshold_model  # one model: A adds rate until x >= 5

import torchmdf

FN = "MDF/FN.mdf.json"
OUT = "FNpop_0.OUTPUT"


def _fn(mdf_examples):
    return str(mdf_examples / FN)


def _fn_by_hand(iext: float, steps: int, dt: float) -> torch.Tensor:
    """FN.mdf.json's equations written out (modeci_mdf's Euler: W's derivative sees the new V)."""
    v, w, out = -1.0, 0.0, [-1.0]
    for _ in range(steps - 1):
        v = v + (-v ** 3 / 3 + v + 1.0 - w + iext) / 0.001 * dt
        w = w + (v - 0.8 * w + 0.7) / (12.5 * 0.001) * dt
        out.append(v)
    return torch.tensor(out, dtype=torch.float64)


def test_a_batched_sweep_equals_single_runs(mdf_examples):
    iext = torch.linspace(0.0, 1.0, 7, dtype=torch.float64)
    traj = torchmdf.simulate(_fn(mdf_examples), steps=60, dt=5e-5, params={"FNpop_0.Iext": iext})
    assert traj[OUT].shape == (60, 7)
    for i in range(7):
        single = torchmdf.simulate(_fn(mdf_examples), steps=60, dt=5e-5, params={"FNpop_0.Iext": float(iext[i])})
        assert torch.equal(traj[OUT][:, i], single[OUT])
        torch.testing.assert_close(single[OUT], _fn_by_hand(float(iext[i]), 60, 5e-5), rtol=1e-12, atol=1e-12)


def test_batched_params_and_inputs_together(mdf_examples):
    iext = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    drive = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    traj = torchmdf.simulate(_fn(mdf_examples), steps=20, dt=1e-4, params={"FNpop_0.Iext": iext},
                             inputs={"FNpop_0.INPUT": drive})
    for i in range(3):  # INPUT enters V's derivative exactly as Iext does (f_v = 1)
        torch.testing.assert_close(traj[OUT][:, i], _fn_by_hand(float(iext[i] + drive[i]), 20, 1e-4),
                                   rtol=1e-12, atol=1e-12)


def test_an_unbatched_param_changes_the_run(mdf_examples):
    a = torchmdf.simulate(_fn(mdf_examples), steps=30, dt=1e-4)[OUT]
    b = torchmdf.simulate(_fn(mdf_examples), steps=30, dt=1e-4, params={"FNpop_0.Iext": 0.8})[OUT]
    torch.testing.assert_close(b, _fn_by_hand(0.8, 30, 1e-4), rtol=1e-12, atol=1e-12)
    assert not torch.equal(a, b)


def test_dt_is_an_input_not_a_folded_constant(mdf_examples):
    from torchmdf.frontends.mdf import program
    from torchmdf.mdf.scheduler import flatten
    from torchmdf.simulation import _Compiled

    prog = program(_fn(mdf_examples))
    s0, s1 = (flatten(s) for s in prog.schedules(2))
    c = _Compiled(prog.segment(s1, first=False, dt=1.0, ran_before=frozenset(s0), program_inputs=True),
                  ["FNpop_0.Iext"], "euler", None)
    assert ("dt",) in c.args and ("param", "FNpop_0.Iext") in c.args
    for dt in (1e-4, 2e-4):
        torch.testing.assert_close(torchmdf.simulate(_fn(mdf_examples), steps=10, dt=dt)[OUT],
                                   _fn_by_hand(0.0, 10, dt), rtol=1e-12, atol=1e-12)


def test_gradients_agree_with_finite_differences(mdf_examples):
    path = _fn(mdf_examples)

    def run(iext, drive):
        return torchmdf.simulate(path, steps=12, dt=2e-4, params={"FNpop_0.Iext": iext},
                                 inputs={"FNpop_0.INPUT": drive})[OUT]

    iext = torch.tensor([0.1, 0.6], dtype=torch.float64, requires_grad=True)
    drive = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(run, (iext, drive))


def test_gradient_of_newton_cooling_matches_the_closed_form(mdf_examples):
    """T_{k+1} = T_k - c dt (T_k - T_a): dT_n/dT_a = 1 - (1 - c dt)^n (the file's Euler)."""
    ta = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    steps, dt = 10, 0.5
    t = torchmdf.simulate(str(mdf_examples / "MDF/NewtonCoolingModel.json"), steps=steps, dt=dt,
                          params={"cool_node.T_a": ta})["cool_node.out_port"]
    (g,) = torch.autograd.grad(t[-1], ta)
    assert float(g) == pytest.approx(1 - (1 - 0.1 * dt) ** (steps - 1), rel=1e-12)


def test_a_threshold_schedule_batches_as_single_runs():
    rate = torch.tensor([0.5, 1.5, 4.0], dtype=torch.float64)
    traj = torchmdf.simulate(_threshold_model(), steps=3, params={"A.rate": rate})["A.out"]
    assert traj.shape == (3, 3)
    for i in range(3):
        single = torchmdf.simulate(_threshold_model(), steps=3, params={"A.rate": float(rate[i])})["A.out"]
        assert torch.equal(traj[:, i], single)
    # the first evaluation runs A until x >= 5; later ones find the termination already met
    assert traj[0].tolist() == [5.0, 6.0, 8.0] and torch.equal(traj[2], traj[0])


def test_unknown_parameter_is_a_located_error_listing_the_valid_ones(mdf_examples):
    with pytest.raises(torchmdf.TorchMDFError) as e:
        torchmdf.simulate(_fn(mdf_examples), steps=2, params={"FNpop_0.nope": 1.0})
    text = str(e.value)
    assert "FN.mdf.json" in text and "FNpop_0.nope" in text and "FNpop_0.Iext" in text


def test_batch_size_mismatch_is_a_clear_error(mdf_examples):
    with pytest.raises(torchmdf.TorchMDFError, match="same batch size"):
        torchmdf.simulate(_fn(mdf_examples), steps=2, params={"FNpop_0.Iext": torch.zeros(3)},
                          inputs={"FNpop_0.INPUT": torch.zeros(4)})


def test_a_value_of_the_wrong_shape_is_refused(mdf_examples):
    with pytest.raises(torchmdf.TorchMDFError, match="shape"):
        torchmdf.simulate(str(mdf_examples / "MDF/conditions/threshold_condition.json"), steps=1,
                          inputs={"A.input_port1": torch.zeros(2, 3, 4)})


def test_bad_method_steps_and_chunk_are_refused(mdf_examples):
    for kw in ({"method": "midpoint"}, {"steps": 0}, {"chunk": 0}):
        with pytest.raises(torchmdf.TorchMDFError):
            torchmdf.simulate(_fn(mdf_examples), **{"steps": 2, **kw})


@pytest.mark.gpu
def test_the_same_program_runs_on_the_gpu(mdf_examples):
    iext = torch.linspace(0.0, 1.0, 16, dtype=torch.float64)
    cpu = torchmdf.simulate(_fn(mdf_examples), steps=50, dt=5e-5, params={"FNpop_0.Iext": iext})[OUT]
    gpu = torchmdf.simulate(_fn(mdf_examples), steps=50, dt=5e-5, params={"FNpop_0.Iext": iext}, device="cuda")[OUT]
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-12)
