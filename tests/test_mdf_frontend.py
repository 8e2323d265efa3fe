"""The MDF frontend's semantics, one construct at a time, checked against modeci_mdf itself
(the reference evaluator, run on the same file) and, for scheduling, against graph_scheduler;
plus free input ports as GraphModule arguments, several graphs, and located errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import torchmdf
from conftest import EXAMPLES
from torchmdf.frontends.mdf import lower_mdf, program
from torchmdf.mdf import scheduler as mdf_scheduler

# -- helpers --------------------------------------------------------------------------------------

def _write(tmp_path: Path, nodes: dict, edges: dict | None = None, conditions: dict | None = None,
           name: str = "m.json", graphs: dict | None = None) -> Path:
    graph: dict = {"nodes": nodes}
    if edges:
        graph["edges"] = edges
    if conditions:
        graph["conditions"] = conditions
    doc = {"m": {"format": "ModECI MDF v0.4", "graphs": graphs or {"g": graph}}}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _edge(s: str, r: str, sp: str = "out", rp: str = "inp", weight=None) -> dict:
    e = {"sender": s, "receiver": r, "sender_port": sp, "receiver_port": rp}
    if weight is not None:
        e["parameters"] = {"weight": weight}
    return e


def _modeci(path: Path, steps: int, dt: float) -> tuple[list[dict], list[str]]:
    """modeci_mdf's output ports after each evaluation, and its order of node runs."""
    utils = pytest.importorskip("modeci_mdf.utils")
    from modeci_mdf.execution_engine import EvaluableGraph

    m = utils.load_mdf(str(path))
    out = []
    with contextlib.redirect_stdout(io.StringIO()):
        eg = EvaluableGraph(m.graphs[0], verbose=False)
        for k in range(steps):
            eg.evaluate(time_increment=None if k == 0 else dt)
            out.append({f"{n}.{p}": None if o.curr_value is None else np.array(o.curr_value, dtype=float)
                        for n, en in eg.enodes.items() for p, o in en.evaluable_outputs.items()})
    return out, list(eg.order_of_execution)


def _same_as_modeci(path: Path, steps: int = 5, dt: float = 0.01) -> dict:
    ref, _ = _modeci(path, steps, dt)
    traj = torchmdf.simulate(str(path), steps=steps, dt=dt)
    for k in range(steps):
        for port, want in ref[k].items():
            got = traj[port][k].double().numpy()
            assert got.shape == want.shape, f"step {k} {port}: shape {got.shape}, modeci_mdf {want.shape}"
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"step {k} {port}")
    return traj


def _node(params: dict | None = None, outs: dict | None = None, inputs: dict | None = None,
          functions: dict | None = None) -> dict:
    n: dict = {}
    if inputs is not None:
        n["input_ports"] = inputs
    if params is not None:
        n["parameters"] = params
    if functions is not None:
        n["functions"] = functions
    n["output_ports"] = {k: {"value": v} for k, v in (outs or {}).items()}
    return n


# -- edges and input ports ---------------------------------------------------------------------------

def test_edge_weights_multiply_elementwise(tmp_path):
    nodes = {"A": _node({"x": {"value": [1.0, -2.0]}}, {"out": "x"}),
             "B": _node(None, {"out": "inp * 2"}, {"inp": {"shape": [2]}}),
             "C": _node(None, {"out": "inp"}, {"inp": {"shape": [2]}})}
    edges = {"ab": _edge("A", "B", weight=2.5), "bc": _edge("B", "C", weight=[1.0, -3.0])}
    traj = _same_as_modeci(_write(tmp_path, nodes, edges), steps=2)
    assert traj["C.out"][0].tolist() == [5.0, 30.0]


@pytest.mark.parametrize("reduce, want", [("add", 2 * 1.5 + 3 * 4.0), ("multiply", (2 * 1.5) * (3 * 4.0)),
                                          ("overwrite", 3 * 4.0)])
