"""torch.cond / torch.while_loop / scan / map through torch.export -> IR regions -> the IR
interpreter, the FX backend (higher-order ops: only the taken branch runs, loops iterate at run
time; torch.compile and torch.export of the result work) and the ONNX backend
(If/Loop subgraphs, run with onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch._higher_order_ops.map import map as torch_map
from torch._higher_order_ops.scan import scan
from torch.utils import _pytree as pytree

import torchmdf
from torchmdf.frontends.export import lower_module
from torchmdf.interpreter import run

# -- models -----------------------------------------------------------------------------------


class Cond(nn.Module):
    """Both branches read a parameter and the operands; two outputs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x, y):
        return torch.cond(x.sum() > 0, lambda x, y: (self.fc(x).sin() + y, x.cos()),
                          lambda x, y: (x.cos() - y, x + 1), (x, y))


class While(nn.Module):
    """Doubles x until its sum reaches ``limit``: a data-dependent trip count."""

    def forward(self, x, limit):
        def cond(i, x):
            return x.sum() < limit

        def body(i, x):
            return i + 1, x * 2

        return torch.while_loop(cond, body, (torch.zeros((), dtype=torch.int64), x))


class CondInLoop(nn.Module):
    """A cond nested in a while_loop body, alternating on the iteration number."""

    def forward(self, x, limit):
        def cond(i, x):
            return x.abs().sum() < limit

        def body(i, x):
            y = torch.cond(i % 2 == 0, lambda x: x * 2 + 0.5, lambda x: x * 3 - 0.25, (x,))
            return i + 1, y

        return torch.while_loop(cond, body, (torch.zeros((), dtype=torch.int64), x))


class Scan(nn.Module):
    def forward(self, init, xs):
        def step(carry, x):
            c = carry + x
            return c, c * 2

        return scan(step, init, xs)


class Map(nn.Module):
    def forward(self, xs, y):
        return torch_map(lambda x, y: x * y + 1, xs, y)


def _pos():
    return (torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.0, -1.0, 0.5]))


def _neg():
    return (torch.tensor([-0.5, -1.0, 2.0]), torch.tensor([1.0, -1.0, 0.5]))


def _small(limit):
    return (torch.tensor([0.1, 0.2, 0.05]), torch.tensor(limit))


CASES = {
    "cond": (Cond, [_pos(), _neg()]),
    "while": (While, [_small(1.0), _small(100.0), _small(0.01)]),
    "cond_in_loop": (CondInLoop, [_small(5.0), _small(1000.0)]),
    "scan": (Scan, [(torch.zeros(3), torch.randn(4, 3))]),
    "map": (Map, [(torch.randn(5, 3), torch.randn(3))]),
}


