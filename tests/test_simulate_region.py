"""torchmdf.simulation_graph: the whole simulation as one IR graph whose time loop is an
onnx::Loop region (issue 12, item 1).  Its trajectories equal simulate's (and modeci_mdf's, in
expected.json) through the interpreter, FX, onnxruntime and an MDF file; gradients through it
equal simulate's; schedules that do not repeat and Threshold conditions are refused."""

from __future__ import annotations

import json

import pytest
import torch

import torchmdf
from torchmdf import mdf
from torchmdf.interpreter import run

# file, dt, params made inputs
FILES = [("MDF/FN.mdf.json", 5e-5, ["FNpop_0.Iext"]), ("MDF/States.json", 0.1, []),
         ("MDF/NewtonCoolingModel.json", 0.1, []), ("MDF/abc_conditions.json", 1.0, [])]
STEPS = 9


def _args(dt: float, params: list[str]) -> list[torch.Tensor]:
    return [torch.tensor(dt, dtype=torch.float64)] + [torch.tensor(0.25, dtype=torch.float64) for _ in params]


def _simulate(path: str, steps: int, dt: float, params: list[str]) -> dict[str, torch.Tensor]:
    return torchmdf.simulate(path, steps, dt, params={p: 0.25 for p in params})


def _same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        g = torch.as_tensor(got[k])
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True, msg=k)


def _as_dict(g, outs) -> dict[str, torch.Tensor]:
    return dict(zip(g.output_names, outs if isinstance(outs, list) else [outs]))


def _loops(g) -> list:
    return [n for n in g.walk() if n.op == "onnx::Loop"]


@pytest.mark.parametrize("rel,dt,params", FILES, ids=[f[0].split("/")[-1] for f in FILES])
def test_the_region_form_equals_simulate_and_modeci_mdf(mdf_examples, rel, dt, params):
    path = str(mdf_examples / rel)
    g = torchmdf.simulation_graph(path, STEPS, params=params)
    g.verify()
    loops = _loops(g)
    assert len(loops) == 1 and loops[0].graph is g  # one time loop, at the top
    # every later evaluation in the loop (one more peeled off where a value's dtype settles)
    assert int(loops[0].inputs[0].tensor) in (STEPS - 1, STEPS - 2)
    assert [v.name for v in g.inputs] == ["dt", *[p.replace(".", "_") for p in params]]
    want = _simulate(path, STEPS, dt, params)
    _same(_as_dict(g, run(g, *_args(dt, params))), want)
    _same(torchmdf.compile(g, target="fx")(*_args(dt, params)), want)
    # modeci_mdf's own values after the first and the fifth evaluation (dt = 0.01, defaults)
    expected = json.loads((mdf_examples / "expected.json").read_text())["ok"][rel]
    g5 = torchmdf.simulation_graph(path, 5)
    got = _as_dict(g5, run(g5, torch.tensor(0.01, dtype=torch.float64)))
    for step, key in ((0, "after_1"), (4, "after_5")):
        for port, value in expected[key].items():
            want_v = torch.tensor(value, dtype=torch.float64).reshape(got[port][step].shape)
            torch.testing.assert_close(got[port][step], want_v, rtol=1e-9, atol=1e-9)


def test_fn_loop_runs_every_later_evaluation(mdf_examples):
    """FitzHugh-Nagumo: the first evaluation folds to constants; the loop runs steps - 1
    evaluations (ONNX semantics: trip count M, carried V and W, the output port scanned)."""
    g = torchmdf.simulation_graph(str(mdf_examples / "MDF/FN.mdf.json"), 1000, params=["FNpop_0.Iext"])
    (loop,) = _loops(g)
    assert int(loop.inputs[0].tensor) == 999 and loop.inputs[1] is None
    body = loop.regions[0]
    assert [v.name for v in body.inputs] == ["iteration_num", "cond_in", "FNpop_0_V", "FNpop_0_W"]
    assert len(loop.outputs) == 3 and loop.outputs[2].type.shape == (999,)
    assert g.output_names == ["FNpop_0.OUTPUT"] and g.outputs[0].type.shape == (1000,)


@pytest.mark.parametrize("rel,dt,params", FILES, ids=[f[0].split("/")[-1] for f in FILES])
def test_onnxruntime_runs_the_loop(mdf_examples, rel, dt, params):
    ort = pytest.importorskip("onnxruntime")
    path = str(mdf_examples / rel)
    g = torchmdf.simulation_graph(path, STEPS, params=params)
    proto = torchmdf.compile(g, target="onnx")
    assert any(n.op_type == "Loop" for n in proto.graph.node)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), _args(dt, params))}
    got = dict(zip(g.output_names, (torch.from_numpy(x) for x in sess.run(None, feed))))
    _same(got, _simulate(path, STEPS, dt, params))