def test_input_port_reduce(tmp_path, reduce, want):
    nodes = {"A": _node({"x": {"value": 1.5}}, {"out": "x"}),
             "A2": _node({"x": {"value": 4.0}}, {"out": "x"}),
             "B": _node(None, {"out": "inp"}, {"inp": {"reduce": reduce}})}
    edges = {"e1": _edge("A", "B", weight=2), "e2": _edge("A2", "B", weight=3)}
    path = _write(tmp_path, nodes, edges)
    if reduce == "overwrite":  # modeci_mdf applies the edges in set order; torchmdf: the last in the file wins
        traj = torchmdf.simulate(str(path), steps=2)
    else:
        traj = _same_as_modeci(path, steps=2)
    assert float(traj["B.out"][1]) == want


def test_cycle_through_a_default_value_port_carries_the_previous_evaluation(tmp_path):
    nodes = {"A": _node(None, {"out": "inp + 1"}, {"inp": {"default_value": 1.0}}),
             "B": _node(None, {"out": "inp * 2"}, {"inp": {}})}
    edges = {"ab": _edge("A", "B"), "ba": _edge("B", "A")}
    traj = _same_as_modeci(_write(tmp_path, nodes, edges), steps=4)
    assert traj["B.out"].tolist() == [4.0, 10.0, 22.0, 46.0]


# -- parameters -------------------------------------------------------------------------------

def test_parameters_run_in_declaration_order(tmp_path):
    """Earlier parameters see the current (old) values of later ones, later parameters the new
    values of earlier ones; a default_initial_value may name an earlier parameter (FN.mdf.json)."""
    params = {"p1": {"value": "p1 + p2"}, "p2": {"value": "p2 + 1"}, "p3": {"value": "p1 * 100 + p2"},
              "q0": {"value": 5.0}, "q1": {"default_initial_value": "q0 * 2", "time_derivative": "q0 + p3"}}
    nodes = {"N": _node(params, {"o1": "p1", "o2": "p2", "o3": "p3", "o4": "q1"})}
    traj = _same_as_modeci(_write(tmp_path, nodes), steps=5, dt=0.1)
    assert traj["N.o1"].tolist() == [0.0, 1.0, 3.0, 6.0, 10.0]


def test_functions_see_current_parameter_values(tmp_path):
    params = {"k": {"value": "k + 1"}, "m": {"value": "k * 2"}}
    functions = {"f2": {"value": "f1 + 1"}, "f1": {"value": "k * 10 + m"}}
    nodes = {"N": _node(params, {"f": "f2", "k": "k", "m": "m"}, functions=functions)}
    traj = _same_as_modeci(_write(tmp_path, nodes), steps=4)
    assert traj["N.f"].tolist() == [1.0, 13.0, 25.0, 37.0]


def test_conditions_on_parameters(tmp_path):
    params = {"s": {"value": "s + 1", "default_initial_value": 0,
                    "conditions": [{"id": "reset", "test": "s >= 3", "value": 0}]},
              "z": {"conditions": [{"id": "on", "test": "s >= 2", "value": 7.0},
                                   {"id": "neg", "test": "s < 0", "value": -1.0}]}}
    nodes = {"N": _node(params, {"s": "s", "z": "z"})}
    traj = _same_as_modeci(_write(tmp_path, nodes), steps=6)
    assert traj["N.s"].tolist() == [1, 2, 3, 0, 1, 2]
    assert traj["N.z"].tolist() == [0.0, 7.0, 7.0, 7.0, 7.0, 7.0]


@pytest.mark.parametrize("dt", [0.01, 0.25])
def test_time_derivatives_forward_euler_with_dt(tmp_path, dt):
    params = {"period": {"value": 0.4}, "level": {"default_initial_value": 0, "time_derivative": "rate / period"},
              "rate": {"default_initial_value": 1, "time_derivative": "-1 * level / period"},
              "T": {"default_initial_value": 90, "time_derivative": "dT"},
              "dT": {"value": "-0.1 * (T - 20)", "default_initial_value": 0}}
    nodes = {"N": _node(params, {"level": "level", "rate": "rate", "T": "T", "dT": "dT"})}
    traj = _same_as_modeci(_write(tmp_path, nodes), steps=6, dt=dt)
    assert float(traj["N.T"][1]) == pytest.approx(90 - 7 * dt)


