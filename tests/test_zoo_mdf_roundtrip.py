"""The model zoo through torch.export and TorchScript to MDF: saved, loaded again, compiled to
FX, outputs equal to the original (float32: rtol 1e-4, atol 1e-5).  For the CNNs and the MLP
every op in the file is an ONNX op; for the rest the ONNX share is printed."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils import _pytree as pytree

import torchmdf
from zoo import EAGER_VARIANTS, ZOO, get

ALL_ONNX = {"mlp", "mlp_bn_prelu", "cnn", "resnet18", "inception", "depthwise"}
NOT_SCRIPTABLE = {e.name for e in ZOO + EAGER_VARIANTS if "transformers" in e.tags}  # trace is used for them
MIN_ONNX_SHARE = 0.9  # through torch.export, for every zoo model
METHODS = ["export", "trace", "script"]


def _cases():
    for e in ZOO + EAGER_VARIANTS:
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
    if method == "export":
        assert share >= MIN_ONNX_SHARE, domains
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


DYNAMIC = ["bert_sdpa", "gpt2_sdpa", "llama_sdpa", "bart_sdpa", "t5_sdpa"]
DYNAMIC_EAGER = ["bert", "gpt2", "llama_eager", "bart_eager", "t5_eager"]


@pytest.mark.parametrize("method", ["export", "trace"])
@pytest.mark.parametrize("name", DYNAMIC + [pytest.param(n, marks=pytest.mark.slow) for n in DYNAMIC_EAGER])
def test_transformers_with_dynamic_batch_and_sequence(name, method, tmp_path):
    """Exported (or traced) with a dynamic batch and sequence length: the MDF file keeps the
    dims symbolic and the module built from it runs other batch sizes and lengths, equal to
    the original."""
    from torch.export import Dim

    entry = get(name)
    model = entry.make_model()
    inputs = entry.make_inputs()
    batch, seq = Dim("batch"), Dim("seq", min=3, max=64)  # BART's decoder needs 3 tokens
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs, method=method,
                         dynamic_shapes=tuple({0: batch, 1: seq} for _ in inputs))
    path = tmp_path / f"{name}.json"
    torchmdf.mdf.save(m, path)
    reloaded = torchmdf.mdf.load(path)
    ports = [p for g in reloaded.graphs for n in g.nodes for p in n.input_ports if p.metadata]
    assert ports and all(p.metadata["torchmdf"]["shape"] == ["batch", "seq"] for p in ports)
    gm = torchmdf.compile(reloaded, target="fx")
    for b, s in [(3, 5), (1, 11)]:
        g = torch.Generator().manual_seed(b)
        ids = torch.randint(3, 100, (b, s), generator=g)
        args = (ids,) if len(inputs) == 1 else (ids, torch.ones(b, s, dtype=torch.long))
        with torch.no_grad():
            expected, got = model(*args), gm(*args)
        for a, c in zip(pytree.tree_leaves(expected), pytree.tree_leaves(got)):
            torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-5)
    with pytest.raises(torchmdf.TorchMDFError, match="converted for shape"):
        gm(torch.zeros(2, 3, 4, dtype=torch.long), *([torch.ones(2, 3, dtype=torch.long)] * (len(inputs) - 1)))


@pytest.mark.parametrize("method", ["export", "trace"])
@pytest.mark.parametrize("name", ["vit_sdpa", pytest.param("vit_eager", marks=pytest.mark.slow)])
def test_vit_with_dynamic_batch(name, method, tmp_path):
    """ViT's image size is fixed by its position embeddings; its batch is dynamic
    (``dynamic_batch=True``) through an MDF file."""
    entry = get(name)
    model, inputs = entry.make_model(), entry.make_inputs()
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs, method=method, dynamic_batch=True)
    path = tmp_path / f"{name}.json"
    torchmdf.mdf.save(m, path)
    gm = torchmdf.compile(torchmdf.mdf.load(path), target="fx")
    for b in (1, 3):
        x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            expected, got = model(x), gm(x)
        for a, c in zip(pytree.tree_leaves(expected), pytree.tree_leaves(got)):
            torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-5)
    with pytest.raises(torchmdf.TorchMDFError, match=r"converted for shape \(batch, 3, 32, 32\)"):
        gm(torch.randn(2, 3, 16, 16))
