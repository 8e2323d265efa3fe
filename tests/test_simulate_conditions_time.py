"""Absolute-time conditions (TimeInterval, TimeTermination; issue 12, item 1): torchmdf's
scheduler keeps graph_scheduler's absolute clock, and simulate() matches modeci_mdf (the oracle)
evaluation by evaluation on small files written here."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import torchmdf

try:  # the oracle
    from modeci_mdf.execution_engine import EvaluableGraph
    from modeci_mdf.utils import load_mdf
except ImportError:  # pragma: no cover - oracle tests skip
    EvaluableGraph = None

oracle = pytest.mark.skipif(EvaluableGraph is None, reason="modeci_mdf is not installed")
STEPS = 4


def _counter(node_id: str) -> dict:
    return {"input_ports": {"i": {"shape": [1]}},
            "parameters": {"p": {"value": "p + 1", "default_initial_value": 0}},
            "output_ports": {"o": {"value": "p"}}}


def _doc(node_specific: dict, termination: dict | None = None, nodes: str = "ABC") -> dict:
    edges = {f"{s}{r}": {"sender": s, "receiver": r, "sender_port": "o", "receiver_port": "i"}
             for s, r in zip(nodes, nodes[1:])}
    conditions: dict = {"node_specific": node_specific}
    if termination:
        conditions["termination"] = termination
    g = {"nodes": {n: _counter(n) for n in nodes}, "edges": edges, "conditions": conditions}
    return {"m": {"format": "ModECI MDF v0.4", "graphs": {"g": g}}}


def _c(type_: str, **kwargs) -> dict:
    return {"type": type_, "kwargs": kwargs}


PASSES3 = {"environment_state_update": _c("AfterNPasses", n=3)}
CASES = {
    "repeat": _doc({"B": _c("TimeInterval", repeat=2)}, PASSES3),
    "repeat_from_start": _doc({"B": _c("TimeInterval", repeat=2, start=1)}, PASSES3),
    "window": _doc({"B": _c("TimeInterval", start=2, end=5), "C": _c("TimeInterval", start="3ms")}, PASSES3),
    "exclusive_window": _doc({"C": _c("TimeInterval", start=2, end=6, start_inclusive=False,
                                      end_inclusive=False)}, PASSES3),
    "microseconds": _doc({"B": _c("TimeInterval", repeat=1500, unit="us"),
                          "C": _c("TimeInterval", repeat="1 ms")}, PASSES3),
    # the clock's step is gcd(2, 3) / 3 consideration sets: B every 2nd pass, C every 6th
    "composite": _doc({"B": _c("TimeInterval", repeat=2),
                       "C": _c("All", dependencies=[_c("TimeInterval", repeat=3),
                                                    _c("EveryNCalls", dependency="B", n=1)])},
                      {"environment_state_update": _c("AfterNPasses", n=5)}),
    # the clock starts at the earliest fixed point (5 ms): already terminated, nothing runs
    "termination": _doc({}, {"environment_state_update": _c("TimeTermination", t=5)}),
    "termination_after_start": _doc({"B": _c("TimeInterval", start=2)},
                                    {"environment_state_update": _c("TimeTermination", t=6)}),
    "termination_exclusive": _doc({"B": _c("Always")}, {"environment_state_update":
                                                         _c("TimeTermination", t=4, inclusive=False)}),
    # beside a Threshold (a value-dependent schedule): the Python scheduler runs it
    "with_threshold": _doc({"B": _c("TimeInterval", repeat=2), "C": _c("TimeInterval", start=3)},
                           {"environment_state_update": _c("Threshold", dependency="A", parameter="p",
                                                           threshold=4, comparator=">=")}),
    "one_consideration_set": _doc({"A": _c("TimeInterval", repeat=2, start=1)},
                                  {"environment_state_update": _c("AfterNPasses", n=5)}, nodes="A"),
}


def _modeci_trajectories(path, steps: int) -> list[dict]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eg = EvaluableGraph(load_mdf(str(path)).graphs[0], verbose=False)
        for k in range(steps):
            eg.evaluate(time_increment=None if k == 0 else 0.01)
            out.append({f"{n}.{p}": o.curr_value for n, en in eg.enodes.items()
                        for p, o in en.evaluable_outputs.items()})
    return out


@oracle
@pytest.mark.parametrize("case", sorted(CASES))
def test_absolute_time_conditions_match_modeci_mdf(tmp_path, case):
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(CASES[case]))
    want = _modeci_trajectories(path, STEPS)
    got = torchmdf.simulate(str(path), steps=STEPS, dt=0.01)
    ran = set()
    for k, values in enumerate(want):
        for port, v in values.items():
            if v is None:
                assert port not in got or torch.isnan(got[port][k]).all(), (case, k, port)
            else:
                ran.add(port)
                assert got[port][k].tolist() == pytest.approx(float(v)), (case, k, port)
    assert ran or case == "termination", case  # something ran


@oracle
def test_the_cases_exercise_the_clock(tmp_path):
    """Independent of torchmdf: the oracle's schedules differ from the same graphs without
    absolute-time conditions (so the tests above check the clock, not the defaults)."""
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(_doc({}, PASSES3)))
    base = _modeci_trajectories(plain, STEPS)
    for case in ("repeat_from_start", "window", "exclusive_window", "microseconds", "composite",
                 "termination_after_start"):
        path = tmp_path / f"{case}.json"
        path.write_text(json.dumps(CASES[case]))
        assert _modeci_trajectories(path, STEPS) != base, case


@pytest.mark.parametrize("kwargs, fragment", [
    ({"start": 3, "end": 1}, "later than"),
    ({"repeat": "2 parsecs"}, "a time such as"),
    ({"repeat": 2, "unit": "fortnight"}, "unknown time unit"),
    ({}, "at least one of"),
])
def test_bad_time_interval_is_a_located_error(tmp_path, kwargs, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_doc({"B": _c("TimeInterval", **kwargs)}, PASSES3)))
    with pytest.raises(torchmdf.TorchMDFError, match=fragment) as e:
        torchmdf.simulate(str(path), steps=2)
    assert "bad.json" in str(e.value) and "node_specific 'B'" in str(e.value)
