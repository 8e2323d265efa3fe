"""The DDM as a batch of trials (issue 12.6) and the ``ddm`` example (issue 13): the converted
function, read back from its MDF file and batched by ``batch_trials``, has the original's
reaction-time and choice statistics; each trial stops at its own threshold crossing (checked
exactly on noise-free trials against single runs of the original); ops that would mix trials
are refused with located errors."""

from __future__ import annotations

import pytest
import torch

import torchmdf
from torchmdf.examples import ddm as example
from torchmdf.frontends.mdf import lower_mdf
from torchmdf.interpreter import run_graph
from torchmdf.ir import Graph, TensorType
from torchmdf.passes import run_passes
from torchmdf.passes.batch_trials import batch_trials, broadcast_trials

ARGS = example.ddm_args()


@pytest.fixture(scope="module")
def ddm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddm") / "ddm.json"
    example.convert(path)
    return path


@pytest.fixture(scope="module")
def program(ddm_file):
    return example.trials_program(ddm_file)


def test_batched_statistics_match_single_runs_of_the_original(program):
    torch.manual_seed(2024)
    rt0, up0 = example.run_original(400, ARGS)
    torch.manual_seed(7)
    rt, up, trips = example.run_trials(program, 4000, ARGS)
    assert rt.shape == up.shape == trips.shape == (4000,)
    assert example.se_difference(rt, rt0) < example.MAX_SE
    assert example.se_difference(up.double(), up0.double()) < example.MAX_SE
    assert 0.3 < rt.mean().item() < 0.8 and 0.35 < up.double().mean().item() < 0.7  # the DDM regime
    assert len(torch.unique(trips)) > 100  # trials really stopped at different times


def _noise_free(drifts, starts):
    """Per-trial inputs with no noise: each trial's path and stopping step are deterministic."""
    n = len(drifts)
    args = broadcast_trials(n, *ARGS)
    args[0] = torch.tensor(starts)
    args[1] = torch.tensor(drifts)
    args[4] = torch.zeros(n)
    return args


def _original(args, i):
    return example.ddm(*(a[i] for a in args))


@pytest.mark.parametrize("through", ["fx", "interpreter"])
def test_each_trial_stops_at_its_own_crossing(ddm_file, program, through):
    """Noise-free trials with different drifts cross at different steps (one starts past the
    threshold and never steps, one drifts down); each equals a single run of the original, so
    a finished trial did not move while the others went on."""
    args = _noise_free([30.0, -45.0, 60.0, 20.0, 55.0], [0.0, 0.0, 0.1, 0.7, -0.2])
    if through == "fx":
        with torch.no_grad():
            rt, up, trips = program(*args)
    else:
        rt, up, trips = run_graph(batch_trials(lower_mdf(ddm_file)), args)[0]
    for i in range(len(trips)):
        want_rt, want_up = _original(args, i)
        assert float(rt[i]) == pytest.approx(float(want_rt), abs=1e-6)
        assert bool(up[i]) == bool(want_up)
    assert int(trips[3]) == 0 and not bool(up[1])
    assert len(set(trips.tolist())) == len(trips)  # different stopping steps
    torch.testing.assert_close(rt, ARGS[2] + trips.float() * ARGS[5])


def test_batch_trials_is_a_named_pass_and_keeps_the_original(ddm_file):
    g = lower_mdf(ddm_file)
    before = str(g)
    b = batch_trials(g)
    assert str(g) == before  # a copy was batched
    named, _ = run_passes(lower_mdf(ddm_file), ["batch_trials{trip_counts=False}"])
    assert len(named.outputs) == 2 and len(b.outputs) == 3
    assert all(v.type.shape[0] == "trials" for v in b.inputs)


def _loop_graph(body_op: str = "onnx::Add", scan: bool = False) -> Graph:
    """``while v < 10: v = body_op(v, 1)`` with an optional scan output."""
    g = Graph("loop")
    v0 = g.add_input("v0", TensorType(torch.float32, ()))
    ten = g.add_constant(torch.tensor(10.0))
    cond = g.create_node("onnx::Less", [v0, ten]).output
    body = g.new_region("body")
    body.add_input("i", TensorType(torch.int64, ()))
    body.add_input("c", TensorType(torch.bool, ()))
    v = body.add_input("v", TensorType(torch.float32, ()))
    one = body.add_constant(torch.tensor(1.0))
    if body_op == "onnx::MatMul":
        nxt = body.create_node("onnx::Add", [v, body.create_node(body_op, [one, one]).output]).output
    else:
        nxt = body.create_node(body_op, [v, one]).output
    body.outputs = [body.create_node("onnx::Less", [nxt, ten]).output, nxt] + ([nxt] if scan else [])
    loop = g.create_node("onnx::Loop", [None, cond, v0], num_outputs=2 if scan else 1, regions=[body])
    g.outputs = [loop.outputs[0]]
    return g


