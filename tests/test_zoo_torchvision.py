"""torchvision's classification models (random weights, nothing downloads) through torch.export
and TorchScript (trace) to MDF and back to FX: outputs equal to the original's, and at least
90% of the MDF functions ONNX ops.  Small models also go through an MDF file.  All 36 cases
take about 90 s on 2 cores, so CI runs them all; ``TORCHMDF_TORCHVISION_QUICK=1`` skips the
heavier ones (tagged "slow" in tests/zoo.py) for a quick local run."""

from __future__ import annotations

import os

import pytest
import torch
from test_zoo_mdf_roundtrip import op_domains
from torch.utils import _pytree as pytree

import torchmdf
from zoo import TORCHVISION

pytest.importorskip("torchvision")

QUICK = bool(os.environ.get("TORCHMDF_TORCHVISION_QUICK"))
FILE_MAX_PARAMS = 100_000  # bigger weights are compared through the MDF object, not a JSON file


def _cases():
    for e in TORCHVISION:
        for method in ("export", "trace"):
            marks = []
            if "slow" in e.tags:
                marks = [pytest.mark.slow,
                         pytest.mark.skipif(QUICK, reason="heavy torchvision model (TORCHMDF_TORCHVISION_QUICK=1)")]
            yield pytest.param(e, method, id=f"{e.name}-{method}", marks=marks)


@pytest.mark.parametrize("entry,method", list(_cases()))
def test_torchvision_to_mdf_and_back(entry, method, tmp_path):
    model = entry.make_model()
    inputs = entry.make_inputs()
    with torch.no_grad():
        expected = model(*inputs)
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs, method=method)
    if sum(p.numel() for p in model.parameters()) <= FILE_MAX_PARAMS:
        path = tmp_path / f"{entry.name}.json"
        torchmdf.mdf.save(m, path)
        m = torchmdf.mdf.load(path)
    gm = torchmdf.compile(m, target="fx")
    with torch.no_grad():
        got = gm(*inputs)
    exp_leaves, got_leaves = pytree.tree_leaves(expected), pytree.tree_leaves(got)
    assert len(exp_leaves) == len(got_leaves)
    for a, b in zip(exp_leaves, got_leaves):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    domains = op_domains(m)
    share = domains["onnx"] / max(sum(domains.values()), 1)
    print(f"\n{entry.name} via {method}: {sum(domains.values())} ops, {share:.0%} onnx:: {dict(domains)}")
    assert share >= 0.9, domains
    if method == "export" and entry.name != "tv_vgg11_bn" and entry.name != "tv_vgg11":
        # (VGG at 32x32: adaptive_avg_pool2d from 1x1 up to 7x7 has no ONNX form and stays aten)
        assert set(domains) == {"onnx"}, domains
