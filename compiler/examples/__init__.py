"""Built-in examples: a small PyTorch model for the demo, MDF files shipped as package
data (``importlib.resources.files("torchmdf.examples")``), and the runnable examples, one
module each (``python -m torchmdf.examples.NAME`` or ``torchmdf example NAME``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn


class DemoMLP(nn.Module):
    """The model ``torchmdf demo`` converts: two hidden layers, ReLU and a softmax head."""

    def __init__(self, n_in: int = 8, hidden: int = 16, n_out: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return torch.softmax(self.head(x), dim=-1)


def demo_model(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(seed)
    return DemoMLP().eval(), (torch.randn(4, 8),)


def example_path(name: str) -> Path:
    """Path of a shipped MDF example (e.g. ``"abc.json"``)."""
    return Path(str(resources.files(__name__) / name))


def example_names() -> list[str]:
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith((".json", ".yaml")))


#: The runnable examples: module name -> what it shows.
EXAMPLES = {
    "abcd": "the A->B->C->D MDF model to PyTorch and ONNX; every node compared at each input",
    "mlp": "a 3-layer MLP in pure MDF trained on the digits (>= 97%); -graph draws it, -run plots results",
    "simple_pytorch_to_mdf": "a small CNN (224x224x3, 2 classes) to MDF, pictures at level 1 and 3, compared",
    "inception": "Inception blocks to MDF through torch.export and TorchScript, run from the file, compared",
    "fit_fitzhugh_nagumo": "fit FitzHugh-Nagumo's external current to a trajectory with torch.optim through simulate",
    "ddm": "the seed's drift-diffusion function to MDF, trials simulated to their decisions in one call, RT plot",
}


def run_example(name: str, argv: list[str] | None = None) -> int:
    """Run example ``name`` with command-line arguments ``argv``; its exit status."""
    import importlib

    from torchmdf.errors import TorchMDFError

    if name not in EXAMPLES:
        raise TorchMDFError(f"no example named {name!r}", hint=f"the examples: {', '.join(EXAMPLES)}")
    return importlib.import_module(f"{__name__}.{name}").main(argv or [])
