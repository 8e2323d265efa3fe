"""Value-dependent conditions (Threshold) compiled as counters and masks (issue 12, item 1):
the masked program equals the reference (the scheduler in Python between compiled node runs,
one batch element at a time), each batch element follows its own schedule, and gradients
flow through it."""

from __future__ import annotations

import pytest
import torch

import torchmdf
import torchmdf.simulation as simulation
from torchmdf import mdf

THRESHOLD_FILE = "MDF/conditions/threshold_condition.json"
RATES = [0.1, 0.5, 1.0, 2.0, 3.0]


def _cond(type_: str, **kw) -> mdf.Condition:
    return mdf.Condition(type_, **kw)


def _gate_model() -> mdf.Model:
    """A integrates x' = rate; B counts the evaluations where A's x >= 0.22; C sums x over the
    runs of B (its default condition waits for A and B); D reads x before A's consideration set
    has run (the previous evaluation's value) through Any/Not/NWhen.  One pass per evaluation."""
    a = mdf.Node("A", parameters=[mdf.Parameter("rate", value=1.0),
                                  mdf.Parameter("x", time_derivative="rate", default_initial_value=0.0)],
                 output_ports=[mdf.OutputPort("out", value="x")])
    b = mdf.Node("B", input_ports=[mdf.InputPort("xin", shape=[])],
                 parameters=[mdf.Parameter("count", value="count + 1", default_initial_value=0)],
                 output_ports=[mdf.OutputPort("n", value="count")])
    c = mdf.Node("C", input_ports=[mdf.InputPort("xin", shape=[]), mdf.InputPort("nin", shape=[])],
                 parameters=[mdf.Parameter("total", value="total + xin", default_initial_value=0.0)],
                 output_ports=[mdf.OutputPort("total", value="total")])
    d = mdf.Node("D", parameters=[mdf.Parameter("k", value="k + 1", default_initial_value=0)],
                 output_ports=[mdf.OutputPort("k", value="k")])
    edges = [mdf.Edge("AB", sender="A", sender_port="out", receiver="B", receiver_port="xin"),
             mdf.Edge("AC", sender="A", sender_port="out", receiver="C", receiver_port="xin"),
             mdf.Edge("BC", sender="B", sender_port="n", receiver="C", receiver_port="nin")]
    below = _cond("Not", condition=_cond("Threshold", dependency="A", parameter="x", threshold=0.5,
                                         comparator=">"))
    conds = mdf.ConditionSet(
        node_specific={"B": _cond("Threshold", dependency="A", parameter="x", threshold=0.22, comparator=">="),
                       "D": _cond("Any", dependencies=[below, _cond("NWhen", condition=_cond("Always"), n=2)])},
        termination={"environment_state_update": _cond("AfterNPasses", n=1)})
    return mdf.Model("gate", graphs=[mdf.Graph("g", nodes=[a, b, c, d], edges=edges, conditions=conds)])


def _threshold_model() -> mdf.Model:
    """A adds rate to x until x >= 5 (a Threshold termination: the passes per evaluation depend
    on rate)."""
    node = mdf.Node("A", parameters=[mdf.Parameter("rate", value=1.0),
                                     mdf.Parameter("x", value="x + rate", default_initial_value=0.0)],
                    output_ports=[mdf.OutputPort("out", value="x")])
    cond = mdf.ConditionSet(termination={"environment_state_update": _cond(
        "Threshold", dependency="A", parameter="x", threshold=5.0, comparator=">=")})
    return mdf.Model("thr", graphs=[mdf.Graph("g", nodes=[node], conditions=cond)])


@pytest.fixture
def reference(monkeypatch):
    """Runs ``simulate`` with the scheduler in Python (the reference path)."""
    def run(*args, **kw):
        monkeypatch.setattr(simulation, "_REFERENCE_SCHEDULER", True)
        try:
            return torchmdf.simulate(*args, **kw)
        finally:
            monkeypatch.setattr(simulation, "_REFERENCE_SCHEDULER", False)
    return run


