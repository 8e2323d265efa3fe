"""The A -> B -> C -> D model of the MDF examples, built with ``torchmdf.mdf``'s classes,
converted to PyTorch (an FX module) and from that to ONNX; every node's value is compared at
each step of an input sweep.

    python -m torchmdf.examples.abcd [--out DIR] [--steps N]

What is compared, per input value: MDF semantics (``torchmdf.simulate``, every node's output
port) against the PyTorch module's value of the same node (the FX node the IR node became),
and the ONNX model (run by onnxruntime where installed) at the graph's output, node D.
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch

import torchmdf
from torchmdf.mdf import Edge, Graph, InputPort, Model, Node, OutputPort, Parameter

from ._common import Report, draw_picture, example_parser, max_abs_diff, out_dir

NODES = ("A", "B", "C", "D")


def _node(id: str, color: str, function: str, **params: float) -> Node:
    args = {"variable0": "input_port1", **{k: k for k in params}}
    return Node(id, metadata={"color": color}, input_ports=[InputPort("input_port1", shape=(1,))],
                parameters=[Parameter(k, value=v) for k, v in params.items()]
                + [Parameter(f"{function}_func", function=function, args=args)],
                output_ports=[OutputPort("out_port", value=f"{function}_func")])


def build_model() -> Model:
    """input0 (the input level) -> A linear -> B logistic -> C exponential -> D sin."""
    input0 = Node("input0", metadata={"color": ".8 .8 .8"},
                  input_ports=[InputPort("input_level", shape=(1,), default_value=[0.0])],
                  output_ports=[OutputPort("out_port", value="input_level")])
    nodes = [input0,
             _node("A", ".8 0 0", "linear", slope=1.1, intercept=1.2),
             _node("B", "0 .8 0", "logistic", gain=2.1, bias=2.2, offset=2.3),
             _node("C", "0 0 .8", "exponential", scale=3.1, rate=3.2, bias=3.3, offset=3.4),
             _node("D", ".8 0 .8", "sin", scale=4.0)]
    edges = [Edge(f"edge_{a.id}_{b.id}", a.id, b.id, "out_port", "input_port1") for a, b in zip(nodes, nodes[1:])]
    return Model("ABCD", graphs=[Graph("abcd_example", nodes=nodes, edges=edges)])


def _onnx_session(onnx_model):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def main(argv: Sequence[str] | None = None) -> int:
    p = example_parser("abcd", __doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="input values swept from -1 to 1 (default 5)")
    args = p.parse_args(argv)
    out = out_dir(args)
    from torchmdf.verify import fx_values_by_ir_name

    path = out / "abcd.json"
    torchmdf.mdf.save(build_model(), path)
    model = torchmdf.mdf.load(path)
    print(f"wrote {path}: MDF model {model.id!r}, nodes {', '.join(n.id for n in model.graphs[0].nodes)}")
    draw_picture(model, out / "abcd.png", level=1)

    gm = torchmdf.compile(model, target="fx")
    x0 = torch.tensor([0.0], dtype=torch.float64)
    onnx_model = torchmdf.compile(gm, target="onnx", example_inputs=(x0,), method="export")
    import onnx

    onnx.save(onnx_model, out / "abcd.onnx")
    print(f"wrote {out / 'abcd.onnx'} (MDF -> PyTorch FX module -> torch.export -> ONNX)")
    session = _onnx_session(onnx_model)
    if session is None:
        print("  onnxruntime is not installed: the ONNX model is written but not run")

    report = Report()
    levels = torch.linspace(-1.0, 1.0, args.steps, dtype=torch.float64)
    print(f"\n{'input':>7} " + " ".join(f"{n:>12}" for n in NODES) + "   (MDF semantics, torchmdf.simulate)")
    worst = {"torch": 0.0, "onnx": 0.0}
    for level in levels:
        x = level.reshape(1)
        mdf_values = torchmdf.simulate(model, steps=1, inputs={"input0.input_level": x})
        expected = {n: mdf_values[f"{n}.out_port"][0] for n in NODES}
        print(f"{float(level):7.3f} " + " ".join(f"{float(expected[n].reshape(-1)[0]):12.6g}" for n in NODES))
        torch_values = fx_values_by_ir_name(gm, (x,))
        for n in NODES:
            worst["torch"] = max(worst["torch"], max_abs_diff(torch_values[n], expected[n]))
        if session is not None:
            (onnx_d,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
            worst["onnx"] = max(worst["onnx"], max_abs_diff(torch.from_numpy(onnx_d), expected["D"]))
    print(f"\ncompared at {args.steps} input values:")
    report.verdict(f"MDF vs PyTorch (FX module), nodes {', '.join(NODES)}", worst["torch"], 1e-9)
    if session is not None:
        report.verdict("MDF vs ONNX (onnxruntime), node D", worst["onnx"], 1e-9)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
