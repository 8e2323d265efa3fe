"""Inception blocks (GoogLeNet-style: parallel 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches,
concatenated) converted to MDF twice, through torch.export and through TorchScript tracing,
each MDF file read back, run, and compared with the PyTorch model; with a picture.

    python -m torchmdf.examples.inception [--out DIR] [--size 32] [--blocks 2]
"""

from __future__ import annotations

import sys
import warnings
from typing import Sequence

import torch
from torch import nn

import torchmdf

from ._common import Report, draw_picture, example_parser, out_dir


def _conv(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU())


class InceptionBlock(nn.Module):
    """Four branches over the same input, concatenated on the channel axis."""

    def __init__(self, c_in: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], pool: int):
        super().__init__()
        self.branch1 = _conv(c_in, c1, 1)
        self.branch3 = nn.Sequential(_conv(c_in, c3[0], 1), _conv(c3[0], c3[1], 3))
        self.branch5 = nn.Sequential(_conv(c_in, c5[0], 1), _conv(c5[0], c5[1], 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(c_in, pool, 1))
        self.out_channels = c1 + c3[1] + c5[1] + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class SmallInception(nn.Module):
    """A stem, ``blocks`` Inception blocks and a classifier over 10 classes."""

    def __init__(self, blocks: int = 2, width: int = 8):
        super().__init__()
        self.stem = _conv(3, 2 * width, 3)
        layers, c = [], 2 * width
        for _ in range(blocks):
            block = InceptionBlock(c, width, (width, 2 * width), (width // 2, width), width)
            layers.append(block)
            c = block.out_channels
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("inception", __doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32, help="image height and width (default 32)")
    p.add_argument("--blocks", type=int, default=2, help="Inception blocks (default 2)")
    args = p.parse_args(argv)
    out = out_dir(args)
    report = Report()

    torch.manual_seed(0)
    model = SmallInception(args.blocks).eval()
    x = torch.randn(1, 3, args.size, args.size)
    with torch.no_grad():
        expected = model(x)
    print(f"SmallInception: {args.blocks} Inception blocks, input {tuple(x.shape)}")
    for method, how in (("export", "torch.export"), ("trace", "TorchScript (torch.jit.trace)")):
        with warnings.catch_warnings():  # torch >= 2.9 calls torch.jit.trace deprecated; it still works
            warnings.simplefilter("ignore", FutureWarning)
            mdf_model = torchmdf.compile(model, target="mdf", example_inputs=(x,), method=method)
        path = out / f"inception_{method}.json"
        torchmdf.mdf.save(mdf_model, path)
        print(f"{how}: {sum(len(g.nodes) for g in mdf_model.graphs)} MDF nodes, wrote {path}")
        with torch.no_grad():
            got = torchmdf.compile(path, target="fx")(x)
        report.compare(f"MDF file ({how}) vs PyTorch", got, expected, 1e-4)
        if method == "export":
            draw_picture(mdf_model, out / "inception.png", level=1)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