@pytest.mark.parametrize("rel,dt,params", FILES[:2], ids=[f[0].split("/")[-1] for f in FILES[:2]])
def test_an_mdf_file_holds_the_loop_as_a_nested_graph(mdf_examples, tmp_path, rel, dt, params):
    from torchmdf.frontends.mdf import is_graph_value

    path = str(mdf_examples / rel)
    g = torchmdf.simulation_graph(path, STEPS, params=params)
    out = tmp_path / "sim.json"
    mdf.save(torchmdf.compile(g, target="mdf"), out)
    back = mdf.load(out)
    loops = [n for n in back.graphs[0].nodes if any(is_graph_value(p.value) for p in n.parameters)]
    assert len(loops) == 1
    _same(torchmdf.compile(back, target="fx")(*_args(dt, params)), _simulate(path, STEPS, dt, params))


def test_gradients_through_the_loop_equal_simulates(mdf_examples):
    path = str(mdf_examples / "MDF/FN.mdf.json")
    gm = torchmdf.compile(torchmdf.simulation_graph(path, 40, params=["FNpop_0.Iext"]), target="fx")
    weights = torch.linspace(0.5, 1.5, 40, dtype=torch.float64)

    def grad(fn):
        iext = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad((fn(iext) * weights).sum(), iext)
        return d

    dt = torch.tensor(5e-5, dtype=torch.float64)
    loop = grad(lambda i: gm(dt, i)["FNpop_0.OUTPUT"])
    ref = grad(lambda i: torchmdf.simulate(path, 40, 5e-5, params={"FNpop_0.Iext": i})["FNpop_0.OUTPUT"])
    assert loop != 0
    torch.testing.assert_close(loop, ref, rtol=1e-10, atol=0)


def test_free_ports_can_be_inputs(mdf_examples):
    path = str(mdf_examples / "MDF/FN.mdf.json")
    g = torchmdf.simulation_graph(path, 12, params={"FNpop_0.Iext": 0.2}, inputs=["FNpop_0.INPUT"])
    assert [v.name for v in g.inputs] == ["dt", "FNpop_0_Iext", "FNpop_0_INPUT"]
    x = [torch.tensor(v, dtype=torch.float64) for v in (1e-4, 0.2, 0.3)]
    want = torchmdf.simulate(path, 12, 1e-4, params={"FNpop_0.Iext": 0.2}, inputs={"FNpop_0.INPUT": 0.3})
    _same(_as_dict(g, run(g, *x)), want)


def _cond(type_: str, **kw) -> mdf.Condition:
    return mdf.Condition(type_, **kw)


def _alternating_model() -> mdf.Model:
    """A integrates x' = rate every evaluation; B counts, running every other evaluation
    (``Not(JustRan(B))``): a schedule of period 2."""
    a = mdf.Node("A", parameters=[mdf.Parameter("rate", value=1.0),
                                  mdf.Parameter("x", time_derivative="rate", default_initial_value=0.0)],
                 output_ports=[mdf.OutputPort("out", value="x")])
    b = mdf.Node("B", parameters=[mdf.Parameter("k", value="k + 1", default_initial_value=0)],
                 output_ports=[mdf.OutputPort("k", value="k")])
    conds = mdf.ConditionSet(node_specific={"B": _cond("Not", condition=_cond("JustRan", dependency="B"))},
                             termination={"environment_state_update": _cond("AfterNPasses", n=1)})
    return mdf.Model("alt", graphs=[mdf.Graph("g", nodes=[a, b], conditions=conds)])


def _late_model(after: int) -> mdf.Model:
    """B starts counting after ``after`` evaluations: the schedule settles only then."""
    a = mdf.Node("A", parameters=[mdf.Parameter("x", value="x + 1", default_initial_value=0.0)],
                 output_ports=[mdf.OutputPort("out", value="x")])
    b = mdf.Node("B", parameters=[mdf.Parameter("k", value="k + 2", default_initial_value=0.0)],
                 output_ports=[mdf.OutputPort("k", value="k")])
    conds = mdf.ConditionSet(node_specific={"B": _cond("AfterEnvironmentStateUpdate", n=after)},
                             termination={"environment_state_update": _cond("AfterNPasses", n=1)})
    return mdf.Model("late", graphs=[mdf.Graph("g", nodes=[a, b], conditions=conds)])


