"""PsyNeuLink as an oracle for its own MDF exports (``tests/fixtures/mdf_corpus/PsyNeuLink``).

modeci_mdf does not load these files at all.  ``psyneulink_expected.json`` holds what
PsyNeuLink computes for the compositions they were exported from (made by
``tests/make_psyneulink_expected.py`` from ``tests/psyneulink_models.py``): the value of every
output port of every mechanism after every trial.

* Without psyneulink: each stored file is run by ``torchmdf.simulate`` for as many steps as
  PsyNeuLink ran trials, with PsyNeuLink's inputs, and every port is compared after every trial
  (``test_psyneulink_summary`` prints what is compared and what is skipped, with why).
* With psyneulink (marker ``psyneulink``): each composition is built in PsyNeuLink, run,
  exported to MDF by PsyNeuLink, and the export is run here and compared the same way.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import torchmdf

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "mdf_corpus" / "PsyNeuLink"
EXPECTED = json.loads((FIXTURES / "psyneulink_expected.json").read_text())
MODELS = EXPECTED["models"]
RTOL, ATOL = 1e-9, 1e-12

_EXACT_TIME = ("PsyNeuLink ran it with scheduling_mode=EXACT_TIME (as the example script does), which the "
               "MDF file does not record; torchmdf schedules it in graph_scheduler's default mode")
#: Stored files that cannot match PsyNeuLink, with why.
NOT_MATCHING: dict[str, str] = {
    "SimpleFN-timing": _EXACT_TIME + ": fn runs 2000 times in the trial here, 2001 times (at 0, 0.05, ..., "
                       "100 ms) in PsyNeuLink, so its last value differs",
}
#: Files with no PsyNeuLink run to compare with.
NOT_RUN: dict[str, str] = {
    "stroop_conflict_monitoring": "no oracle: the example only builds the composition, and its DDM "
                                  "('driftdiffusionanalytical') and its controller (ControlMechanism with an "
                                  "ObjectiveMechanism) have no MDF form torchmdf runs",
}
_TWO_INTO_ONE = ("two projections arrive at D's one input port: PsyNeuLink adds them; the file declares no "
                 "'reduce', and MDF's default ('overwrite') keeps the last edge's value")
#: Mechanisms not compared in a file that otherwise matches, with why.
NODE_EXCEPTIONS: dict[str, tuple[set[str], str]] = {
    "model_ABCD": ({"D"}, _TWO_INTO_ONE),
    "model_nested_comp_with_scheduler": ({"D"}, _TWO_INTO_ONE),
}
_NO_EDGE_IN = ("no edge enters the nested graph in the file (PsyNeuLink's projection C -> Inner Composition is "
               "not exported), so E gets no input here and C's value in PsyNeuLink")
#: Mechanisms inside nested graphs, not compared (only the outer ones are recorded), with why.
INNER_NOT_COMPARED: dict[str, str] = {
    "model_with_nested_graph": "E, F: " + _NO_EDGE_IN,
    "model_nested_comp_with_scheduler": "E, F: " + _NO_EDGE_IN,
}
#: Files whose values match but whose node runs differ from PsyNeuLink's (the values of these
#: identity mechanisms do not depend on how often they run).
SCHEDULE_EXCEPTIONS: dict[str, str] = {
    "SimpleLinear-timing": _EXACT_TIME + " (A 1, B 5, C 1 runs there; A 2, B 6, C 1 here)",
    "SimpleBranching-timing": _EXACT_TIME + " (A 2, B 10, C 2, D 1 runs there; A 3, B 12, C 2, D 1 here)",
    "model_with_nested_graph": "without the edge C -> Inner Composition the nested graph is in the first "
                               "consideration set, with A: in the pass it runs in (after C), A (Always) runs "
                               "again, so A runs twice here (graph_scheduler does the same with this graph), "
                               "once in PsyNeuLink",
}
#: Files whose single trial is thousands of node runs lowered into one program: minutes here.
SLOW = {"SimpleFN-conditional"}

COMPARED = [n for n in MODELS if n not in NOT_MATCHING]


def _inputs(model: torchmdf.mdf.Model, name: str) -> dict[str, torch.Tensor]:
    """PsyNeuLink's input to each input mechanism, fed to that node's first input port."""
    nodes = {n.id: n for n in model.graphs[0].nodes}
    out = {}
    for node, value in MODELS[name]["inputs"].items():
        port = nodes[node].input_ports[0]
        shape = port.shape if isinstance(port.shape, tuple) and all(isinstance(d, int) for d in port.shape) else (-1,)
        out[f"{node}.{port.id}"] = torch.tensor(value, dtype=torch.float64).reshape(shape)
    return out


def compare(model: torchmdf.mdf.Model, name: str, skip_nodes: set[str] = frozenset()) -> tuple[int, float]:
    """Run ``model`` for PsyNeuLink's trials and compare the output ports of every mechanism
    (but ``skip_nodes``) after every trial; returns (values compared, max abs difference)."""
    exp = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torchmdf.UnknownKeyWarning)
        traj = torchmdf.simulate(model, steps=exp["trials"], inputs=_inputs(model, name))
    nodes = {n.id: n for n in model.graphs[0].nodes}
    count, worst = 0, 0.0
    for node, trials in exp["output_ports"].items():
        if node in skip_nodes:
            continue
        ports = nodes[node].output_ports
        assert len(trials) == exp["trials"]
        for t, values in enumerate(trials):
            for i, port in enumerate(ports[:len(values)]):
                got = traj[f"{node}.{port.id}"][t].detach().double().numpy().reshape(-1)
                want = np.asarray(values[i], dtype=float).reshape(-1)
                assert got.shape == want.shape, f"{name} trial {t + 1} {node}.{port.id}: {got.shape} vs {want.shape}"
                diff = float(np.max(np.abs(got - want))) if got.size else 0.0
                worst = max(worst, diff)
                assert np.allclose(got, want, rtol=RTOL, atol=ATOL), \
                    f"{name} trial {t + 1} {node}.{port.id}: torchmdf {got} PsyNeuLink {want}"
                count += got.size
    return count, worst


def node_runs(model: torchmdf.mdf.Model, name: str) -> dict[str, int]:
    """How often each node runs in PsyNeuLink's trials, by torchmdf's scheduler."""
    from torchmdf.frontends.mdf import program

    runs: dict[str, int] = {}
    for trial in program(model).schedules(MODELS[name]["trials"]):
        for step in trial:
            for node in step:
                runs[node] = runs.get(node, 0) + 1
    return runs


def _runs_match(model: torchmdf.mdf.Model, name: str) -> bool:
    """The mechanisms of the outer graph (a nested graph's runs are its nodes' here) run as
    often as in PsyNeuLink."""
    mechs = MODELS[name]["output_ports"]
    runs = node_runs(model, name)
    return {k: runs.get(k, 0) for k in mechs} == {k: v for k, v in MODELS[name]["node_runs"].items() if k in mechs}


def _load(name: str) -> torchmdf.mdf.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torchmdf.UnknownKeyWarning)
        return torchmdf.mdf.load(FIXTURES / f"{name}.json")


def _param(name: str):
    # minutes each (one trial is thousands of node runs): run with TORCHMDF_SWEEPS=1, not in CI
    return pytest.param(name, marks=[pytest.mark.slow, pytest.mark.sweep]) if name in SLOW else name


def test_every_psyneulink_file_is_accounted_for():
    files = {p.stem for p in FIXTURES.glob("*.json")} - {"psyneulink_expected"}
    assert files == set(MODELS) | set(NOT_RUN)
    assert len(COMPARED) >= 7


@pytest.mark.parametrize("name", [_param(n) for n in COMPARED])
def test_stored_file_matches_psyneulink(name):
    model = _load(name)
    count, worst = compare(model, name, NODE_EXCEPTIONS.get(name, (set(), ""))[0])
    assert count >= MODELS[name]["trials"]
    # a schedule exception is still a difference (else it goes)
    assert _runs_match(model, name) is (name not in SCHEDULE_EXCEPTIONS), node_runs(model, name)
    print(f"{name}: {count} values over {MODELS[name]['trials']} trials, max abs difference {worst:.3g}")


def test_psyneulink_summary(capsys):
    lines = [f"PsyNeuLink {EXPECTED['psyneulink']} ({EXPECTED['date']}): {len(MODELS) + len(NOT_RUN)} files, "
             f"{len(COMPARED)} compared with PsyNeuLink trial by trial: {', '.join(COMPARED)}"]
    lines += [f"  - {n}: not compared: {why}" for n, why in sorted({**NOT_MATCHING, **NOT_RUN}.items())]
    lines += [f"  - {n}: node runs not compared: {why}" for n, why in sorted(SCHEDULE_EXCEPTIONS.items())]
    lines += [f"  - {n}: inside the nested graph, not compared: {why}" for n, why in sorted(INNER_NOT_COMPARED.items())]
    lines += [f"  - {n}: mechanisms not compared: {', '.join(sorted(nodes))}: {why}"
              for n, (nodes, why) in sorted(NODE_EXCEPTIONS.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert set(NOT_MATCHING) <= set(MODELS)


# -- live: PsyNeuLink builds, runs and exports; torchmdf runs the export ----------------------------

#: PsyNeuLink 0.21's own exports that torchmdf does not run as PsyNeuLink does, with why.
LIVE_NOT_MATCHING: dict[str, str] = {
    "SimpleFN-timing": NOT_MATCHING["SimpleFN-timing"],
    "model_nested_comp_with_scheduler": "C's input port combines its two projections with a list literal "
                                        "[A's value (shape [1]), C's recurrent value (shape [1, 1])]: numpy "
                                        "(modeci_mdf) cannot make one array of them, nor can torchmdf",
}


@pytest.mark.psyneulink
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_psyneulink_export_matches_psyneulink(name, tmp_path):
    pytest.importorskip("psyneulink")
    if name in LIVE_NOT_MATCHING:
        pytest.skip(LIVE_NOT_MATCHING[name])
    import sys

    sys.path.insert(0, str(HERE))
    from make_psyneulink_expected import run_model

    warnings.simplefilter("ignore")
    got = run_model(name, with_export=True)  # PsyNeuLink's run, now, and its export after it
    for node, trials in MODELS[name]["output_ports"].items():  # the fixture is PsyNeuLink's
        np.testing.assert_allclose(np.asarray(got["output_ports"][node], dtype=float),
                                   np.asarray(trials, dtype=float), rtol=RTOL, atol=ATOL)
    path = tmp_path / f"{name}.json"
    path.write_text(got["export"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchmdf.mdf.load(path)
    compare(model, name)
    if name not in SCHEDULE_EXCEPTIONS:
        assert _runs_match(model, name), node_runs(model, name)


# -- PsyNeuLink's function spellings (torchmdf.mdf.psyneulink), by hand --------------------------

def _one_node(functions: dict, outputs: dict, parameters: dict | None = None) -> torchmdf.mdf.Model:
    node = {"input_ports": {"x": {"shape": [1], "default_value": [2.0]}}, "functions": functions,
            "output_ports": {k: {"value": v} for k, v in outputs.items()}}
    if parameters:
        node["parameters"] = parameters
    # PsyNeuLink's exports say v0.1, whose structural check allows an application's functions
    text = json.dumps({"m": {"format": "ModECI MDF v0.1", "graphs": {"g": {"nodes": {"n": node}}}}})
    return torchmdf.mdf.loads(text, source="pnl.json")


def test_psyneulink_linear_logistic_and_integrators_by_hand():
    m = _one_node({
        "lin": {"function": "linear", "args": {"variable0": "x", "slope": 3.0, "intercept": 1.0, "scale": 2.0,
                                               "offset": 0.5}},
        "log": {"function": "logistic", "args": {"variable0": "x", "gain": 2.0, "bias": 1.0, "x_0": 0.5,
                                                 "scale": 3.0, "offset": 0.25}},
        "si": {"function": "simpleintegrator", "args": {"variable0": "x", "previous_value": [1.0], "rate": 0.5,
                                                        "noise": 0.0, "offset": 0.1}},
        "ai": {"function": "adaptiveintegrator", "args": {"variable0": "x", "previous_value": [0.0], "rate": 0.25,
                                                          "noise": 0.0, "offset": 0.0}},
    }, {"lin": "lin", "log": "log", "si": "si", "ai": "ai"})
    traj = torchmdf.simulate(m, steps=3)
    x = 2.0
    assert traj["n.lin"][0].item() == pytest.approx(2.0 * (x * 3.0 + 1.0) + 0.5)
    assert traj["n.log"][0].item() == pytest.approx(3.0 / (1 + np.exp(-2.0 * (x + 1.0 - 0.5))) + 0.25)
    si, ai = 1.0, 0.0
    for t in range(3):
        si = si + x * 0.5 + 0.1
        ai = 0.75 * ai + 0.25 * x
        assert traj["n.si"][t].item() == pytest.approx(si)
        assert traj["n.ai"][t].item() == pytest.approx(ai)


def test_psyneulink_noise_is_refused_located():
    m = _one_node({"si": {"function": "simpleintegrator", "args": {
        "variable0": "x", "previous_value": [0.0], "rate": 1.0, "noise": 0.5, "offset": 0.0}}}, {"o": "si"})
    with pytest.raises(torchmdf.ValidationError, match=r"pnl\.json.*node 'n'.*function 'si'.*noise"):
        torchmdf.simulate(m, steps=1)


def test_a_loaded_psyneulink_file_keeps_what_it_says():
    """The rewrite is what lowering reads (a copy): the loaded model, and a save of it, keep
    PsyNeuLink's own spellings."""
    m = _one_node({"si": {"function": "simpleintegrator", "args": {
        "variable0": "x", "previous_value": [1.0], "rate": 0.5, "noise": 0.0, "offset": 0.0}}}, {"o": "si"})
    f = m.graphs[0].nodes[0].functions[0]
    assert f.function == "simpleintegrator" and [p.id for p in m.graphs[0].nodes[0].parameters] == []
    assert torchmdf.simulate(m, steps=2)["n.o"][:, 0].tolist() == [2.0, 3.0]
    assert f.function == "simpleintegrator"