def _leaves(x):
    return [t for t in pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def _assert_same(got, want):
    got, want = _leaves(got), _leaves(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _model(name):
    torch.manual_seed(0)
    cls, inputs = CASES[name]
    return cls().eval(), inputs


# -- frontend and interpreter -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_export_lowers_to_regions_and_interpreter_matches(name):
    model, inputs = _model(name)
    g = lower_module(model, inputs[0])
    g.verify()
    ops = {n.op for n in g.walk() if n.regions}
    assert ops == {"cond": {"onnx::If"}, "while": {"torchmdf::While"}, "cond_in_loop": {"torchmdf::While", "onnx::If"},
                   "scan": {"onnx::Loop"}, "map": {"onnx::Loop"}}[name]
    assert not any(n.op == "aten::where.self" for n in g.walk())  # not both branches + where
    for region in g.graphs():  # region inputs are typed
        assert all(v.type.dtype is not None and v.type.shape is not None for v in region.inputs)
    for args in inputs:
        _assert_same(run(g, *args), model(*args))


def test_while_trip_count_depends_on_data():
    model, _ = _model("while")
    g = lower_module(model, _small(1.0))
    trips = [int(run(g, *_small(lim))[0]) for lim in (0.01, 1.0, 100.0)]
    assert trips == [0, 2, 9]


# -- FX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_fx_matches_original(name):
    model, inputs = _model(name)
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    for args in inputs:
        _assert_same(gm(*args), model(*args))


def test_fx_emits_one_cond_call_per_if():
    model, inputs = _model("cond")
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    calls = [n for n in gm.graph.nodes if n.target is torch.ops.higher_order.cond]
    assert len(calls) == 1
    assert "torch.ops.higher_order.cond" in gm.code and "sin" not in gm.code  # branches live in sub-modules
    assert not any(n.target is torch.where for n in gm.graph.nodes)


def test_fx_nested_cond_in_while_is_a_cond_inside_the_body():
    model, inputs = _model("cond_in_loop")
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    assert "torch.ops.higher_order.while_loop" in gm.code
    bodies = [m for name, m in gm.named_modules() if name.endswith("_body")]
    assert any("torch.ops.higher_order.cond" in m.code for m in bodies)


class SqrtCond(nn.Module):
    """The branch not taken is sqrt of a negative number: NaN there, and in its gradient."""

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda x: x.sqrt(), lambda x: (-x).sqrt(), (x,))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_fx_gradient_through_cond_ignores_the_branch_not_taken(sign):
    model = SqrtCond()
    gm = torchmdf.compile(model, "fx", example_inputs=(torch.ones(3),))
    x = (sign * torch.tensor([1.0, 4.0, 9.0])).requires_grad_()
    gm(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, sign * 0.5 / torch.tensor([1.0, 4.0, 9.0]).sqrt())


def test_fx_gradient_reaches_parameters_through_cond():
    model, inputs = _model("cond")
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    x, y = inputs[0]
    sum(o.sum() for o in gm(x, y)).backward()
    sum(o.sum() for o in model(x, y)).backward()
    torch.testing.assert_close(gm.get_parameter("fc.weight").grad, model.fc.weight.grad)


@pytest.mark.parametrize("name", list(CASES))
def test_fx_module_exports_with_torch_export(name):
    model, inputs = _model(name)
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    ep = torch.export.export(gm, inputs[0])
    for args in inputs:
        _assert_same(ep.module()(*args), model(*args))


@pytest.mark.parametrize("name", ["cond", "while"])
def test_fx_module_runs_under_torch_compile(name):
    model, inputs = _model(name)
    gm = torchmdf.compile(model, "fx", example_inputs=inputs[0])
    compiled = torch.compile(gm, backend="eager", fullgraph=True)
    for args in inputs:
        _assert_same(compiled(*args), model(*args))


# -- ONNX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_writes_subgraphs_and_onnxruntime_matches(name):
    import onnx
    import onnxruntime as ort

    model, inputs = _model(name)
    proto = torchmdf.compile(model, "onnx", example_inputs=inputs[0])
    onnx.checker.check_model(proto, full_check=True)
    kinds = {n.op_type for n in proto.graph.node}
    assert kinds & {"If", "Loop"}
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for args in inputs:
        got = sess.run(None, {k: a.numpy() for k, a in zip(names, args)})
        for a, b in zip(got, _leaves(model(*args))):
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- fusions for FX stay inside a region --------------------------------------------------------


def _silu_graphs():
    """``x * sigmoid(x)`` twice: once inside the then-branch, once with the sigmoid outside."""
    from torchmdf.ir import Graph, TensorType

    f3 = TensorType(torch.float32, (3,))
    g = Graph("silu_if")
    c = g.add_input("c", TensorType(torch.bool, ()))
    x = g.add_input("x", f3)
    sg = g.create_node("onnx::Sigmoid", [x], name="sg_out").output
    then, other = g.new_region("then_branch"), g.new_region("else_branch")
    node = g.create_node("onnx::If", [c], regions=[then, other], name="y")
    s_in = then.create_node("onnx::Sigmoid", [x], name="sg_in").output
    then.outputs = [then.create_node("onnx::Mul", [x, s_in], name="silu_in").output]
    other.outputs = [other.create_node("onnx::Mul", [x, sg], name="cross").output]
    for v in (sg, s_in, then.outputs[0], other.outputs[0], node.output):
        v.type = f3
    g.outputs = [node.output]
    g.verify()
    return g


def test_fuse_for_fx_fuses_inside_a_region_but_not_across():
    from torchmdf.passes.fuse_for_fx import SILU, fused_for_fx

    g = _silu_graphs()
    fused = fused_for_fx(g)
    fused.verify()
    then, other = next(n for n in fused if n.regions).regions
    assert [n.op for n in then] == [SILU]
    assert [n.op for n in other] == ["onnx::Mul"]  # its sigmoid is outside the region
    assert [n.op for n in fused] == ["onnx::Sigmoid", "onnx::If"]
    gm = torchmdf.emit(g, "fx")
    x = torch.randn(3)
    for c in (True, False):
        _assert_same(gm(torch.tensor(c), x), x * torch.sigmoid(x))


# -- ONNX Loop forms in the FX and ONNX backends --------------------------------------------------


@pytest.mark.parametrize("trips,with_cond,scans", [(3, False, False), (None, True, False), (5, True, False),
                                                   (4, False, True), (None, True, True), (6, True, True)])
def test_onnx_loop_forms_match_the_interpreter(trips, with_cond, scans):
    import onnxruntime as ort
    from test_regions import _loop_graph

    g = _loop_graph(trips, with_cond, scans)
    gm = torchmdf.emit(g, "fx")
    kind = "scan" if scans and not with_cond else "run_loop" if scans else "while_loop"
    assert kind in gm.code
    proto = torchmdf.emit(g, "onnx")
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for v0, limit in ((0.0, 3.5), (1.0, 10.0)):
        args = (torch.tensor(v0), torch.tensor(limit))
        want = run(g, *args)
        _assert_same(gm(*args), want)
        got = sess.run(None, {"v0": args[0].numpy(), "limit": args[1].numpy()})
        for a, b in zip(got, _leaves(want)):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-6)
