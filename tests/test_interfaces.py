"""``torchmdf.interfaces.pytorch``: modeci_mdf's ``pytorch_to_mdf`` / ``mdf_to_pytorch`` with
the same names and arguments.  Round trips torch -> MDF file -> torch give the same outputs,
the reference MDF examples give modeci_mdf's values, and nothing is written to disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchmdf
from torchmdf.errors import TorchMDFError
from torchmdf.interfaces.pytorch import mdf_to_pytorch, pytorch_to_mdf

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "mdf-examples"


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x):
        return F.softmax(self.fc2(torch.tanh(self.fc1(x))), dim=-1)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(x, 1))


MODELS = {"mlp": (MLP, (3, 6)), "cnn": (CNN, (2, 2, 8, 8))}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("trace", [False, True])
def test_round_trip_through_an_mdf_file(name, trace, tmp_path):
    torch.manual_seed(0)
    cls, shape = MODELS[name]
    model = cls().eval()
    x = torch.randn(*shape)
    mdf_model, params = pytorch_to_mdf(model, x, trace=trace)
    assert isinstance(mdf_model, torchmdf.mdf.Model)
    port = {k.replace(".", "_"): k for k in model.state_dict()}  # keyed as modeci_mdf keys its ports
    assert set(params) <= set(port) and {k.replace(".", "_") for k, _ in model.named_parameters()} <= set(params)
    assert all(torch.equal(v, model.state_dict()[port[k]]) for k, v in params.items())
    path = tmp_path / f"{name}.json"
    torchmdf.mdf.save(mdf_model, path)
    modules = mdf_to_pytorch(torchmdf.mdf.load(path), str(path), True, "mdf.s")  # modeci's positional order
    assert list(modules) == [g.id for g in mdf_model.graphs]
    gm = modules[mdf_model.graphs[0].id]
    assert isinstance(gm, torch.fx.GraphModule) and not gm.training
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-6)
    for k, v in gm.state_dict().items():  # the weights come back under their PyTorch names
        assert torch.equal(v, model.state_dict()[k]), k


def test_use_onnx_ops_false_keeps_aten_spellings():
    model = MLP().eval()
    x = torch.randn(2, 6)
    onnx_model, _ = pytorch_to_mdf(model, x)
    aten_model, _ = pytorch_to_mdf(model, x, use_onnx_ops=False)

    def functions(m):
        text = json.dumps(m.to_dict())
        return {w for w in ("onnx::", "aten::") if w in text}

    assert functions(onnx_model) == {"onnx::"}
    assert functions(aten_model) == {"aten::"}
    gm = mdf_to_pytorch(aten_model)[aten_model.graphs[0].id]
    torch.testing.assert_close(gm(x), model(x))


def test_plain_function_and_single_tensor_args():
    def simple(x, y):
        return x * 2 + y

    m, params = pytorch_to_mdf(simple, args=(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])))
    assert m.id == "simple" and params == {}
    # the inputs are named as modeci_mdf names them
    assert [p.id for _, p in m.graphs[0].free_input_ports()] == ["input1", "input2"]
    out = torchmdf.compile(m, target="fx")(input2=torch.tensor([1.0, 1.0]), input1=torch.tensor([2.0, 0.0]))
    assert torch.equal(out, torch.tensor([5.0, 1.0]))
    gm = mdf_to_pytorch(m)[m.graphs[0].id]
    torch.testing.assert_close(gm(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])), torch.tensor([5.0, 8.0]))
    with pytest.raises(TorchMDFError, match="example inputs"):
        pytorch_to_mdf(MLP())


# -- the reference MDF examples -------------------------------------------------------------------


def _examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip("../shared/mdf-examples is not present")
    return EXAMPLES


def _check(got: torch.Tensor, want) -> None:
    got = torch.as_tensor(got, dtype=torch.float64)
    if isinstance(want, dict):  # large arrays: shape, sums and first values
        assert list(got.shape) == want["shape"]
        assert got.sum().item() == pytest.approx(want["sum"], rel=1e-4, abs=1e-4)
        assert got.abs().sum().item() == pytest.approx(want["abs_sum"], rel=1e-4, abs=1e-4)
        torch.testing.assert_close(got.reshape(-1)[:len(want["first"])], torch.tensor(want["first"], dtype=torch.float64),
                                   rtol=1e-4, atol=1e-4)
    else:
        torch.testing.assert_close(got, torch.as_tensor(want, dtype=torch.float64).reshape(got.shape),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rel", ["MDF/Simple.json", "PyTorch/mlp_pure_mdf.json"])
def test_examples_match_modeci_mdf(rel):
    root = _examples()
    expected = json.loads((root / "expected.json").read_text())["ok"][rel]
    modules = mdf_to_pytorch(torchmdf.mdf.load(root / rel))
    gm = modules[expected["graph"]]
    with torch.no_grad():
        out = gm()
    assert out and set(out) <= set(expected["after_1"])
    for port, value in out.items():
        _check(value, expected["after_1"][port])


def test_model_input_as_file_and_as_values():
    root = _examples()
    path = root / "ONNX" / "ab.json"
    by_file = mdf_to_pytorch(None, str(path), eval_models=False)  # loaded from model_input
    (gid, gm), = by_file.items()
    assert gm.training
    default = gm()
    ones = torch.ones(2, 3, dtype=torch.float64)
    with_values = mdf_to_pytorch(path, {"input": ones})[gid]
    out = with_values()
    assert set(out) == set(default)
    torch.testing.assert_close(out[next(iter(out))], gm(ones)[next(iter(out))])
    with pytest.raises(TorchMDFError, match="unknown input"):
        mdf_to_pytorch(path, {"nope": 1.0})
    with pytest.raises(TorchMDFError, match="version"):
        mdf_to_pytorch(path, version="mdf.9")


def test_accepts_a_modeci_mdf_model():
    root = _examples()
    modeci = pytest.importorskip("modeci_mdf.utils")
    model = modeci.load_mdf(str(root / "MDF" / "Simple.json"))
    (gm,) = mdf_to_pytorch(model).values()
    _check(gm()["processing_node.output_1"], 0.6016871801828567)


def test_nothing_is_written_to_disk(tmp_path, monkeypatch):
    root = _examples()
    monkeypatch.chdir(tmp_path)
    model = CNN().eval()
    x = torch.randn(2, 2, 8, 8)
    mdf_model, _ = pytorch_to_mdf(model, x)
    mdf_to_pytorch(mdf_model)
    for rel in ("MDF/Simple.json", "PyTorch/mlp_pure_mdf.json"):
        mdf_to_pytorch(str(root / rel), str(root / rel))
    assert os.listdir(tmp_path) == []
    assert not (root / "PyTorch" / "MDF_PyTorch").exists()  # where modeci_mdf writes its scripts