def test_a_bare_tuple_is_indexed_item_by_item():
    """modeci_mdf evaluates ``a, b`` to a Python tuple (and ``[a, b]`` to a list) whose items
    may differ in shape: ``f[1]`` is the item as it is."""
    m = _one_node({"f": {"args": {"v": "x"}, "value": "[[v, v]], 3.0 * v[0]"},
                   "g": {"args": {"v": "x"}, "value": "[[v, v], 7.0]"}},
                  {"a": "f[0]", "b": "f[1]", "c": "g[1]"})
    traj = torchmdf.simulate(m, steps=1)
    assert traj["n.a"][0].tolist() == [[[2.0], [2.0]]]
    assert traj["n.b"][0].item() == 6.0
    assert traj["n.c"][0].item() == 7.0


def test_a_nested_graph_runs_as_a_node_by_hand():
    """Each time the parent's scheduler runs the nested graph, its own scheduler runs one
    evaluation of it: here G runs after every 2nd run of A, and inside G, F runs after every 2nd
    run of E (E: Always), so one evaluation of G is E, E, F."""
    counter = {"parameters": {"n": {"value": "n + 1", "default_initial_value": 0}},
               "output_ports": {"out": {"value": "n"}}}
    doc = {"m": {"format": "ModECI MDF v0.4", "graphs": {"outer": {
        "nodes": {"A": counter, "G": {
            "nodes": {"E": counter, "F": counter},
            "conditions": {"node_specific": {"F": {"type": "EveryNCalls", "kwargs": {"dependency": "E", "n": 2}}},
                           "termination": {"environment_state_update": {
                               "type": "AfterNCalls", "kwargs": {"dependency": "F", "n": 1}}}}}},
        "conditions": {"node_specific": {"G": {"type": "EveryNCalls", "kwargs": {"dependency": "A", "n": 2}}},
                       "termination": {"environment_state_update": {
                           "type": "AfterNCalls", "kwargs": {"dependency": "A", "n": 4}}}}}}}}
    model = torchmdf.mdf.loads(json.dumps(doc), source="nested.json")
    traj = torchmdf.simulate(model, steps=2)
    # per outer evaluation: A runs 4 times, G twice (E 4 times, F twice)
    assert [traj["A.out"][i].item() for i in range(2)] == [4, 8]
    assert [traj["E.out"][i].item() for i in range(2)] == [4, 8]
    assert [traj["F.out"][i].item() for i in range(2)] == [2, 4]
