"""An op is one registry entry: a custom op registered once (impl, attributes, shape function,
FX lowering) is shape-inferred, folded, canonicalized, lowered to FX and run, and written to
MDF; the consumers read the entry and nothing else."""

from __future__ import annotations

import pytest
import torch

import torchmdf
from torchmdf.backends.fx import emit_fx
from torchmdf.backends.onnx import emit_onnx
from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, TensorType
from torchmdf.ops import registry
from torchmdf.ops.registry import Attr, OpDef
from torchmdf.passes import Canonicalize, FoldConstants, InferShapes
from torchmdf.passes.fuse_for_fx import LINEAR, SILU, FuseForFx, fused_for_fx

NAME = "testreg::affine"


def T(*shape, dtype=torch.float32) -> TensorType:
    return TensorType(dtype, tuple(shape))


def _affine(x, scale: float = 2.0):
    """x * scale + 1"""
    return x * scale + 1


def _affine_shape(types, attrs, node):
    return [types[0]]


def _affine_fx(b, n, a):
    return b.call(torch.add, (b.call(torch.mul, (a[0], n.attrs.get("scale", 2.0))), 1))


def _affine_canonical(node, rw):
    scale = rw.const(float(rw.arg("scale")), dtype=torch.float32)
    return [rw.op("onnx::Add", [rw.op("onnx::Mul", [rw.input(0), scale]), rw.const(1.0, dtype=torch.float32)])]


@pytest.fixture()
def affine():
    d = registry.register(OpDef(NAME, _affine, input_names=("x",), shape_fn=_affine_shape, fx_lower=_affine_fx,
                                canonicalize=_affine_canonical), replace=True)
    yield d
    registry.register(OpDef(NAME, _affine, input_names=("x",)), replace=True)  # no hooks left behind


def _graph(x_type=None, const=None) -> tuple[Graph, object]:
    g = Graph()
    x = g.add_constant(const, name="c") if const is not None else g.add_input("x", x_type)
    n = g.create_node(NAME, [x], {"scale": 3.0})
    g.outputs = [n.output]
    return g, n


def test_the_entry_holds_the_attribute_schema(affine):
    assert affine.attr_schema == (Attr("scale", "float", 2.0),)
    assert affine.attr_default("scale") == 2.0 and affine.attr_defaults == {"scale": 2.0}
    conv = registry.lookup("onnx::Conv")
    assert conv.attr_default("group") == 1 and "kernel_shape" in [a.name for a in conv.attr_schema]
    assert registry.lookup("aten::add.Tensor").attr_default("alpha") == 1  # from the ATen schema
    explicit = OpDef("testreg::explicit", _affine, attrs=[Attr("scale", "float", 5.0), Attr("mode", "str")])
    assert explicit.attr_defaults == {"scale": 5.0} and explicit.attr_schema[1].required


def test_custom_op_is_inferred_folded_canonicalized_lowered_and_written(affine):
    g, n = _graph(T(3, 4))
    InferShapes()(g)
    assert n.output.type == T(3, 4)

    x = torch.randn(3, 4)
    gm = emit_fx(g)
    assert "torch.mul(" in gm.code and "torch.add(" in gm.code  # the entry's lowering, not impl
    torch.testing.assert_close(gm(x), x * 3.0 + 1)

    m = torchmdf.emit(g, target="mdf")
    assert NAME in str(m.to_dict())

    with pytest.raises(UnsupportedOpError):  # a custom domain has no ONNX form, as before
        emit_onnx(g)

    Canonicalize()(g)
    assert [k.op for k in g] == ["onnx::Mul", "onnx::Add"]

    folded, _ = _graph(const=torch.ones(2))
    FoldConstants()(folded)
    assert len(folded) == 0
    torch.testing.assert_close(folded.outputs[0].tensor, torch.full((2,), 4.0))


def test_the_entry_is_the_only_thing_consulted(affine):
    g, n = _graph(T(3, 4))
    affine.shape_fn = lambda types, attrs: [TensorType(torch.float64, (7,))]  # two arguments: adapted
    InferShapes()(g)
    assert n.output.type == TensorType(torch.float64, (7,))

    g, n = _graph(T(3, 4))
    affine.fx_lower = lambda b, node, a: b.call(torch.sub, (a[0], 1))
    gm = emit_fx(g)
    assert "torch.sub(" in gm.code and "torch.mul(" not in gm.code

    affine.pure = False
    folded, _ = _graph(const=torch.ones(2))
    FoldConstants()(folded)
    assert len(folded) == 1

    affine.static_value = lambda node: torch.zeros(3, 4)  # known from the types alone
    g, _ = _graph(T(3, 4))
    FoldConstants()(g)
    assert len(g) == 0 and g.outputs[0].tensor.shape == (3, 4)
    assert registry.lookup("onnx::Shape").static_value is not None  # the built-in shape queries