def test_lower_mdf_first_and_later_evaluations(tmp_path):
    path = EXAMPLES / "MDF" / "NewtonCoolingModel.json"
    if not path.is_file():
        pytest.skip("no shared examples")
    first = lower_mdf(path)
    assert not first.state and set(first.meta["all_outputs"]) == {"cool_node.out_port", "cool_node.out_port2"}
    later = lower_mdf(path, first=False, dt=0.01)
    keys = set(later.meta["state_keys"].values())
    assert keys == {("param", "cool_node", "T_curr"), ("param", "cool_node", "dT_dt")}
    from torchmdf.interpreter import run_graph

    after = first.meta["state_after"]
    first.outputs = [after[k] for k in keys]
    vals, _ = run_graph(first, [])
    st0 = {sv.name: dict(zip(keys, vals))[later.meta["state_keys"][sv.name]] for sv in later.state}
    later.outputs = [later.meta["all_outputs"]["cool_node.out_port"]]
    (t1,), _ = run_graph(later, [], st0)
    assert float(t1) == pytest.approx(90 - 7 * 0.01)


# -- free input ports ---------------------------------------------------------------------------

def test_free_input_ports_are_graph_module_arguments_with_defaults(tmp_path):
    nodes = {"A": _node(None, {"out": "x * 3 + y"}, {"x": {"default_value": [1.0, 2.0]}, "y": {"shape": [2]}}),
             "B": _node(None, {"out": "inp - 1"}, {"inp": {"shape": [2]}})}
    path = _write(tmp_path, nodes, {"ab": _edge("A", "B")})
    gm = torchmdf.compile(str(path), target="fx")
    with torch.no_grad():
        assert gm()["B.out"].tolist() == [2.0, 5.0]
        assert gm(x=torch.tensor([2.0, 2.0]))["B.out"].tolist() == [5.0, 5.0]
        assert gm(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))["B.out"].tolist() == [0.0, 3.0]
        assert gm(y=torch.tensor([10.0, 0.0]))["B.out"].tolist() == [12.0, 5.0]
    traj = torchmdf.simulate(str(path), steps=2, inputs={"A.x": [0.0, 0.0], "y": [1.0, 2.0]})
    assert traj["B.out"].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    with pytest.raises(torchmdf.ConversionError, match="unknown input"):
        torchmdf.simulate(str(path), steps=1, inputs={"nope": 1.0})


def test_python_numbers_given_to_onnx_ops_become_one_element_arrays(tmp_path):
    params = {"a": {"value": 4}, "b": {"value": 2}, "m": {"function": "onnx::Mul", "args": {"A": "a", "B": "b"}}}
    nodes = {"N": _node(params, {"out": "m"})}
    traj = _same_as_modeci(_write(tmp_path, nodes), steps=1)
    assert traj["N.out"].shape == (1, 1)


def test_onnx_attributes_come_from_node_values(tmp_path):
    params = {"x": {"value": [[1.0, 2.0], [3.0, 4.0]]}, "perm": {"value": [1.0, 0.0]},
              "t": {"function": "onnx::Transpose", "args": {"data": "x"}},
              "keepdims": {"value": 0}, "s": {"function": "onnx::ReduceSum", "args": {"data": "t"}}}
    path = _write(tmp_path, {"N": _node(params, {"t": "t", "s": "s"})})
    traj = _same_as_modeci(path, steps=1)
    assert traj["N.t"][0].tolist() == [[1.0, 3.0], [2.0, 4.0]]  # perm cast to ints, as modeci_mdf does
    assert traj["N.s"][0].tolist() == 10.0  # keepdims=0 from the node


# -- scheduling ---------------------------------------------------------------------------------

