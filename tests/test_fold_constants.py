"""fold_constants: pure nodes on known tensors become constants (with provenance), weights
only when asked, never growing the model, shape queries on static shapes included."""

from __future__ import annotations

import time

import torch

from torchmdf import interpreter
from torchmdf.ir import Graph, Provenance, TensorType
from torchmdf.ops import registry
from torchmdf.passes import DEFAULT_PIPELINE, EliminateDeadCode, FoldConstants, PassManager


def run(g: Graph, *passes) -> Graph:
    PassManager(list(passes) or [FoldConstants(), EliminateDeadCode()]).run(g)
    return g


def test_constant_subgraph_folds_with_provenance():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (3,)))
    a = g.add_constant(torch.tensor([1.0, 2.0, 3.0]), name="a")
    b = g.add_constant(torch.tensor(2.0), name="b")
    prov = Provenance("torch.export", module_path="head", source="model.py:3")
    m = g.create_node("onnx::Mul", [a, b], provenance=prov, name="scaled")
    e = g.create_node("onnx::Exp", [m.output])
    y = g.create_node("onnx::Add", [x, e.output])
    g.outputs = [y.output]
    feed = torch.randn(3)
    before = interpreter.run(g, feed)
    run(g)
    assert [n.op for n in g] == ["onnx::Add"]
    c = y.inputs[1]
    assert c.role == "constant" and c.meta["provenance"] is e.provenance and c.meta["folded_from"] == "onnx::Exp"
    assert "a" not in g.parameters and "b" not in g.parameters  # dead inputs removed by DCE
    torch.testing.assert_close(interpreter.run(g, feed), before, rtol=0, atol=0)
    assert torch.equal(c.tensor, torch.exp(torch.tensor([2.0, 4.0, 6.0])))
    scaled = [v for v in g.parameters.values()]
    assert len(scaled) == 1


def test_provenance_recorded_and_name_kept():
    g = Graph()
    a = g.add_constant(torch.ones(2), name="a")
    prov = Provenance("torch.export", module_path="head")
    n = g.create_node("onnx::Neg", [a], provenance=prov, name="negated")
    g.outputs = [n.output]
    run(g)
    (c,) = g.parameters.values()
    assert c.name == "negated" and c.meta["provenance"] is prov and c.meta["folded_from"] == "onnx::Neg"
    assert g.outputs == [c]
    g.verify()


def test_parameters_fold_only_when_asked():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (2, 4)))
    w = g.add_parameter("fc.weight", torch.randn(3, 4))
    t = g.create_node("onnx::Transpose", [w], {"perm": [1, 0]})
    y = g.create_node("onnx::MatMul", [x, t.output])
    g.outputs = [y.output]
    feed = torch.randn(2, 4)
    before = interpreter.run(g, feed)
    run(g)
    assert [n.op for n in g] == ["onnx::Transpose", "onnx::MatMul"]
    run(g, FoldConstants(fold_parameters=True), EliminateDeadCode())
    assert [n.op for n in g] == ["onnx::MatMul"]
    (c,) = g.parameters.values()
    assert c.role == "constant" and c.tensor.shape == (4, 3)
    torch.testing.assert_close(interpreter.run(g, feed), before, rtol=0, atol=0)


def test_never_inflates():
    g = Graph()
    c = g.add_constant(torch.tensor([1.0]), name="one")
    shape = g.add_constant(torch.tensor([1000, 1000]), name="shape")
    big = g.create_node("onnx::Expand", [c, shape])
    g.outputs = [big.output]
    run(g)
    assert [n.op for n in g] == ["onnx::Expand"]  # a million elements from three
    # a large result is fine when the inputs it replaces are as large
    g = Graph()
    w = g.add_constant(torch.randn(100, 50), name="w")
    t = g.create_node("onnx::Transpose", [w], {"perm": [1, 0]})
    g.outputs = [t.output]
    run(g)
    assert len(g) == 0 and list(g.parameters.values())[0].tensor.shape == (50, 100)
    # ... but not when the input stays alive for another reader
    g = Graph()
    w = g.add_constant(torch.randn(100, 50), name="w")
    t = g.create_node("onnx::Transpose", [w], {"perm": [1, 0]})
    r = g.create_node("onnx::Relu", [w])
    g.outputs = [t.output, r.output]
    FoldConstants(growth_allowance=0).call(g)
    assert [n.op for n in g] == ["onnx::Transpose", "onnx::Relu"]
    # an absolute cap
    g = Graph()
    a = g.add_constant(torch.randn(10, 10), name="a")
    g.outputs = [g.create_node("onnx::Neg", [a]).output]
    assert not FoldConstants(max_output_elements=50).call(g).modified
    assert FoldConstants(max_output_elements=100).call(g).modified