def test_attach_reaches_entries_made_later():
    name = "aten::logaddexp2"

    def shape(types, attrs, node):
        return [types[0]]

    registry.attach(name, shape_fn=shape, type_promotion="int_to_float")
    d = registry.lookup(name)
    assert d.shape_fn is shape and d.type_promotion == "int_to_float"
    with pytest.raises(TypeError):
        registry.attach(name, no_such_field=1)


def test_decorators_attach_one_field():
    @registry.shape_function("testreg::later")
    def shape(types, attrs, node):
        return [types[0]]

    d = registry.define("testreg::later", lambda x: x, input_names=("x",), replace=True)
    assert d.shape_fn is shape

    def builtin(types, attrs, node):  # a built-in table's default never overrides what was set
        return None

    registry.attach("testreg::later", keep_existing=True, shape_fn=builtin)
    assert d.shape_fn is shape
    registry.attach("onnx::Relu", keep_existing=True, shape_fn=builtin)
    assert registry.lookup("onnx::Relu").shape_fn is not builtin


def test_onnx_backend_reads_the_opset_range():
    g = Graph()
    x = g.add_input("x", T(2, 3))
    g.outputs = [g.create_node("onnx::Gelu", [x]).output]
    assert registry.lookup("onnx::Gelu").min_opset == 20
    assert emit_onnx(g).opset_import[0].version == 20

    relu = registry.lookup("onnx::Relu")
    g = Graph()
    x = g.add_input("x", T(2, 3))
    g.outputs = [g.create_node("onnx::Relu", [x]).output]
    assert emit_onnx(g).opset_import[0].version == 18
    try:
        relu.min_opset = 19
        assert emit_onnx(g, check=False).opset_import[0].version == 19
        with pytest.raises(ConversionError, match="opset 18"):
            emit_onnx(g, opset=18, check=False)
    finally:
        relu.min_opset = None


def test_fusions_are_a_pass_on_a_copy():
    g = Graph()
    x = g.add_input("x", T(2, 5, 4))
    w = g.add_parameter("w", torch.randn(3, 4))
    b = g.add_parameter("b", torch.randn(3))
    wt = g.create_node("onnx::Transpose", [w], {"perm": [1, 0]})
    wt.output.type = T(4, 3)
    mm = g.create_node("onnx::MatMul", [x, wt.output])
    mm.output.type = T(2, 5, 3)
    add = g.create_node("onnx::Add", [mm.output, b])
    add.output.type = T(2, 5, 3)
    sig = g.create_node("onnx::Sigmoid", [add.output])
    sig.output.type = T(2, 5, 3)
    mul = g.create_node("onnx::Mul", [add.output, sig.output])
    mul.output.type = T(2, 5, 3)
    g.outputs = [mul.output]

    fused = fused_for_fx(g)
    assert fused is not g and [n.op for n in g] == ["onnx::Transpose", "onnx::MatMul", "onnx::Add",
                                                     "onnx::Sigmoid", "onnx::Mul"]
    assert [n.op for n in fused] == [LINEAR, SILU]
    assert registry.lookup(LINEAR).fx_lower is not None

    gm = emit_fx(g)
    assert "linear(" in gm.code and "silu(" in gm.code and "matmul" not in gm.code
    xv = torch.randn(2, 5, 4)
    torch.testing.assert_close(gm(xv), torch.nn.functional.silu(xv @ w.tensor.T + b.tensor))

    assert not FuseForFx()(fused).modified  # nothing left to fuse


def test_builtin_entries_are_complete_whoever_looks_first():
    """A fresh interpreter that imports only torchmdf.ops gets entries with their shape function
    and FX lowering (attached by the modules that hold them, loaded on the first lookup)."""
    import subprocess
    import sys

    code = ("import torchmdf.ops as o\n"
            "for n in ('onnx::Conv', 'onnx::Gemm', 'onnx::Reshape', 'onnx::Softmax'):\n"
            "    d = o.lookup(n)\n"
            "    assert d.shape_fn is not None and d.fx_lower is not None, n\n"
            "assert o.lookup('onnx::Relu').shape_fn is not None\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