def _counters(cond_b: dict, cond_c: dict | None = None, termination: dict | None = None) -> dict:
    params = {"count": {"value": "count + 1"}, "t": {"default_initial_value": 0.5, "time_derivative": "count"}}
    nodes = {n: _node(params, {"out": "inp + count", "t": "t"}, {"inp": {"shape": [1]}}) for n in "ABC"}
    conds: dict = {"node_specific": {"A": {"type": "Always", "kwargs": {}}, "B": cond_b}}
    if cond_c:
        conds["node_specific"]["C"] = cond_c
    if termination:
        conds["termination"] = termination
    return {"nodes": nodes, "edges": {"ab": _edge("A", "B"), "bc": _edge("B", "C")}, "conditions": conds}


SCHEDULES = {
    "everyn": _counters({"type": "EveryNCalls", "kwargs": {"dependencies": "A", "n": 2}},
                        {"type": "EveryNCalls", "kwargs": {"dependencies": "B", "n": 2}}),
    "afterpass": _counters({"type": "AfterPass", "kwargs": {"n": 1}}, {"type": "AtPass", "kwargs": {"n": 3}}),
    "termination": _counters({"type": "Always", "kwargs": {}}, {"type": "Any", "kwargs": {"dependencies": [
        {"type": "EveryNCalls", "kwargs": {"dependency": "B", "n": 3}},
        {"type": "JustRan", "kwargs": {"dependency": "A"}}]}},
        {"environment_state_update": {"type": "All", "kwargs": {"dependencies": [
            {"type": "AfterNCalls", "kwargs": {"dependencies": "C", "n": 2}},
            {"type": "AfterNPasses", "kwargs": {"n": 3}}]}}}),
    "life": _counters({"type": "AfterNCalls", "kwargs": {"dependency": "A", "n": 3, "time_scale": "TimeScale.LIFE"}},
                      {"type": "Any", "kwargs": {"dependencies": [
                          {"type": "AtEnvironmentStateUpdate", "kwargs": {"n": 2}},
                          {"type": "AfterNCalls", "kwargs": {"dependency": "A", "n": 3}}]}}),
}


@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_scheduled_runs_match_modeci(tmp_path, case):
    """Nodes that run several times per evaluation, see their previous values and their
    senders' latest outputs; run order as modeci_mdf's."""
    spec = SCHEDULES[case]
    path = _write(tmp_path, spec["nodes"], spec["edges"], spec["conditions"])
    ref, order = _modeci(path, 4, 0.01)
    prog = program(str(path))
    ours = [x for s in prog.schedules(4) for cs in s for x in cs]
    assert ours == order
    traj = torchmdf.simulate(str(path), steps=4)
    for k in range(4):
        for port, want in ref[k].items():
            if want is None:
                assert port not in traj or torch.isnan(traj[port][k]).all()
            else:
                np.testing.assert_allclose(traj[port][k].double().numpy(), want, err_msg=f"{case} {k} {port}")


def test_threshold_is_scheduled_between_node_runs(tmp_path):
    nodes = {"A": _node({"count": {"value": "count + 1", "default_initial_value": 0}}, {"out": "count"}),
             "B": _node({"n": {"value": "n + inp"}}, {"out": "n"}, {"inp": {}})}
    conds = {"node_specific": {"B": {"type": "EveryNCalls", "kwargs": {"dependencies": "A", "n": 2}}},
             "termination": {"environment_state_update": {
                 "type": "Threshold", "kwargs": {"dependency": "A", "parameter": "count", "threshold": 3,
                                                 "comparator": ">="}}}}
    path = _write(tmp_path, nodes, {"ab": _edge("A", "B")}, conds)
    traj = _same_as_modeci(path, steps=3)
    assert traj["A.out"].tolist() == [3, 3, 3]
    with pytest.raises(torchmdf.ConversionError, match="Threshold") as err:
        lower_mdf(path)
    assert "m.json" in str(err.value) and "termination 'environment_state_update'" in str(err.value)


def _gs_condition(spec, gs):
    t, kw = spec
    if t in ("All", "Any", "Not"):
        parts = [_gs_condition(s, gs) for s in kw["conds"]]
        return getattr(gs, t)(*parts)
    kw = dict(kw)
    if "time_scale" in kw:
        kw["time_scale"] = getattr(gs.TimeScale, kw["time_scale"])
    if "dependency" in kw:
        dep = kw.pop("dependency")
        return getattr(gs, t)(dep, **kw)
    if t == "AllHaveRun":
        return gs.AllHaveRun(*kw.pop("deps"), **kw)
    return getattr(gs, t)(**kw)