def test_a_small_loop_batches_and_counts_trips():
    b = batch_trials(_loop_graph())
    v, trips = run_graph(b, [torch.tensor([0.0, 5.5, 12.0, 9.5])])[0]
    torch.testing.assert_close(v, torch.tensor([10.0, 10.5, 12.0, 10.5]))
    assert trips.tolist() == [10, 5, 0, 1]


@pytest.mark.parametrize("body_op, scan, message", [
    ("onnx::MatMul", False, "cannot batch onnx::MatMul"),
    ("onnx::Add", True, "scan outputs"),
])
def test_ops_that_would_mix_trials_are_located_errors(body_op, scan, message):
    with pytest.raises(torchmdf.TorchMDFError, match=message) as e:
        batch_trials(_loop_graph(body_op, scan))
    assert "onnx::" in str(e.value)


def test_the_example_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from pictures import assert_picture
    from torchmdf.examples import run_example

    assert run_example("ddm", ["--out", str(tmp_path), "--trials", "400", "--runs", "60", "--paths", "2"]) == 0
    out = capsys.readouterr().out
    assert "mean RT (s): MDF" in out and "P(upper): MDF" in out and "standard errors" in out
    assert "all comparisons agree" in out
    model = torchmdf.mdf.load(tmp_path / "ddm.json")
    assert model.id == "ddm"
    w, h = assert_picture(tmp_path / "ddm.png", min_side=300)
    assert w >= 400 and h >= 400


def test_values_of_different_per_trial_ranks_line_up_by_trial():
    """``w[2] + v[]`` per trial: batched, ``[N, 2] + [N]`` would broadcast N against 2 (with
    N == 2, silently wrong); the pass aligns them so each trial equals its single run."""
    g = Graph("loop")
    v0 = g.add_input("v0", TensorType(torch.float32, ()))
    w0 = g.add_input("w0", TensorType(torch.float32, (2,)))
    ten = g.add_constant(torch.tensor(10.0))
    body = g.new_region("body")
    body.add_input("i", TensorType(torch.int64, ()))
    body.add_input("c", TensorType(torch.bool, ()))
    v = body.add_input("v", TensorType(torch.float32, ()))
    w = body.add_input("w", TensorType(torch.float32, (2,)))
    nv = body.create_node("onnx::Add", [v, body.add_constant(torch.tensor(1.0))]).output
    nw = body.create_node("onnx::Add", [w, v]).output
    body.outputs = [body.create_node("onnx::Less", [nv, ten]).output, nv, nw]
    loop = g.create_node("onnx::Loop", [None, g.create_node("onnx::Less", [v0, ten]).output, v0, w0],
                         num_outputs=2, regions=[body])
    g.outputs = list(loop.outputs)
    v0s, w0s = torch.tensor([0.0, 7.0]), torch.tensor([[0.0, 1.0], [1.0, 3.0]])
    got_v, got_w, trips = run_graph(batch_trials(g), [v0s, w0s])[0]
    for i in range(2):
        want_v, want_w = run_graph(g, [v0s[i], w0s[i]])[0]
        assert float(got_v[i]) == float(want_v)
        torch.testing.assert_close(got_w[i], want_w)
    assert trips.tolist() == [10, 3]


def test_the_batched_program_survives_an_mdf_file(ddm_file, tmp_path):
    """The batched graph is plain MDF too: written, read back, and each noise-free trial still
    equals a single run of the original function."""
    from torchmdf.api import emit

    batched, _ = run_passes(batch_trials(lower_mdf(ddm_file)), None)
    path = tmp_path / "ddm_batched.json"
    torchmdf.mdf.save(emit(batched, target="mdf"), path)
    args = _noise_free([25.0, -35.0, 50.0], [0.0, 0.1, -0.3])
    rt, up, trips = run_graph(lower_mdf(path), args)[0]
    for i in range(3):
        want_rt, want_up = _original(args, i)
        assert float(rt[i]) == pytest.approx(float(want_rt), abs=1e-6) and bool(up[i]) == bool(want_up)
    assert len(set(trips.tolist())) == 3
