"""A small CNN for 224x224 RGB images with a 2-class head, converted from PyTorch to MDF,
drawn at level 1 (nodes and edges) and level 3 (with parameters and functions), saved, read
back, run, and compared with the PyTorch model.

    python -m torchmdf.examples.simple_pytorch_to_mdf [--out DIR] [--size 224] [--batch 1]
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch
from torch import nn

import torchmdf

from ._common import Report, draw_picture, example_parser, out_dir


class SimpleNet(nn.Module):
    """Two conv blocks, global average pooling and a linear head with a softmax over 2 classes."""

    def __init__(self, channels: int = 8, classes: int = 2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(torch.flatten(self.features(x), 1)), dim=1)


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("simple_pytorch_to_mdf", __doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args(argv)
    out = out_dir(args)
    report = Report()

    torch.manual_seed(0)
    model = SimpleNet().eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        expected = model(x)
    mdf_model = torchmdf.compile(model, target="mdf", example_inputs=(x,))
    path = out / "simple_pytorch_to_mdf.json"
    torchmdf.mdf.save(mdf_model, path)
    nodes = sum(len(g.nodes) for g in mdf_model.graphs)
    print(f"converted SimpleNet (input {tuple(x.shape)}) to MDF: {nodes} nodes; wrote {path}")
    draw_picture(mdf_model, out / "simple_pytorch_to_mdf.png", level=1)
    draw_picture(mdf_model, out / "simple_pytorch_to_mdf.level3.png", level=3)

    gm = torchmdf.compile(path, target="fx")
    with torch.no_grad():
        got = gm(x)
    print(f"ran the MDF file (through torchmdf's FX backend) on the same image; class probabilities "
          f"{[round(v, 4) for v in got[0].tolist()]}:")
    report.compare("MDF file vs PyTorch, softmax output", got, expected, 1e-5)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
