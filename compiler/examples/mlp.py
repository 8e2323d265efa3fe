"""A 3-layer MLP written in pure MDF (MatMul, linear and Relu standard functions), trained
through its PyTorch form on scikit-learn's bundled digits (8x8 images, no download), the
trained weights written back into the MDF model, the MDF file saved, read back and run.

    python -m torchmdf.examples.mlp [--out DIR] [-graph] [-run] [--epochs N] [--hidden H]

``-graph`` draws the MDF graph (mlp.png); ``-run`` plots a grid of test images with the
labels the MDF model predicts (mlp_results.png, needs matplotlib: ``pip install torchmdf[plot]``).

The weights are MDF parameters marked ``metadata: {"torchmdf": {"name": ..., "role":
"parameter"}}``, so the FX module torchmdf compiles from the model holds them as
``nn.Parameter``s under those names: torch.optim trains them, and each trained tensor is
written back to the MDF parameter of the same name.
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import torch

import torchmdf
from torchmdf.mdf import Edge, Graph, InputPort, Model, Node, OutputPort, Parameter

from ._common import Report, draw_picture, example_parser, out_dir, torch_threads

LAYERS = ("input_layer", "hidden_layer", "output_layer")


def _weight(layer: str, kind: str, value: torch.Tensor) -> Parameter:
    return Parameter(kind, value=value, metadata={"torchmdf": {"name": f"{layer}.{kind}", "role": "parameter",
                                                          "dtype": "float32"}})


def build_model(sizes: Sequence[int] = (64, 128, 64, 10), seed: int = 0) -> Model:
    """Three layers ``relu(x @ W + b)`` (no relu on the last), initialised as nn.Linear is."""
    gen = torch.Generator().manual_seed(seed)
    nodes = []
    for i, layer in enumerate(LAYERS):
        n_in, n_out = sizes[i], sizes[i + 1]
        bound = 1 / n_in ** 0.5
        w = (torch.rand(n_in, n_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(n_out, generator=gen) * 2 - 1) * bound
        port = "input" if i == 0 else "in_port"
        params = [_weight(layer, "weight", w), _weight(layer, "bias", b),
                  Parameter("mul", function="MatMul", args={"A": port, "B": "weight"}),
                  Parameter("sum", function="linear", args={"variable0": "mul", "slope": 1, "intercept": "bias"})]
        last = i == len(LAYERS) - 1
        if not last:
            params.append(Parameter("relu", function="Relu", args={"A": "sum"}))
        default = torch.zeros(1, n_in) if i == 0 else None
        nodes.append(Node(layer, input_ports=[InputPort(port, default_value=default)], parameters=params,
                          output_ports=[OutputPort("out_port", value="sum" if last else "relu")]))
    edges = [Edge(f"edge_{i + 1}", a.id, b.id, "out_port", "in_port") for i, (a, b) in enumerate(zip(nodes, nodes[1:]))]
    return Model("mlp_pure_mdf", graphs=[Graph("mlp_pure_mdf", nodes=nodes, edges=edges)])


def digits(seed: int = 0):
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], split 75/25 (stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def train(gm: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(gm.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(_logits(gm, x[idx]), y[idx])
            loss.backward()
            opt.step()


def _logits(gm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return gm(x)["output_layer.out_port"]


def write_back(model: Model, gm: torch.nn.Module) -> int:
    """Each trained tensor into the MDF parameter it came from (matched by its torchmdf name)."""
    trained = dict(gm.named_parameters())
    count = 0
    for node in model.graphs[0].nodes:
        for p in node.parameters:
            name = ((p.metadata or {}).get("torchmdf") or {}).get("name")
            if name in trained:
                p.value = trained[name].detach().clone()
                count += 1
    return count


def plot_results(images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(images), 24)
    cols = 8
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(cols * 1.2, 1.5 * ((n + cols - 1) // cols)))
    for ax, img, lab, pred in zip(axes.flat, images[:n], labels[:n], predicted[:n]):
        ax.imshow(img.reshape(8, 8).numpy(), cmap="gray_r")
        ax.set_title(f"{int(pred)}", color="green" if pred == lab else "red", fontsize=10)
        ax.axis("off")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("digits: label predicted by the MDF model (red: wrong)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("mlp", __doc__.split("\n\n")[0])
    p.add_argument("-graph", "--graph", action="store_true", help="draw the MDF graph to mlp.png")
    p.add_argument("-run", "--run", action="store_true", help="plot test images with predicted labels")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=128, help="first hidden layer (the second is half)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-accuracy", type=float, default=0.97)
    args = p.parse_args(argv)
    out = out_dir(args)
    report = Report()

    xtr, ytr, xte, yte = digits(args.seed)
    model = build_model((64, args.hidden, args.hidden // 2, 10), seed=args.seed)
    print(f"MDF model {model.id!r}: {' -> '.join(LAYERS)}; digits: {len(xtr)} train, {len(xte)} test images")
    gm = torchmdf.compile(model, target="fx")
    print(f"PyTorch form: {sum(p.numel() for p in gm.parameters())} trainable parameters "
          f"({', '.join(n for n, _ in gm.named_parameters())})")
    with torch_threads(1):  # a small model: one thread is fastest, and immune to a busy machine
        train(gm, xtr, ytr, args.epochs, args.seed)
    with torch.no_grad():
        torch_pred = _logits(gm, xte)
    print(f"trained {args.epochs} epochs; PyTorch test accuracy {float((torch_pred.argmax(1) == yte).float().mean()):.4f}")

    print(f"wrote {write_back(model, gm)} trained tensors back into the MDF model")
    path = out / "mlp.json"
    torchmdf.mdf.save(model, path)
    reloaded = torchmdf.compile(path, target="fx")
    with torch.no_grad():
        mdf_logits = _logits(reloaded, xte)
    predicted = mdf_logits.argmax(1)
    accuracy = float((predicted == yte).float().mean())
    print(f"saved {path}, read it back and ran it on the {len(xte)} test images:")
    report.compare("MDF file vs trained PyTorch module, logits", mdf_logits, torch_pred, 1e-4)
    report.require(f"MDF test accuracy {accuracy:.4f} >= {args.min_accuracy}", accuracy >= args.min_accuracy)
    print(f"test accuracy: {accuracy:.4f}")
    if args.graph:
        draw_picture(torchmdf.mdf.load(path), out / "mlp.png", level=3)
    if args.run:
        plot_results(xte, yte, predicted, out / "mlp_results.png")
        print(f"  results picture: {out / 'mlp_results.png'}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
