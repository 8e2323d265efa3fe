"""infer_shapes: types agree with what torch computes (static and symbolic), contradictions are
located ShapeErrors, the unknown stays unknown, and it is fast on long chains."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from torchmdf import interpreter
from torchmdf.errors import ShapeError
from torchmdf.ir import UNKNOWN, Graph, Provenance, TensorType
from torchmdf.ops import registry
from torchmdf.passes import InferShapes, PassManager
from torchmdf.passes.infer_shapes import infer_node, reshape_shape

sys.path.insert(0, str(Path(__file__).parent))
import zoo  # noqa: E402


def infer(g: Graph) -> Graph:
    InferShapes().call(g)
    return g


def single(op, in_types, attrs=None, consts=None, num_outputs=1):
    g = Graph()
    vals = []
    for i, t in enumerate(in_types):
        if consts and i in consts:
            vals.append(g.add_constant(consts[i], name=f"c{i}"))
        elif t is None:
            vals.append(None)
        else:
            vals.append(g.add_input(f"x{i}", t))
    n = g.create_node(op, vals, attrs or {}, num_outputs=num_outputs)
    g.outputs = list(n.outputs)
    infer(g)
    return n.outputs[0].type if num_outputs == 1 else [o.type for o in n.outputs]


F32 = torch.float32


def T(*shape, dtype=F32):
    return TensorType(dtype, tuple(shape))


def test_broadcast_keeps_symbols():
    assert single("onnx::Add", [T("batch", 3), T(3)]) == T("batch", 3)
    assert single("onnx::Mul", [T("batch", 1, 4), T(5, 1)]) == T("batch", 5, 4)
    assert single("onnx::Less", [T("n", 3), T(1, 3)]) == T("n", 3, dtype=torch.bool)
    assert single("onnx::Where", [T("n", 1, dtype=torch.bool), T(3), T(1)]) == T("n", 3)
    assert single("onnx::Add", [T(None, 3), T(2, 3)]) == T(2, 3)
    assert single("aten::add.Tensor", [T("b", 3, dtype=torch.int64), T((), dtype=F32)]) == T("b", 3)
    assert single("aten::mul.Scalar", [T("b", dtype=torch.int32)], {"other": 2.5}) == T("b")
    assert single("aten::div.Tensor", [T(2, dtype=torch.int64), T(2, dtype=torch.int64)]) == T(2)
    with pytest.raises(ShapeError, match="cannot broadcast"):
        single("onnx::Add", [T(2, 3), T(4, 3)])


def test_matmul_gemm_conv_pool():
    assert single("onnx::MatMul", [T("b", 5, 4), T(4, 3)]) == T("b", 5, 3)
    assert single("onnx::MatMul", [T(4), T("b", 4, 3)]) == T("b", 3)
    assert single("onnx::Gemm", [T("b", 4), T(3, 4), T(3)], {"transB": 1}) == T("b", 3)
    assert single("onnx::Conv", [T("n", 3, 9, 9), T(8, 3, 3, 3)], {"pads": [1, 1, 1, 1], "strides": [2, 2]}) \
        == T("n", 8, 5, 5)
    assert single("onnx::ConvTranspose", [T(1, 4, 5, 5), T(4, 2, 3, 3)], {"strides": [2, 2],
                                                                         "output_padding": [1, 1]}) == T(1, 2, 12, 12)
    assert single("onnx::MaxPool", [T("n", 3, 7, 7)], {"kernel_shape": [2, 2], "strides": [2, 2],
                                                       "ceil_mode": 1}) == T("n", 3, 4, 4)
    assert single("onnx::GlobalAveragePool", [T("n", 3, 7, 7)]) == T("n", 3, 1, 1)


def test_shape_ops_with_constant_inputs():
    i64 = torch.int64
    assert single("onnx::Reshape", [T("b", 3, 4), None], consts={1: torch.tensor([0, -1])}) == T("b", 12)
    assert single("onnx::Reshape", [T("b", 3, 4), None], consts={1: torch.tensor([-1, 4])}) == T(None, 4)
    assert single("onnx::Unsqueeze", [T("b", 3), None], consts={1: torch.tensor([0, -1])}) == T(1, "b", 3, 1)
    assert single("onnx::Squeeze", [T("b", 1, 3), None], consts={1: torch.tensor([1])}) == T("b", 3)
    assert single("onnx::Slice", [T("b", 10), None, None, None], consts={
        1: torch.tensor([1]), 2: torch.tensor([-1]), 3: torch.tensor([1])}) == T("b", 8)
    assert single("onnx::Gather", [T("b", 10, 4), T(2, 3, dtype=i64)], {"axis": 1}) == T("b", 2, 3, 4)
    assert single("onnx::Concat", [T("b", 2), T("b", 3)], {"axis": 1}) == T("b", 5)
    assert single("onnx::Transpose", [T("b", 2, 3)], {"perm": [2, 0, 1]}) == T(3, "b", 2)
    assert single("onnx::ReduceMean", [T("b", 2, 3), None], {"keepdims": 0}, consts={1: torch.tensor([1])}) \
        == T("b", 3)
    assert single("onnx::Shape", [T("b", 2, 3)]) == T(3, dtype=i64)
    assert single("onnx::Expand", [T(3, 1), None], consts={1: torch.tensor([2, 1, 4])}) == T(2, 3, 4)
    assert single("onnx::Cast", [T("b", 2)], {"to": 7}) == T("b", 2, dtype=i64)
    assert single("onnx::Split", [T("b", 7), None], {"axis": 1}, consts={1: torch.tensor([3, 4])},
                  num_outputs=2) == [T("b", 3), T("b", 4)]
    assert reshape_shape(("b", "s", 4), [0, 0, 2, 2]) == ("b", "s", 2, 2)
    assert reshape_shape(("b", "s", 4), [-1, 4]) == (None, 4)
    assert reshape_shape((2, 3, 4), [4, -1]) == (4, 6)


def test_unknown_stays_unknown():
    g = Graph()
    x = g.add_input("x")  # nothing known
    n = g.create_node("onnx::Relu", [x])
    m = g.create_node("aten::var.correction", [n.output], {"dim": [0]})
    g.outputs = [m.output]
    infer(g)
    assert n.output.type.shape is None and m.output.type.shape is None


def test_meta_fallback_keeps_symbols():
    # no shape function for these: they run on meta tensors with sentinel sizes
    assert single("aten::var.correction", [T("batch", 4, 6)], {"dim": [1]}) == T("batch", 6)
    assert single("aten::sort", [T("n", 4, 3)], {"dim": 1}, num_outputs=2) == \
        [T("n", 4, 3), T("n", 4, 3, dtype=torch.int64)]
    assert single("aten::topk", [T("n", 10)], {"k": 3}, num_outputs=2) == [T("n", 3), T("n", 3, dtype=torch.int64)]
    # a derived size is not a symbol: unknown
    assert single("aten::repeat", [T("n", 2)], {"repeats": [2, 1]}) == T(None, 2)
    # factory ops never allocate: the device is switched to meta
    assert single("aten::zeros", [], {"size": [100000, 100000], "device": torch.device("cpu")}) == \
        T(100000, 100000)


def test_declared_type_contradiction_is_located():
    g = Graph()
    x = g.add_input("x", T(2, 3))
    n = g.create_node("onnx::Relu", [x], provenance=Provenance("test", module_path="block.act", source="m.py:7"))
    n.output.type = T(2, 4)
    g.outputs = [n.output]
    with pytest.raises(ShapeError) as e:
        infer(g)
    assert "onnx::Relu" in str(e.value) and "block.act" in str(e.value) and "m.py:7" in str(e.value)
    n.output.type = T(2, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="declared"):
        infer(g)


def test_declared_symbols_are_kept_and_refined():
    g = Graph()
    x = g.add_input("x", T(4, 3))
    n = g.create_node("onnx::Relu", [x])
    n.output.type = T("s0", None)
    g.outputs = [n.output]
    assert InferShapes().call(g).modified
    assert n.output.type == T(4, 3)  # the more precise wins, no contradiction
    assert not InferShapes().call(g).modified


def test_registry_has_shape_fns_and_user_ones_are_used():
    assert registry.lookup("onnx::Add").shape_fn is not None
    seen = []

    def shape_fn(types, attrs):
        seen.append(attrs)
        return [TensorType(types[0].dtype, types[0].shape + (2,))]

    registry.register(registry.OpDef("test::pair", impl=lambda x: torch.stack([x, x], -1), shape_fn=shape_fn))
    assert single("test::pair", [T("b", 3)], {"k": 1}) == T("b", 3, 2)
    assert seen == [{"k": 1}]


def _retyped_equal(g: Graph):
    """Forget every node output type, infer again, and compare with what was there."""
    before = {}
    for n in g:
        for o in n.outputs:
            before[o] = o.type
            o.type = UNKNOWN
    infer(g)
    bad = [(o.producer.op, o.name, before[o], o.type) for o in before
           if before[o] != UNKNOWN and o.type != before[o]]
    assert not bad, bad[:5]


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18", "inception", "lstm", "transformer_layer", "gpt2"])
@pytest.mark.parametrize("stage", ["aten", "onnx"])
def test_zoo_types_match_torch(name, stage):
    e = zoo.get(name)
    from torchmdf.frontends.export import lower_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = lower_module(e.make_model(), e.make_inputs())
    if stage == "onnx":
        PassManager(["canonicalize", "eliminate_dead_code"]).run(g)
    _retyped_equal(g)


class _Dyn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)
        self.ln = nn.LayerNorm(5)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean((2, 3))
        return self.ln(self.fc(y)).softmax(-1), y.unsqueeze(1).expand(-1, 2, -1)


@pytest.mark.parametrize("stage", ["aten", "onnx"])
def test_symbolic_batch_flows(stage):
    from torchmdf.frontends.export import lower_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = lower_module(_Dyn().eval(), (torch.randn(2, 3, 8, 8),),
                         dynamic_shapes=({0: torch.export.Dim("batch")},))
    if stage == "onnx":
        PassManager(["canonicalize", "eliminate_dead_code"]).run(g)
    _retyped_equal(g)
    assert g.outputs[0].type == T("batch", 5) and g.outputs[1].type == T("batch", 2, 4)
    x = torch.randn(3, 3, 8, 8)
    out = interpreter.run(g, x)
    assert out[0].shape == (3, 5)


def _chain(n: int) -> Graph:
    g = Graph("chain")
    v = g.add_input("x", T("batch", 8))
    c = g.add_constant(torch.tensor(0.5))
    ops = ("onnx::Relu", "onnx::Add", "onnx::Tanh")
    for i in range(n):
        op = ops[i % 3]
        v = g.create_node(op, [v, c] if op == "onnx::Add" else [v]).output
    g.outputs = [v]
    return g


def test_fast_on_long_chains():
    g = _chain(20000)
    t = time.perf_counter()
    infer(g)
    per_node = (time.perf_counter() - t) / len(g)
    assert g.outputs[0].type == T("batch", 8)
    assert per_node < 40e-6, f"{per_node * 1e6:.1f} us per node"


def test_infer_node_non_strict_keeps_declared():
    g = Graph()
    x = g.add_input("x", T(2, 3))
    n = g.create_node("onnx::Relu", [x])
    n.output.type = T(2, 4)
    assert not infer_node(n, strict=False)
    assert n.output.type == T(2, 4)