def _mdf_condition(spec):
    from torchmdf.mdf import Condition

    t, kw = spec
    if t in ("All", "Any", "Not"):
        parts = [_mdf_condition(s) for s in kw["conds"]]
        return Condition(t, condition=parts[0]) if t == "Not" else Condition(t, dependencies=parts)
    kw = dict(kw)
    if "time_scale" in kw:
        kw["time_scale"] = f"TimeScale.{kw['time_scale']}"
    if t == "AllHaveRun":
        kw["dependencies"] = kw.pop("deps")
    return Condition(t, **kw)


_SCALES = st.sampled_from(["ENVIRONMENT_STATE_UPDATE", "LIFE", "PASS"])


def _leaf(deps: list[str], owner: bool):
    n = st.integers(0, 3)
    opts = [st.just(("Always", {})),
            st.builds(lambda d, k, ts: ("AfterNCalls", {"dependency": d, "n": k, "time_scale": ts}),
                      st.sampled_from(deps), n, _SCALES),
            st.builds(lambda d, k: ("AtNCalls", {"dependency": d, "n": k}), st.sampled_from(deps), n),
            st.builds(lambda d, k: ("BeforeNCalls", {"dependency": d, "n": k}), st.sampled_from(deps), n),
            st.builds(lambda d: ("JustRan", {"dependency": d}), st.sampled_from(deps)),
            st.builds(lambda k: ("AtPass", {"n": k}), n),
            st.builds(lambda k: ("AfterPass", {"n": k}), n),
            st.builds(lambda k: ("EveryNPasses", {"n": k}), st.integers(1, 3)),
            st.builds(lambda k: ("AfterNConsiderationSetExecutions", {"n": k}), st.integers(0, 6)),
            st.builds(lambda k: ("AtEnvironmentStateUpdate", {"n": k}), n),
            st.builds(lambda k: ("AfterEnvironmentStateUpdate", {"n": k}), n),
            st.builds(lambda ds: ("AllHaveRun", {"deps": ds}), st.lists(st.sampled_from(deps), max_size=2))]
    if owner:
        opts.append(st.builds(lambda d, k: ("EveryNCalls", {"dependency": d, "n": k}),
                              st.sampled_from(deps), st.integers(1, 3)))
    return st.one_of(opts)


def _condition(deps: list[str], owner: bool):
    return st.recursive(_leaf(deps, owner), lambda inner: st.one_of(
        st.builds(lambda cs: ("All", {"conds": cs}), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda cs: ("Any", {"conds": cs}), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: ("Not", {"conds": [c]}), inner)), max_leaves=4)


@st.composite
def _scheduling_case(draw):
    """A chain A -> B -> C (one node per consideration set, so graph_scheduler's set order does
    not matter), random node conditions and a random termination."""
    conds = {}
    for node, deps in (("A", ["B", "C"]), ("B", ["A", "C"]), ("C", ["A", "B"])):
        if draw(st.booleans()):
            conds[node] = draw(_condition(deps, owner=True))
    term = draw(st.one_of(st.none(), _condition(["A", "B", "C"], owner=False)))
    return conds, term


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                             HealthCheck.function_scoped_fixture])
@given(_scheduling_case())
def test_scheduler_matches_graph_scheduler(monkeypatch, case):
    gs = pytest.importorskip("graph_scheduler")
    from torchmdf.mdf import ConditionSet, Edge, Graph, InputPort, Model, Node, OutputPort

    conds, term = case
    ref = gs.Scheduler(graph={"A": set(), "B": {"A"}, "C": {"B"}},
                       conditions={k: _gs_condition(v, gs) for k, v in conds.items()},
                       termination_conds=None if term is None else
                       {gs.TimeScale.ENVIRONMENT_STATE_UPDATE: _gs_condition(term, gs)})
    want = []
    for _ in range(4):
        run = []
        try:
            for cse in ref.run():
                run.append(sorted(cse))
                assume(len(run) < 40)
        except IndexError:  # JustRan before anything ran
            assume(False)
        want.append([x for x in run if x])
    nodes = [Node(id=i, input_ports=[InputPort(id="inp")], output_ports=[OutputPort(id="out", value="inp")])
             for i in "ABC"]
    edges = [Edge(id="ab", sender="A", receiver="B", sender_port="out", receiver_port="inp"),
             Edge(id="bc", sender="B", receiver="C", sender_port="out", receiver_port="inp")]
    cs = ConditionSet(node_specific={k: _mdf_condition(v) for k, v in conds.items()},
                      termination=None if term is None else {"environment_state_update": _mdf_condition(term)})
    prog = program(Model(id="m", graphs=[Graph(id="g", nodes=nodes, edges=edges, conditions=cs)]))
    monkeypatch.setattr(mdf_scheduler, "MAX_PASSES", 40)
    got = [[sorted(x) for x in s] for s in prog.schedules(4)]
    assert got == want


