"""torch.fx frontend -> IR -> FX backend on several models: same outputs as the original."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchmdf
from torchmdf.errors import UnsupportedOpError
from torchmdf.frontends.fx import lower_fx


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(torch.relu(self.fc1(x)))))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16 * 3 * 3, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        return self.head(torch.flatten(x, 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 1)
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = torch.sigmoid(self.a(x)) * x + self.b(x)
        return self.avg(y).flatten(1)


class Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(6, 6)
        self.norm = nn.LayerNorm(12)

    def forward(self, x):
        a = self.l(x)
        b = torch.tanh(x) - 1.5
        y = self.norm(torch.cat([a, b], dim=-1))
        return y.softmax(-1), y.mean(dim=1)


def opaque_user_function(x):
    return x * 2


torch.fx.wrap("opaque_user_function")


class Seq(nn.Sequential):
    pass


MODELS = {
    "mlp": (MLP, lambda: (torch.randn(8, 16),)),
    "small_cnn": (SmallCNN, lambda: (torch.randn(2, 3, 16, 16),)),
    "residual": (Residual, lambda: (torch.randn(2, 4, 8, 8),)),
    "branches": (Branches, lambda: (torch.randn(5, 6),)),
    "sequential": (lambda: Seq(nn.Linear(3, 5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 2), nn.LogSoftmax(-1)),
                   lambda: (torch.randn(4, 3),)),
}


def _same(a, b):
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fx_round_trip(name):
    torch.manual_seed(0)
    make, inputs = MODELS[name]
    model = make().eval()
    x = inputs()
    gm = torchmdf.compile(torch.fx.symbolic_trace(model), target="fx", example_inputs=x)
    with torch.no_grad():
        _same(gm(*x), model(*x))
    # parameters are nn.Parameters under the original names
    assert set(dict(gm.named_parameters())) == set(dict(model.named_parameters()))
    assert all(isinstance(p, nn.Parameter) for p in gm.parameters())
    ref = model.state_dict()
    for k, v in gm.state_dict().items():  # same names, same values (unused buffers may be dropped)
        assert torch.equal(v, ref[k]), k


def test_lower_and_emit_separately():
    model = MLP().eval()
    x = torch.randn(2, 16)
    g = torchmdf.lower(model, (x,), method="fx")
    assert all(n.provenance.origin == "fx" for n in g)
    assert {n.provenance.module_path for n in g} >= {"fc1", "fc2", "fc3"}
    gm = torchmdf.emit(g, target="fx")
    torch.testing.assert_close(gm(x), model(x))


def test_unsupported_calls_are_reported_together():
    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 3)
            self.l = nn.Linear(3, 3)

        def forward(self, x):
            y = self.l(x)
            return opaque_user_function(y), self.rnn(y)

    with pytest.raises(UnsupportedOpError) as e:
        lower_fx(Weird(), (torch.randn(2, 3),))
    msg = str(e.value)
    assert "RNN" in msg and "opaque_user_function" in msg and "2 unsupported" in msg