@pytest.fixture
def masked_only(monkeypatch):
    """Outside ``reference``, the masked program must not fall back to the Python scheduler
    (unbatched runs too)."""
    real = simulation._run_dynamic
    monkeypatch.setattr(simulation, "_MASKED_MIN_BATCH", 1)

    def guarded(*a, **k):
        assert simulation._REFERENCE_SCHEDULER, "the Python scheduler ran"
        return real(*a, **k)
    monkeypatch.setattr(simulation, "_run_dynamic", guarded)


def _assert_same(got: dict, want: dict) -> None:
    """Equal trajectories; a port a single run never computed (left out) is all NaN in its
    batch column."""
    assert want.keys() <= got.keys()
    for k in got.keys() - want.keys():
        assert torch.isnan(got[k]).all(), k
    for k in want:
        torch.testing.assert_close(got[k], want[k], equal_nan=True, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("steps", [1, 5])
def test_the_shared_threshold_file_equals_the_python_scheduler(mdf_examples, reference, masked_only, steps):
    path = str(mdf_examples / THRESHOLD_FILE)
    want = reference(path, steps=steps)
    got = torchmdf.simulate(path, steps=steps)
    _assert_same(got, want)
    assert got["A.output_1"].tolist() == [5] * steps  # runs until param_A >= 5, then never again


def test_a_batch_where_elements_cross_at_different_steps_follows_one_schedule_each(reference, masked_only):
    rate = torch.tensor(RATES, dtype=torch.float64)
    got = torchmdf.simulate(_gate_model(), steps=8, dt=0.1, params={"A.rate": rate})
    assert got["B.n"].shape == (8, len(RATES))
    for i, r in enumerate(RATES):
        single = reference(_gate_model(), steps=8, dt=0.1, params={"A.rate": r})
        _assert_same({k: v[:, i] for k, v in got.items()}, single)
    # x = rate * 0.1 * step crosses 0.22 at step 5, 3, 2, 1 (never for 0.1): B's runs by the end
    last = got["B.n"][-1]
    assert torch.isnan(last[0]) and last[1:].tolist() == [3, 5, 6, 7]


def test_unbatched_masked_runs_equal_the_python_scheduler(reference, masked_only):
    for model, kw in [(_gate_model(), {"steps": 6, "dt": 0.1}), (_threshold_model(), {"steps": 3})]:
        _assert_same(torchmdf.simulate(model, **kw), reference(model, **kw))


def test_a_threshold_termination_batch_takes_different_passes_per_element(reference, masked_only):
    rate = torch.tensor([0.5, 1.5, 4.0, 0.7], dtype=torch.float64)
    got = torchmdf.simulate(_threshold_model(), steps=3, params={"A.rate": rate})["A.out"]
    assert got[0].tolist() == pytest.approx([5.0, 6.0, 8.0, 5.6])
    for i in range(4):
        single = reference(_threshold_model(), steps=3, params={"A.rate": float(rate[i])})["A.out"]
        torch.testing.assert_close(got[:, i], single, rtol=0, atol=0)


def test_gradients_flow_through_masked_schedules(masked_only):
    # x = k * rate where k = ceil(5 / rate) runs of A: d x / d rate = k
    rate = torch.tensor([0.7, 1.5, 2.2], dtype=torch.float64, requires_grad=True)
    out = torchmdf.simulate(_threshold_model(), steps=2, params={"A.rate": rate})["A.out"]
    (g,) = torch.autograd.grad(out[-1].sum(), rate)
    assert g.tolist() == [8.0, 4.0, 3.0]

    def total(r: torch.Tensor) -> torch.Tensor:
        return torchmdf.simulate(_gate_model(), steps=6, dt=0.1, params={"A.rate": r})["C.total"][-1]
    # C sums x over the steps where B ran: rates away from the crossings, so the schedule is fixed
    torch.autograd.gradcheck(total, (torch.tensor([1.3, 2.3, 3.0], dtype=torch.float64, requires_grad=True),))


CONDITIONED_FILES = ["MDF/abc_conditions.json", "MDF/conditions/everyncalls_condition.json",
                     "MDF/conditions/Composite_mdf_condition.json", "MDF/SwitchedRLC_Circuit.json",
                     "PsyNeuLink/SimpleLinear-conditional.json", "PsyNeuLink/model_ABCD.json",
                     "PsyNeuLink/SimpleFN.json"]


def _many_conditions_model() -> mdf.Model:
    """A chain A -> B -> C -> D and E, F beside it, one counter condition of each family."""
    nodes = [mdf.Node(i, input_ports=[mdf.InputPort("i", shape=[])], output_ports=[mdf.OutputPort("o", value="i")])
             for i in "ABCDEF"]
    edges = [mdf.Edge(f"{s}{r}", sender=s, sender_port="o", receiver=r, receiver_port="i")
             for s, r in ["AB", "BC", "CD"]]
    conds = mdf.ConditionSet(node_specific={
        "A": _cond("NWhen", condition=_cond("Always"), n=5),
        "B": _cond("Any", dependencies=[_cond("EveryNCalls", dependency="A", n=2),
                                        _cond("JustRan", dependency="A")]),
        "C": _cond("All", dependencies=[_cond("Not", condition=_cond("AtPass", n=1)),
                                        _cond("AfterNCalls", dependency="B", n=2,
                                              time_scale="ENVIRONMENT_SEQUENCE")]),
        "D": _cond("AllHaveRun", dependencies=["A", "C"]),
        "E": _cond("Any", dependencies=[_cond("AtEnvironmentStateUpdate", n=1), _cond("EveryNPasses", n=3)]),
        "F": _cond("AfterNCallsCombined", dependencies=["B", "C"], n=3)},
        termination={"environment_state_update": _cond("AfterNPasses", n=4)})
    return mdf.Model("many", graphs=[mdf.Graph("g", nodes=nodes, edges=edges, conditions=conds)])


@pytest.mark.parametrize("source", [*CONDITIONED_FILES, "many"])
def test_the_masked_scheduler_runs_each_element_as_the_scheduler_does(mdf_examples, source):
    from torchmdf.frontends.mdf import program
    from torchmdf.mdf.scheduler import MaskedScheduler, flatten

    def prog():
        return program(_many_conditions_model() if source == "many" else str(mdf_examples / source))
    evaluations, batch = 6, 3
    ref = prog().scheduler()
    want = [flatten(list(ref.run())) for _ in range(evaluations)]
    masked = MaskedScheduler(prog().scheduler(), batch)
    for k in range(evaluations):
        got: list[list[str]] = [[] for _ in range(batch)]
        for cse in masked.run():
            for node, m in cse:
                for i in range(batch):
                    if m[i]:
                        got[i].append(node)
        assert got == [want[k]] * batch, (source, k)
    assert any(want[0] != w for w in want[1:]) or source != "many"  # the schedule changes between evaluations


@pytest.mark.gpu
def test_a_masked_batch_runs_on_the_gpu(masked_only):
    rate = torch.tensor(RATES, dtype=torch.float64)
    cpu = torchmdf.simulate(_gate_model(), steps=8, dt=0.1, params={"A.rate": rate})
    gpu = torchmdf.simulate(_gate_model(), steps=8, dt=0.1, params={"A.rate": rate}, device="cuda")
    assert all(v.device.type == "cuda" for v in gpu.values())
    _assert_same({k: v.cpu() for k, v in gpu.items()}, cpu)


def test_a_batch_of_inputs_runs_masked_as_single_runs(reference, masked_only):
    node = mdf.Node("A", input_ports=[mdf.InputPort("step", shape=[], default_value=1.0)],
                    parameters=[mdf.Parameter("x", value="x + step", default_initial_value=0.0)],
                    output_ports=[mdf.OutputPort("out", value="x")])
    cond = mdf.ConditionSet(termination={"environment_state_update": _cond(
        "Threshold", dependency="A", parameter="x", threshold=3.0, comparator=">=")})
    model = mdf.Model("inp", graphs=[mdf.Graph("g", nodes=[node], conditions=cond)])
    steps = torch.tensor([0.25, 1.0, 2.5], dtype=torch.float64)
    got = torchmdf.simulate(model, steps=3, inputs={"A.step": steps})["A.out"]
    for i in range(3):
        single = reference(model, steps=3, inputs={"A.step": float(steps[i])})["A.out"]
        torch.testing.assert_close(got[:, i], single, rtol=0, atol=0)
    assert got[0].tolist() == [3.0, 3.0, 5.0]