# -- several graphs -------------------------------------------------------------------------------

def test_several_graphs_first_by_default_or_by_id(tmp_path):
    g1 = {"nodes": {"A": _node({"x": {"value": 1.0}}, {"out": "x"})}}
    g2 = {"nodes": {"B": _node({"x": {"value": "x + 2"}}, {"out": "x"})}}
    path = _write(tmp_path, {}, graphs={"g1": g1, "g2": g2})
    g = lower_mdf(path)
    assert g.metadata["mdf_graph"] == "g1" and list(g.meta["all_outputs"]) == ["A.out"]
    assert lower_mdf(path, graph="g2").metadata["mdf_graph"] == "g2"
    assert torchmdf.simulate(str(path), steps=3, graph="g2")["B.out"].tolist() == [2, 4, 6]
    with pytest.raises(torchmdf.ValidationError, match="no graph 'g3'") as err:
        lower_mdf(path, graph="g3")
    assert "m.json" in str(err.value)


# -- errors -----------------------------------------------------------------------------------------

def _raises(path, exc, *fragments, call=None):
    with pytest.raises(exc) as err:
        (call or (lambda p: torchmdf.simulate(str(p), steps=2)))(path)
    msg = str(err.value)
    assert isinstance(err.value, torchmdf.TorchMDFError)
    for f in (path.name if isinstance(path, Path) else None, *fragments):
        if f:
            assert f in msg, msg
    return msg


def test_error_unknown_name_is_located(tmp_path):
    path = _write(tmp_path, {"A": _node({"p": {"value": 1}}, {"out": "p + q"})})
    with pytest.raises(torchmdf.ValidationError):  # the validator catches it on load
        torchmdf.mdf.load(path)
    model = torchmdf.mdf.load(path, validate=False)
    _raises(path, torchmdf.ValidationError, "node 'A' > output port 'out'", "unknown name 'q'",
            call=lambda p: lower_mdf(model))


def test_error_cycle_without_default_value(tmp_path):
    nodes = {"A": _node(None, {"out": "inp"}, {"inp": {}}), "B": _node(None, {"out": "inp"}, {"inp": {}})}
    path = _write(tmp_path, nodes, {"ab": _edge("A", "B"), "ba": _edge("B", "A")})
    with pytest.raises(torchmdf.ValidationError, match="form a cycle that nothing breaks"):
        torchmdf.mdf.load(path)
    model = torchmdf.mdf.load(path, validate=False)
    _raises(path, torchmdf.ValidationError, "graph 'g'", "'A', 'B' form a cycle that nothing breaks",
            call=lambda p: lower_mdf(model))


def test_error_nested_graph_is_located():
    path = EXAMPLES / "PyTorch" / "ddm.json"
    if not path.is_file():
        pytest.skip("no shared examples")
    _raises(path, torchmdf.ConversionError, "graph 'functionGraph' > graph 'LoopSubgraphLoop_11_12'",
            "'Loop_11_12'", call=lower_mdf)


