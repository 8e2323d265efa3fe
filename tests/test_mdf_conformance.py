"""MDF -> IR -> FX (and simulate) reproduces what modeci_mdf computes for the shared example
files (``expected.json``: the first evaluation, ``after_1``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import torchmdf
from conftest import EXAMPLES

STATELESS = ["MDF/ABCD.json", "MDF/Arrays.json", "MDF/Simple.json", "MDF/ParametersFunctions.json",
             "ONNX/ab.json", "ONNX/abcd.json", "PyTorch/inception.json", "PyTorch/mlp_pure_mdf.json",
             "PyTorch/simple_pytorch_to_mdf.json"]


def _expected():
    return json.loads((EXAMPLES / "expected.json").read_text())["ok"]


def _compare(got: torch.Tensor, exp, where: str) -> None:
    g = got.detach().double().numpy()
    if isinstance(exp, dict) and "shape" in exp:  # large arrays: shape, sums, first values
        assert list(g.shape) == list(exp["shape"]), where
        np.testing.assert_allclose(g.sum(), exp["sum"], rtol=1e-5, atol=1e-6, err_msg=where)
        np.testing.assert_allclose(np.abs(g).sum(), exp["abs_sum"], rtol=1e-5, atol=1e-6, err_msg=where)
        first = np.asarray(exp["first"]).ravel()
        np.testing.assert_allclose(g.ravel()[: first.size], first, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        np.testing.assert_allclose(g, np.asarray(exp, dtype=np.float64), rtol=1e-5, atol=1e-7, err_msg=where)


@pytest.fixture(scope="module")
def expected():
    if not EXAMPLES.is_dir():
        pytest.skip("../shared/mdf-examples is not present")
    return _expected()


@pytest.mark.parametrize("name", STATELESS)
def test_fx_matches_modeci_first_evaluation(name, expected):
    exp = expected[name]["after_1"]
    gm = torchmdf.compile(str(EXAMPLES / name), target="fx")
    with torch.no_grad():
        out = gm()
    assert isinstance(out, dict)
    for key in out:
        assert key in exp, f"{name}: output {key} not in expected"
    for key, value in exp.items():
        if key in out:
            _compare(out[key], value, f"{name} {key}")


@pytest.mark.parametrize("name", STATELESS)
def test_simulate_one_step_gives_every_output_port(name, expected):
    exp = expected[name]["after_1"]
    traj = torchmdf.simulate(str(EXAMPLES / name), steps=1)
    assert set(exp) <= set(traj), set(exp) - set(traj)
    for key, value in exp.items():
        assert traj[key].shape[0] == 1
        _compare(traj[key][0], value, f"{name} {key}")