def test_shape_queries_fold_on_static_shapes():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (2, 3, 4)))
    s = g.create_node("onnx::Shape", [x], {"start": 1})
    n = g.create_node("onnx::Size", [x])
    d = g.create_node("aten::sym_size.int", [x], {"dim": -1})
    st = g.create_node("aten::_shape_as_tensor", [x])
    r = g.create_node("onnx::Reshape", [x, s.output])  # reshape to [3, 4]? rank mismatch is fine here
    g.outputs = [s.output, n.output, d.output, st.output]
    g.remove(r)
    run(g)
    assert len(g) == 0
    vals = [v.tensor for v in g.outputs]
    assert vals[0].tolist() == [3, 4] and vals[1].item() == 24 and vals[2].item() == 4
    assert vals[3].tolist() == [2, 3, 4]
    # symbolic dims do not fold
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, ("batch", 3)))
    s = g.create_node("onnx::Shape", [x])
    k = g.create_node("onnx::Shape", [x], {"start": 1})
    g.outputs = [s.output, k.output]
    run(g)
    assert [n.op for n in g] == ["onnx::Shape"]  # the static tail folded, the full shape did not


def test_impure_failing_and_multi_output():
    g = Graph()
    r = g.create_node("aten::rand", [], {"size": [3]})
    bad = g.create_node("onnx::Reshape", [g.add_constant(torch.ones(6)), g.add_constant(torch.tensor([4, -1]))])
    parts = g.create_node("onnx::Split", [g.add_constant(torch.arange(6.0)), g.add_constant(torch.tensor([2, 4]))],
                          num_outputs=2)
    g.outputs = [r.output, bad.output, *parts.outputs]
    run(g)
    assert [n.op for n in g] == ["aten::rand", "onnx::Reshape"]
    assert g.outputs[2].tensor.tolist() == [0.0, 1.0] and g.outputs[3].tensor.tolist() == [2.0, 3.0, 4.0, 5.0]


def test_aten_creation_ops_fold():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (5,)))
    a = g.create_node("aten::arange.start_step", [], {"start": 0, "end": 5})
    f = g.create_node("aten::full", [], {"size": [5], "fill_value": 2.0})
    m = g.create_node("aten::mul.Tensor", [a.output, f.output])
    y = g.create_node("aten::add.Tensor", [x, m.output])
    g.outputs = [y.output]
    feed = torch.randn(5)
    before = interpreter.run(g, feed)
    run(g)
    assert [n.op for n in g] == ["aten::add.Tensor"]
    torch.testing.assert_close(interpreter.run(g, feed), before, rtol=0, atol=0)


def test_declared_type_mismatch_is_not_folded():
    registry.register(registry.OpDef("test::wrong_dtype", impl=lambda x: x.double()), replace=True)
    g = Graph()
    n = g.create_node("test::wrong_dtype", [g.add_constant(torch.ones(2))])
    n.output.type = TensorType(torch.float32, (2,))
    g.outputs = [n.output]
    assert not FoldConstants().call(g).modified


def test_default_pipeline_folds_before_canonicalizing():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (2, 3)))
    z = g.create_node("aten::zeros", [], {"size": [3]})
    o = g.create_node("aten::add.Scalar", [z.output], {"other": 1.0})
    y = g.create_node("aten::mul.Tensor", [x, o.output])
    g.outputs = [y.output]
    feed = torch.randn(2, 3)
    before = interpreter.run(g, feed)
    PassManager(DEFAULT_PIPELINE).run(g)
    assert [n.op for n in g] == ["onnx::Mul"]
    torch.testing.assert_close(interpreter.run(g, feed), before, rtol=0, atol=0)


def test_fast_on_long_chains():
    g = Graph()
    v = g.add_input("x", TensorType(torch.float32, (8,)))
    c = g.add_constant(torch.tensor(0.5))
    for i in range(20000):
        v = g.create_node("onnx::Add" if i % 2 else "onnx::Relu", [v, c] if i % 2 else [v]).output
    g.outputs = [v]
    t = time.perf_counter()
    assert not FoldConstants().call(g).modified
    assert (time.perf_counter() - t) / len(g) < 10e-6