@pytest.mark.parametrize("cond, fragment", [
    ({"type": "TimeInterval", "kwargs": {"start": 3, "end": 1}}, "later than"),
    ({"type": "WhenFinished", "kwargs": {"dependency": "A"}}, "not supported"),
    ({"type": "EveryNCalls", "kwargs": {"dependency": "Z", "n": 1}}, "the id of a node"),
    ({"type": "AfterNCalls", "kwargs": {"dependency": "A", "n": 1, "time_scale": "TimeScale.DAY"}}, "time_scale"),
])
def test_error_unsupported_or_bad_condition(tmp_path, cond, fragment):
    nodes = {"A": _node({"p": {"value": 1}}, {"out": "p"}), "B": _node({"p": {"value": 1}}, {"out": "p"})}
    path = _write(tmp_path, nodes, conditions={"node_specific": {"B": cond}})
    model = torchmdf.mdf.load(path, validate=False)
    _raises(path, torchmdf.TorchMDFError, "conditions > node_specific 'B'", fragment,
            call=lambda p: lower_mdf(model))


def test_error_every_n_calls_cannot_terminate(tmp_path):
    nodes = {"A": _node({"p": {"value": 1}}, {"out": "p"})}
    cond = {"environment_state_update": {"type": "EveryNCalls", "kwargs": {"dependency": "A", "n": 1}}}
    path = _write(tmp_path, nodes, conditions={"termination": cond})
    _raises(path, torchmdf.ConversionError, "termination 'environment_state_update'", "owner")


def test_error_evaluation_that_never_terminates(tmp_path, monkeypatch):
    monkeypatch.setattr(mdf_scheduler, "MAX_PASSES", 50)
    nodes = {"A": _node({"p": {"value": 1}}, {"out": "p"}), "B": _node({"p": {"value": 1}}, {"out": "p"})}
    path = _write(tmp_path, nodes, conditions={"node_specific": {"B": {"type": "Never", "kwargs": {}}}})
    _raises(path, torchmdf.ConversionError, "graph 'g'", "did not terminate after 50 passes")


def test_error_parameter_without_value_is_located(tmp_path):
    params = {"f": {"function": "linear", "args": {"variable0": "g", "slope": 1, "intercept": 0}},
              "g": {"function": "linear", "args": {"variable0": 1, "slope": 1, "intercept": 0}}}
    path = _write(tmp_path, {"A": _node(params, {"out": "f"})})
    _raises(path, torchmdf.ValidationError, "node 'A' > parameter 'f' > argument 'variable0'",
            "'g' has no value here")


def test_error_edge_to_unknown_port(tmp_path):
    nodes = {"A": _node({"p": {"value": 1}}, {"out": "p"}), "B": _node(None, {"out": "inp"}, {"inp": {}})}
    path = _write(tmp_path, nodes, {"ab": _edge("A", "B", rp="nope")})
    model = torchmdf.mdf.load(path, validate=False)
    _raises(path, torchmdf.ValidationError, "edge 'ab'", "'B.nope'", call=lambda p: lower_mdf(model))


def test_error_bad_steps():
    path = EXAMPLES / "MDF" / "Simple.json"
    if not path.is_file():
        pytest.skip("no shared examples")
    with pytest.raises(torchmdf.ConversionError, match="steps"):
        torchmdf.simulate(str(path), steps=0)


def test_error_self_edge_without_default_value(tmp_path):
    nodes = {"A": _node(None, {"out": "inp + 1"}, {"inp": {}})}
    path = _write(tmp_path, nodes, {"aa": _edge("A", "A")})
    with pytest.raises(torchmdf.ValidationError, match="form a cycle that nothing breaks"):
        torchmdf.mdf.load(path)
    model = torchmdf.mdf.load(path, validate=False)
    _raises(path, torchmdf.ValidationError, "'A' form a cycle", call=lambda p: lower_mdf(model))


def test_self_edge_into_a_default_value_port(tmp_path):
    nodes = {"A": _node(None, {"out": "inp + 1"}, {"inp": {"default_value": 10.0}})}
    path = _write(tmp_path, nodes, {"aa": _edge("A", "A")})  # (with a weight modeci_mdf fails: None * w)
    traj = _same_as_modeci(path, steps=4)
    assert traj["A.out"].tolist() == [11.0, 12.0, 13.0, 14.0]


