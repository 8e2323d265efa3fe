"""Random ``nn.Module``\\ s composed of the layers and functional ops torchmdf supports,
with data-dependent control flow (``torch.cond``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn


class Scale(nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.k


class AddRowSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.sum(-1, keepdim=True)


class CenterRows(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(-1, keepdim=True)


class LeakyWhere(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, 0.1 * x)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, -1.5, 1.5)


class Doubled(nn.Module):
    """``cat([x, -x])``: the width doubles."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, -x], dim=-1)


class Residual(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class Cond(nn.Module):
    """``torch.cond(x.sum() > 0.25, then, else)``: both branches keep the shape.  Not ``> 0``:
    after ``Doubled`` the sum is 0 up to rounding, and torch and onnxruntime, summing in
    another order, took different branches (found by the long profile)."""

    def __init__(self, then: nn.Module, other: nn.Module):
        super().__init__()
        self.then = then
        self.other = other

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0.25, lambda y: self.then(y), lambda y: self.other(y), (x,))


class Stack(nn.Module):
    """The drawn layers in order (a plain ``nn.Sequential`` would do, but a named class says
    what the model is in a failing example)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Softplus, nn.Hardtanh, nn.Identity,
                LeakyWhere, Clamp, AddRowSum, CenterRows)


@st.composite
def _keep_width(draw: Any, width: int) -> nn.Module:
    """A layer mapping ``(B, width)`` to ``(B, width)``."""
    kind = draw(st.sampled_from(["elementwise", "linear", "norm", "softmax", "scale"]))
    if kind == "elementwise":
        return draw(st.sampled_from(_ELEMENTWISE))()
    if kind == "linear":
        return nn.Linear(width, width, bias=draw(st.booleans()))
    if kind == "norm":
        return draw(st.sampled_from([nn.LayerNorm, nn.BatchNorm1d]))(width)
    if kind == "softmax":
        return nn.Softmax(dim=-1)
    return Scale(draw(st.floats(-2, 2, allow_nan=False, width=32)))


@st.composite
def modules(draw: Any, *, max_layers: int = 6, control_flow: bool = True) -> tuple[nn.Module, tuple[torch.Tensor]]:
    """``(module, example_inputs)``: an ``nn.Module`` (eval mode, weights seeded by the draw)
    over a ``(batch, width)`` input: linear, normalization, activations, reductions, ``cat``,
    residual blocks and, when ``control_flow``, ``torch.cond`` on the data.

    Each ``torch.cond`` run eagerly is compiled by dynamo, whose guard caches grow with every
    example and make each compile slower (a long run fell from 43 to 12 examples a minute):
    call ``torch._dynamo.reset()`` before each example of a long run, as the project's own
    property does."""
    batch, width = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    width0 = width
    layers: list[nn.Module] = []
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(["keep", "keep", "resize", "double", "residual"]
                                    + (["cond"] if control_flow else [])))
        if kind == "keep":
            layers.append(draw(_keep_width(width)))
        elif kind == "resize":
            new = draw(st.integers(1, 6))
            layers.append(nn.Linear(width, new))
            width = new
        elif kind == "double" and width <= 8:
            layers.append(Doubled())
            width *= 2
        elif kind == "residual":
            layers.append(Residual(draw(_keep_width(width))))
        elif kind == "cond":  # torch.export refuses a branch that returns its input (nn.Identity)
            branch = _keep_width(width).filter(lambda m: not isinstance(m, nn.Identity))
            layers.append(Cond(draw(branch), draw(branch)))
    model = Stack(layers).eval()
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    with torch.no_grad():  # weights from the draw, not from torch's global generator
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model, (torch.randn(batch, width0, generator=gen),)
