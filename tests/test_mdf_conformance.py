"""MDF -> IR -> FX (and simulate) reproduces what modeci_mdf computes for the shared example
files: ``expected.json`` holds every output port after the first evaluation (``after_1``,
``evaluate()``) and after the fifth (``after_5``, four more ``evaluate(time_increment=0.01)``)
for each file modeci_mdf can run (its ``ok`` keys)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import torchmdf
from conftest import EXAMPLES


def _expected() -> dict:
    if not (EXAMPLES / "expected.json").is_file():
        return {}
    return json.loads((EXAMPLES / "expected.json").read_text())["ok"]


RUNNABLE = sorted(_expected())
#: Files without state or scheduling conditions (other test modules round-trip these).
STATELESS = ["MDF/ABCD.json", "MDF/Arrays.json", "MDF/Simple.json", "MDF/ParametersFunctions.json",
             "ONNX/ab.json", "ONNX/abcd.json", "PyTorch/inception.json", "PyTorch/mlp_pure_mdf.json",
             "PyTorch/simple_pytorch_to_mdf.json"]
#: Files whose schedule depends on computed values (Threshold): no single graph per evaluation.
DYNAMIC = {"MDF/conditions/threshold_condition.json"}


def _compare(got: torch.Tensor, exp, where: str) -> None:
    g = got.detach().double().numpy()
    if isinstance(exp, dict) and "shape" in exp:  # large arrays: shape, sums, first values
        assert list(g.shape) == list(exp["shape"]), where
        np.testing.assert_allclose(g.sum(), exp["sum"], rtol=1e-5, atol=1e-6, err_msg=where)
        np.testing.assert_allclose(np.abs(g).sum(), exp["abs_sum"], rtol=1e-5, atol=1e-6, err_msg=where)
        first = np.asarray(exp["first"]).ravel()
        np.testing.assert_allclose(g.ravel()[: first.size], first, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        e = np.asarray(exp, dtype=np.float64)
        assert g.shape == e.shape, f"{where}: shape {g.shape}, modeci_mdf {e.shape}"
        # relative only: FN.mdf.json's fifth step is -3.2e15
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7 if np.abs(e).max(initial=0) < 1e6 else 0,
                                   err_msg=where)


@pytest.fixture(scope="module")
def expected():
    if not EXAMPLES.is_dir():
        pytest.skip("../shared/mdf-examples is not present")
    return _expected()


@pytest.fixture(scope="module")
def trajectories(expected):
    """One 5-step simulation per file, shared by the after_1 and after_5 checks."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = torchmdf.simulate(str(EXAMPLES / name), steps=5, dt=0.01)
        return cache[name]
    return get


def test_every_runnable_file_is_covered(expected):
    assert len(RUNNABLE) >= 18 and set(RUNNABLE) == set(expected)


@pytest.mark.parametrize("when", ["after_1", "after_5"])
@pytest.mark.parametrize("name", RUNNABLE)
def test_simulate_matches_modeci(name, when, expected, trajectories):
    exp = expected[name][when]
    traj = trajectories(name)
    assert set(exp) <= set(traj), f"missing ports {set(exp) - set(traj)}"
    for key, value in exp.items():
        assert traj[key].shape[0] == 5
        _compare(traj[key][0 if when == "after_1" else 4], value, f"{name} {when} {key}")


@pytest.mark.parametrize("name", [n for n in RUNNABLE if n not in DYNAMIC])
def test_fx_module_is_the_first_evaluation(name, expected):
    """``compile(path, target="fx")()`` runs the file as written: the first evaluation, returning
    the output ports that feed no edge."""
    exp = expected[name]["after_1"]
    gm = torchmdf.compile(str(EXAMPLES / name), target="fx")
    with torch.no_grad():
        out = gm()
    assert isinstance(out, dict)
    assert bool(out) == any(p for p in exp), f"{name}: outputs {list(out)}"
    for key, value in out.items():
        assert key in exp, f"{name}: output {key} not in expected"
        _compare(value, exp[key], f"{name} {key}")


@pytest.mark.parametrize("name", sorted(DYNAMIC))
def test_value_dependent_schedule_is_refused_as_one_graph(name, expected):
    with pytest.raises(torchmdf.ConversionError, match="Threshold") as err:
        torchmdf.compile(str(EXAMPLES / name), target="fx")
    assert name.rsplit("/", 1)[-1] in str(err.value) and "termination" in str(err.value)


@pytest.mark.parametrize("name", ["MDF/States.yaml", "MDF/Simple.yaml", "MDF/ABCD.yaml",
                                  "MDF/abc_conditions.yaml"])
def test_yaml_twins_match_json(name, expected):
    twin = name.replace(".yaml", ".json")
    if not (EXAMPLES / name).is_file() or twin not in expected:
        pytest.skip("no YAML twin")
    a = torchmdf.simulate(str(EXAMPLES / name), steps=5, dt=0.01)
    b = torchmdf.simulate(str(EXAMPLES / twin), steps=5, dt=0.01)
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_anchor_failures_still_fail_with_located_errors_or_run():
    """Files modeci_mdf cannot run: torchmdf either runs them or names the construct."""
    if not (EXAMPLES / "expected.json").is_file():
        pytest.skip("no expected.json")
    fails = json.loads((EXAMPLES / "expected.json").read_text())["anchor_fails"]
    for name in fails:
        try:
            torchmdf.simulate(str(EXAMPLES / name), steps=2, dt=0.01)
        except torchmdf.TorchMDFError as e:
            assert name.rsplit("/", 1)[-1] in str(e), str(e)