def test_integer_division_is_float64_as_in_numpy(tmp_path):
    params = {"a": {"value": 1}, "b": {"value": 3}, "c": {"value": "a / b"}, "d": {"value": [1, 2]},
              "e": {"value": "d / b"}}
    path = _write(tmp_path, {"N": _node(params, {"c": "c", "e": "e"})})
    traj = _same_as_modeci(path, steps=1)
    assert traj["N.c"].dtype == torch.float64 and traj["N.e"].dtype == torch.float64


def _one_parameter_model(function, args):
    from torchmdf.mdf import Graph, Model, Node, OutputPort, Parameter

    m = Model(id="m")
    g = Graph(id="g")
    m.graphs.append(g)
    n = Node(id="n")
    g.nodes.append(n)
    n.parameters.append(Parameter(id="ai", value=[[1, 2], [3, 4]]))
    n.parameters.append(Parameter(id="bf", value=[[0.5, 1.5], [2.5, -1.0]]))
    n.parameters.append(Parameter(id="r", function=function, args=args))
    n.output_ports.append(OutputPort(id="o", value="r"))
    return m


@pytest.mark.parametrize("function, args", [
    ("sin", {"variable0": "ai", "scale": 1}), ("cos", {"variable0": "ai", "scale": 2}),
    ("tanh", {"variable0": "ai", "scale": 1}), ("arctan", {"variable0": "ai", "scale": 1}),
    ("exponential", {"variable0": "ai", "scale": 1, "rate": 1, "bias": 0, "offset": 0}),
    ("logistic", {"variable0": "ai", "gain": 2, "bias": 1, "offset": 0}),
    ("linear", {"variable0": "ai", "slope": 2, "intercept": 1}),
])
def test_standard_functions_of_integers_compute_as_numpy_does(tmp_path, function, args):
    """modeci_mdf computes sin/exp/... of an int64 array in float64 (numpy); torch would give
    float32.  Compared with the oracle itself, to the last bit."""
    ref_mdf = pytest.importorskip("modeci_mdf")
    import contextlib
    import io

    from modeci_mdf.execution_engine import EvaluableGraph as Reference
    from modeci_mdf.utils import load_mdf

    from torchmdf.execution_engine import EvaluableGraph

    path = str(tmp_path / "m.json")
    torchmdf.mdf.save(_one_parameter_model(function, args), path)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = Reference(load_mdf(path).graphs[0], verbose=False)
        ref.evaluate()
    want = np.asarray(ref.enodes["n"].evaluable_outputs["o"].curr_value)
    ours = EvaluableGraph(torchmdf.mdf.load(path).graphs[0], verbose=False)
    ours.evaluate()
    got = np.asarray(ours.enodes["n"].evaluable_outputs["o"].curr_value)
    assert ref_mdf is not None and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op, args", [("onnx::Gemm", {"A": "ai", "B": "bf"}), ("onnx::MatMul", {"A": "ai", "B": "bf"}),
                                      ("onnx::Add", {"A": "ai", "B": "bf"}), ("onnx::Max", {"data_0": ["ai", "bf"]})])
def test_onnx_operands_of_one_type_constraint_promote_as_numpy(op, args):
    """An int64 and a float64 operand of one ONNX type constraint (Gemm's A and B): numpy's
    result type, float64 (torch's matmul refuses mixed dtypes; onnxruntime, which modeci_mdf
    calls, refuses them too)."""
    ai = np.array([[1, 2], [3, 4]])
    bf = np.array([[0.5, 1.5], [2.5, -1.0]])
    want = {"onnx::Gemm": ai @ bf, "onnx::MatMul": ai @ bf, "onnx::Add": ai + bf, "onnx::Max": np.maximum(ai, bf)}[op]
    out = torchmdf.compile(_one_parameter_model(op, args), target="fx")()
    got = next(iter(out.values())) if isinstance(out, dict) else out
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), want)
