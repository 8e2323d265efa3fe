"""The model zoo through torch.export and TorchScript to MDF: saved, loaded again, compiled to
FX, outputs equal to the original (float32: rtol 1e-4, atol 1e-5).  For the CNNs and the MLP
every op in the file is an ONNX op; for the rest the ONNX share is printed."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils import _pytree as pytree

import torchmdf
from zoo import ZOO, get

ALL_ONNX = {"mlp", "cnn", "resnet18", "inception", "depthwise"}
NOT_SCRIPTABLE = {"bert", "gpt2"}  # transformers' code does not script; trace is used for them
METHODS = ["export", "trace", "script"]


def _cases():
    for e in ZOO:
        for m in METHODS:
            if m == "script" and e.name in NOT_SCRIPTABLE:
                continue
            yield pytest.param(e.name, m, id=f"{e.name}-{m}")


def op_domains(model: torchmdf.mdf.Model) -> collections.Counter:
    """How many MDF functions of each domain (onnx, aten, mdf) a model uses."""
    c: collections.Counter = collections.Counter()
    for g in model.graphs:
        for n in g.nodes:
            for p in n.parameters:
                if p.function:
                    c[p.function.split("::")[0] if "::" in p.function else "mdf"] += 1
    return c


_SHARES: dict[str, float] = {}


@pytest.mark.parametrize("name,method", list(_cases()))
def test_zoo_to_mdf_and_back(name, method, tmp_path):
    entry = get(name)
    torch.manual_seed(0)
    model = entry.make_model()
    inputs = entry.make_inputs()
    with torch.no_grad():
        expected = model(*inputs)
    mdf_model = torchmdf.compile(entry.make_model(), target="mdf", example_inputs=inputs, method=method)
    path = tmp_path / f"{name}.json"
    torchmdf.mdf.save(mdf_model, path)
    reloaded = torchmdf.mdf.load(path)
    gm = torchmdf.compile(reloaded, target="fx")
    with torch.no_grad():
        got = gm(*inputs)
    exp_leaves, exp_spec = pytree.tree_flatten(expected)
    got_leaves, got_spec = pytree.tree_flatten(got)
    assert exp_spec == got_spec, (exp_spec, got_spec)
    for a, b in zip(exp_leaves, got_leaves):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    domains = op_domains(mdf_model)
    share = domains["onnx"] / max(sum(domains.values()), 1)
    _SHARES[f"{name}-{method}"] = share
    if name in ALL_ONNX:
        assert set(domains) == {"onnx"}, domains
    print(f"\n{name} via {method}: {sum(domains.values())} ops, {share:.0%} onnx:: {dict(domains)}")


def test_report_onnx_share(capsys):
    """Prints the share of onnx:: ops per model and frontend (run after the cases above)."""
    if not _SHARES:
        pytest.skip("run with the round-trip cases to get the report")
    with capsys.disabled():
        print("\nONNX share of MDF functions:")
        for k, v in sorted(_SHARES.items()):
            print(f"  {k:<28} {v:6.1%}")
    assert all(0.0 <= v <= 1.0 for v in _SHARES.values())