@pytest.mark.parametrize("steps", [1, 2, 3, 6, 11])
@pytest.mark.parametrize("which", ["alternating", "late"])
def test_counter_schedules_get_a_prologue_and_a_period(which, steps):
    m = _alternating_model() if which == "alternating" else _late_model(3)
    g = torchmdf.simulation_graph(m, steps)
    g.verify()
    assert len(_loops(g)) == (0 if steps == 1 else 1)
    want = torchmdf.simulate(m, steps, 0.1)
    got = _as_dict(g, run(g, torch.tensor(0.1, dtype=torch.float64)))
    _same(got, want)
    _same(torchmdf.compile(g, target="fx")(torch.tensor(0.1, dtype=torch.float64)), want)
    if steps == 11:  # onnxruntime runs the prologue, the interleaved scans and the NaN blocks alike
        ort = pytest.importorskip("onnxruntime")
        sess = ort.InferenceSession(torchmdf.compile(g, target="onnx").SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: torch.tensor(0.1, dtype=torch.float64).numpy()})
        _same({k: torch.from_numpy(o) for k, o in zip(g.output_names, outs)}, want)
    if which == "alternating" and steps == 11:
        assert len(_loops(g)[0].regions[0].outputs) > 1 + 2 * 2  # two evaluations per iteration: two scans per port
        assert torch.isnan(want["B.k"]).sum() == 0 and want["B.k"][-1] == 6


def test_refusals_are_located():
    with pytest.raises(torchmdf.ConversionError, match="does not settle") as e:
        torchmdf.simulation_graph(_late_model(100), 200)
    assert "graph 'g'" in str(e.value)
    torchmdf.simulation_graph(_late_model(20), 200)  # settles after 20: a prologue of 21
    node = mdf.Node("A", parameters=[mdf.Parameter("rate", value=1.0),
                                     mdf.Parameter("x", value="x + rate", default_initial_value=0.0)],
                    output_ports=[mdf.OutputPort("out", value="x")])
    thr = mdf.Model("thr", graphs=[mdf.Graph("g", nodes=[node], conditions=mdf.ConditionSet(termination={
        "environment_state_update": _cond("Threshold", dependency="A", parameter="x", threshold=5.0,
                                          comparator=">=")}))])
    with pytest.raises(torchmdf.ConversionError, match="Threshold"):
        torchmdf.simulation_graph(thr, 10)
    with pytest.raises(torchmdf.ConversionError, match="unknown parameter 'A.nope'"):
        torchmdf.simulation_graph(_late_model(2), 5, params=["A.nope"])
    with pytest.raises(torchmdf.ConversionError, match="unknown input"):
        torchmdf.simulation_graph(_late_model(2), 5, inputs=["A.nope"])
    with pytest.raises(torchmdf.ConversionError, match="list of names"):
        torchmdf.simulation_graph(_late_model(2), 5, params="A.x")
    with pytest.raises(torchmdf.ConversionError, match="steps"):
        torchmdf.simulation_graph(_late_model(2), 0)
    with pytest.raises(torchmdf.ConversionError, match="integration method"):
        torchmdf.simulation_graph(_late_model(2), 3, method="heun")
    with pytest.raises(torchmdf.ConversionError, match="more than the limit"):
        torchmdf.simulation_graph(_late_model(2), 2**29)


def test_rk4_region_form_equals_simulate(mdf_examples):
    path = str(mdf_examples / "MDF/FN.mdf.json")
    g = torchmdf.simulation_graph(path, 30, method="rk4")
    _same(_as_dict(g, run(g, torch.tensor(5e-5, dtype=torch.float64))),
          torchmdf.simulate(path, 30, 5e-5, method="rk4"))


@pytest.mark.property
def test_generated_models_equal_simulate():
    """Generated stateful models with counter conditions: the region form equals simulate
    (or is refused with a TorchMDFError)."""
    hypothesis = pytest.importorskip("hypothesis")
    from fuzz_profiles import examples

    from torchmdf.testing import mdf_models

    @hypothesis.settings(max_examples=examples(25), deadline=None, derandomize=examples(25) == 25,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(mdf_models())
    def check(m):
        try:
            want = torchmdf.simulate(m, 7, 0.1)
        except torchmdf.TorchMDFError:
            return
        g = torchmdf.simulation_graph(m, 7)
        _same(_as_dict(g, run(g, torch.tensor(0.1, dtype=torch.float64))), want)

    check()
