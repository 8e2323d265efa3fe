"""The FX backend behaves like a native module: torch -> IR (default passes) -> GraphModule
gives the original's outputs and gradients on the whole zoo, and the module trains, moves
between devices and dtypes, keeps its state like the original, and works with
``torch.compile`` and ``torch.export``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim
from torch.utils import _pytree as pytree

import torchmdf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
_CACHE: dict[str, tuple[nn.Module, tuple, torch.fx.GraphModule]] = {}


def converted(name: str):
    """(model, inputs, GraphModule) for a zoo entry, compiled once per session (each test
    gets fresh copies of model and module state through ``fresh``)."""
    if name not in _CACHE:
        e = zoo.get(name)
        model, inputs = e.make_model(), e.make_inputs()
        _CACHE[name] = (model, inputs, torchmdf.compile(model, target="fx", example_inputs=inputs))
    return _CACHE[name]


def fresh(name: str):
    import copy

    model, inputs, gm = converted(name)
    return copy.deepcopy(model), tuple(t.clone() for t in inputs), copy.deepcopy(gm)


def leaves(out):
    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def assert_same(a, b, rtol=RTOL, atol=ATOL):
    assert pytree.tree_structure(a) == pytree.tree_structure(b)
    for x, y in zip(pytree.tree_leaves(a), pytree.tree_leaves(b)):
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape
            torch.testing.assert_close(y, x, rtol=rtol, atol=atol)
        else:
            assert x == y


# -- outputs and gradients on the zoo ---------------------------------------------------------


@pytest.mark.parametrize("name", [e.name for e in zoo.ZOO])
def test_zoo_outputs_and_gradients(name):
    model, inputs, gm = fresh(name)
    xs_a = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
    xs_b = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out_a, out_b = model(*xs_a), gm(*xs_b)
    assert_same(out_a, out_b)
    # the same scalar of the outputs, backpropagated through both
    g = torch.Generator().manual_seed(3)
    fl_a = [t for t in leaves(out_a) if t.is_floating_point()]
    fl_b = [t for t in leaves(out_b) if t.is_floating_point()]
    weights = [torch.randn(t.shape, generator=g) for t in fl_a]
    sum((w * t).sum() for w, t in zip(weights, fl_a)).backward()
    sum((w * t).sum() for w, t in zip(weights, fl_b)).backward()
    for a, b in zip(xs_a, xs_b):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=RTOL, atol=ATOL)
    ref = dict(model.named_parameters(remove_duplicate=False))  # tied weights: every name
    got = dict(gm.named_parameters())
    assert set(got) <= set(ref), set(got) - set(ref)
    for k, p in got.items():
        if ref[k].grad is None:
            assert p.grad is None or not p.grad.any(), k
        else:
            torch.testing.assert_close(p.grad, ref[k].grad, rtol=RTOL, atol=ATOL, msg=k)
    # every trained parameter of the original is one of the module's (a tied one under one name)
    assert {id(ref[k]) for k in got} == {id(p) for p in model.parameters() if p.grad is not None}


# -- readable code, one call per op ---------------------------------------------------------


def test_generated_code_is_readable():
    mlp = converted("mlp")[2].code
    assert mlp.count("linear(") == 3 and "torch.relu(" in mlp and "torch.sigmoid(" in mlp
    assert "self.fc1.weight" in mlp
    cnn = converted("cnn")[2].code
    assert cnn.count("torch.conv2d(") == 2 and "max_pool2d(" in cnn and "linear(" in cnn
    resnet = converted("resnet18")[2].code
    assert resnet.count("torch.batch_norm(") == 20 and resnet.count("torch.conv2d(") == 20
    for code in (mlp, cnn, resnet):
        assert "torchmdf" not in code  # no registry wrappers on these models' hot paths
        assert "tree_flatten" not in code  # flat inputs and outputs: no per-call pytree work
    bert = converted("bert")[2].code
    # nn.Linear stays linear; eager attention (matmul, scale, mask, softmax, matmul) is one
    # scaled_dot_product_attention call per layer
    assert bert.count("linear(") == 13 and "addmm" not in bert and "torch.matmul(" not in bert
    assert bert.count("scaled_dot_product_attention(") == 2


def test_weights_are_fetched_from_the_module_dicts_and_stay_current():
    """The generated code reads parameters and buffers from the modules' ``_parameters`` /
    ``_buffers`` dicts (not through ``Module.__getattr__``, microseconds per level); a
    parametrization added after conversion, a reassigned buffer, ``functional_call``, a deepcopy
    and a pickled copy still see the tensors the module holds now."""
    import copy
    import io

    from torch.nn.utils import parametrize

    model, (x,), gm = fresh("buffer_inplace")
    assert "self._modules['fc']._parameters.get('weight')" in gm.code
    assert "self._buffers.get('offset')" in gm.code
    assert "_modules" not in gm.print_readable(print_output=False)  # the readable form stays plain
    assert_same(model(x), copy.deepcopy(gm)(x))
    buf = io.BytesIO()
    torch.save(gm, buf)
    buf.seek(0)
    assert_same(model(x), torch.load(buf, weights_only=False)(x))
    doubled = {k: 2 * v for k, v in gm.named_parameters()}
    assert_same(torch.func.functional_call(model, doubled, (x,)), torch.func.functional_call(gm, doubled, (x,)))

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    for m in (model, gm):
        parametrize.register_parametrization(m.fc, "weight", Double())
        m.offset = torch.ones(6)
    assert_same(model(x), gm(x))


def test_numbers_next_to_tensors_are_0d_buffers_with_the_same_results():
    """Python numbers in elementwise ops (add, sub, mul, comparisons, where) become 0-d constant
    buffers of the tensor operand's dtype (a number costs a wrapped tensor and a cast per
    call): outputs, dtypes and gradients stay bitwise those of the original."""

    class Numbers(nn.Module):
        def forward(self, x, i):
            y = x * 0.1 + 0.7 - 3
            return torch.where(x > 0.25, 1.5, y), 2.5 - x, (i + 3) * 2 - 1, i > 2, x <= 0.3, 7 - i

    g = torch.Generator().manual_seed(0)
    x, i = torch.randn(16, 9, generator=g), torch.randint(-5, 5, (7,), generator=g, dtype=torch.int32)
    model = Numbers()
    gm = torchmdf.compile(model, target="fx", example_inputs=(x, i))
    assert "torch.mul(x, _constants_num_0_10000000149011612)" in gm.code
    assert "torch.add(i, _constants_num_3)" in gm.code and "torch.sub(_constants_num_7, i)" in gm.code
    assert gm._constants.num_3.dtype == torch.int32 and gm._constants.num_1_5.dtype == torch.float32
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, got = model(xa, i), gm(xb, i)
    for r, o in zip(ref, got):
        assert r.dtype == o.dtype and torch.equal(r, o)
    (ref[0] * ref[1]).sum().backward()
    (got[0] * got[1]).sum().backward()
    assert torch.equal(xa.grad, xb.grad)


# -- state_dict ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18", "bert", "buffer_inplace"])
def test_state_dict_names_match_the_original(name):
    model, _, gm = fresh(name)
    ref, got = model.state_dict(), gm.state_dict()
    assert list(dict(gm.named_parameters())) == [k for k, _ in model.named_parameters()]
    assert set(got) <= set(ref)
    # eval-mode BatchNorm never reads num_batches_tracked: dead-code elimination drops it
    assert all(k.endswith("num_batches_tracked") for k in set(ref) - set(got))
    for k, v in got.items():
        assert torch.equal(v, ref[k]), k
    # loads the original's weights
    missing, unexpected = gm.load_state_dict(ref, strict=False)
    assert not missing


# -- state: buffers updated in place like the original ----------------------------------------


def test_stateful_model_updates_its_buffers_like_the_original():
    model, _, gm = fresh("running_stats")
    model.train()
    gm.train()
    g = torch.Generator().manual_seed(5)
    for _ in range(4):
        x = torch.randn(5, 4, generator=g)
        assert_same(model(x), gm(x))
        assert set(gm.state_dict()) == set(model.state_dict())
        for k, v in model.state_dict().items():
            torch.testing.assert_close(gm.state_dict()[k], v, rtol=RTOL, atol=ATOL)
    assert int(gm.count) == 4 and gm.count.dtype == torch.long
    assert ".copy_(" in gm.code


def test_inplace_ops_on_intermediates_over_several_calls():
    model, _, gm = fresh("buffer_inplace")
    g = torch.Generator().manual_seed(6)
    for _ in range(3):
        x = torch.randn(3, 6, generator=g)
        assert_same(model(x), gm(x))
    torch.testing.assert_close(gm.offset, model.offset)


def test_batchnorm_in_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    x = torch.randn(2, 3, 8, 8)
    gm = torchmdf.compile(model, target="fx", example_inputs=(x,))
    assert list(gm.state_dict()) == list(model.state_dict())
    g = torch.Generator().manual_seed(7)
    for _ in range(3):
        xi = torch.randn(2, 3, 8, 8, generator=g)
        a, b = model(xi), gm(xi)
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL)
        a.square().sum().backward()
        b.square().sum().backward()  # the running statistics' update must not break backward
        for k, v in model.state_dict().items():
            torch.testing.assert_close(gm.state_dict()[k], v, rtol=RTOL, atol=ATOL, msg=k)
    for k, p in model.named_parameters():
        torch.testing.assert_close(gm.get_parameter(k).grad, p.grad, rtol=RTOL, atol=ATOL)
    assert int(gm.get_buffer("1.num_batches_tracked")) == 3


# -- a native module: dtype, device, training ----------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_double(name):
    model, inputs, gm = fresh(name)
    gm.double()
    assert all(p.dtype == torch.float64 for p in gm.parameters())
    x = tuple(t.double() for t in inputs)
    out = gm(*x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, model.double()(*x))


def test_factory_ops_follow_the_input_device():
    """Ops that create tensors (arange, full, shape tensors) take the inputs' device: the
    module runs on the meta device (no data) without mixing in CPU tensors."""
    e = zoo.get("bert")
    model, inputs = e.make_model(), e.make_inputs()
    batch = Dim("batch", min=1, max=64)
    gm = torchmdf.compile(model, target="fx", example_inputs=inputs, dynamic_shapes=({0: batch}, {0: batch}))
    assert "device = " in gm.code
    gm.to("meta")
    out = gm(*(t.to("meta") for t in inputs))
    assert [o.device.type for o in out] == ["meta", "meta"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mlp", "cnn", "bert", "running_stats"])
def test_cuda(name):
    model, inputs, gm = fresh(name)
    model.cuda()
    gm.cuda()
    x = tuple(t.cuda() for t in inputs)
    with torch.no_grad():
        assert_same(model(*x), gm(*x), rtol=1e-3, atol=1e-4)
    assert all(t.device.type == "cuda" for t in leaves(gm(*x)))


def test_training_a_converted_mlp_reduces_its_loss():
    """SGD on the converted module follows the original's trajectory step for step (on
    batches of another size than the example's: converted with a dynamic batch)."""
    e = zoo.get("mlp")
    model = e.make_model()
    gm = torchmdf.compile(model, target="fx", example_inputs=e.make_inputs(), dynamic_batch=True)
    gm.train()
    g = torch.Generator().manual_seed(8)
    x = torch.randn(64, 16, generator=g)
    y = (torch.rand(64, 8, generator=g) > 0.5).float()
    opts = [torch.optim.SGD(m.parameters(), lr=2.0) for m in (model, gm)]
    losses: list[list[float]] = [[], []]
    for _ in range(40):
        for m, opt, log in zip((model, gm), opts, losses):
            opt.zero_grad()
            loss = F.binary_cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            log.append(loss.item())
    assert losses[1][-1] < 0.8 * losses[1][0]
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gm.fc1.weight, model.fc1.weight, rtol=1e-4, atol=1e-5)


# -- dynamic batch ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,batches", [("mlp", (1, 9)), ("cnn", (1, 5)), ("bert", (1, 3))])
def test_dynamic_batch(name, batches):
    e = zoo.get(name)
    model, inputs = e.make_model(), e.make_inputs()
    batch = Dim("batch", min=1, max=64)
    gm = torchmdf.compile(model, target="fx", example_inputs=inputs,
                          dynamic_shapes=tuple({0: batch} for _ in inputs))
    # shape arithmetic is resolved while building: sizes, not tensors, reach reshape/expand
    assert "torchmdf" not in gm.code.replace("torchmdf_ops_onnx_ops_gather_elements", "")
    g = torch.Generator().manual_seed(9)
    for n in batches:
        x = tuple(t[torch.randint(0, t.shape[0], (n,), generator=g)] for t in inputs)
        with torch.no_grad():
            assert_same(model(*x), gm(*x))


# -- torch.compile and torch.export --------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn", "bert", "running_stats"])
def test_torch_compile_aot_eager(name):
    model, inputs, gm = fresh(name)
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend="aot_eager", fullgraph=True)
    assert_same(model(*inputs), compiled(*inputs))
    if name == "running_stats":  # the buffer updates happen in the compiled module too
        assert int(gm.count) == 1


@pytest.mark.slow
def test_torch_compile_inductor_mlp():
    model, inputs, gm = fresh("mlp")
    torch._dynamo.reset()
    compiled = torch.compile(gm, fullgraph=True)
    with torch.no_grad():
        assert_same(model(*inputs), compiled(*inputs))


@pytest.mark.parametrize("name", ["mlp", "resnet18", "bert", "running_stats"])
def test_torch_export(name):
    model, inputs, gm = fresh(name)
    ep = torch.export.export(gm, inputs).run_decompositions()
    if name == "running_stats":
        assert set(ep.graph_signature.buffers_to_mutate.values()) == {"mean", "count"}
        ref = model(*inputs)
        assert_same(ref, ep.module()(*inputs))
    else:
        assert_same(model(*inputs), ep.module()(*inputs))


def test_torch_export_dynamic_batch():
    e = zoo.get("bert")
    model, inputs = e.make_model(), e.make_inputs()
    batch = Dim("batch", min=1, max=64)
    ds = ({0: batch}, {0: batch})
    gm = torchmdf.compile(model, target="fx", example_inputs=inputs, dynamic_shapes=ds)
    ep = torch.export.export(gm, inputs, dynamic_shapes=ds)
    x = tuple(torch.cat([t, t[:1]]) for t in inputs)
    with torch.no_grad():
        assert_same(model(*x), ep.module()(*x))


# -- calling convention: the original's structures ------------------------------------------------


class Structured(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(3, 3)

    def forward(self, x, pair, scale=2.0, *, extra=None):
        y = self.l(x) * scale + pair[0] - pair[1]
        out = {"y": y, "parts": (y.relu(), None, 3)}
        if extra is not None:
            out["extra"] = extra * 2
        return out


def test_structured_inputs_and_outputs():
    torch.manual_seed(0)
    model = Structured().eval()
    x, p = torch.randn(2, 3), (torch.randn(2, 3), torch.randn(3))
    e = torch.randn(2)
    gm = torchmdf.compile(torch.export.export(model, (x, p), {"extra": e}), target="fx")
    assert_same(model(x, p, extra=e), gm(x, p, extra=e))


def test_constant_inputs_and_outputs():
    class M(nn.Module):
        def forward(self, x, flag=True):
            return (x + 1 if flag else x - 1), None, 7

    x = torch.randn(4)
    gm = torchmdf.compile(M(), target="fx", example_inputs=(x, True))
    out = gm(x)  # the constant leaf has the exported value as its default
    assert_same(out, gm(x, True))
    assert out[1:] == (None, 7)
    torch.testing.assert_close(out[0], x + 1)


def test_mutated_inputs_are_updated_like_the_original():
    class M(nn.Module):
        def forward(self, x, acc):
            acc.add_(x)
            return x * 2

    x, acc = torch.randn(3), torch.zeros(3)
    gm = torchmdf.compile(M(), target="fx", example_inputs=(x, acc.clone()))
    acc2 = torch.ones(3)
    out = gm(x, acc2)
    torch.testing.assert_close(out, x * 2)
    torch.testing.assert_close(acc2, 1 + x)


def test_ops_without_a_rule_fall_back_to_the_registry():
    """An ONNX op the backend has no direct lowering for still runs (registry impl)."""
    from torchmdf.ir import Graph, TensorType

    g = Graph("prelu")
    x = g.add_input("x", TensorType(torch.float32, (2, 3)))
    slope = g.add_parameter("slope", torch.tensor([0.1, 0.2, 0.3]))
    n = g.create_node("onnx::PRelu", [x, slope])
    n.output.type = TensorType(torch.float32, (2, 3))
    g.outputs = [n.output]
    gm = torchmdf.emit(g, target="fx")
    t = torch.randn(2, 3)
    torch.testing.assert_close(gm(t), torch.where(t < 0, t * slope.tensor, t))


def test_non_persistent_buffers_stay_out_of_the_state_dict():
    """A buffer the IR marks non-persistent (``Value.meta["persistent"] = False``) is registered
    as one, like the original's."""
    from torchmdf.ir import Graph, TensorType

    g = Graph("m")
    x = g.add_input("x", TensorType(torch.float32, (3,)))
    kept = g.add_parameter("block.offset", torch.ones(3), role="buffer")
    scratch = g.add_parameter("block.scale", torch.full((3,), 2.0), role="buffer")
    scratch.meta["persistent"] = False
    add = g.create_node("onnx::Add", [x, kept])
    mul = g.create_node("onnx::Mul", [add.output, scratch])
    for n in (add, mul):
        n.output.type = TensorType(torch.float32, (3,))
    g.outputs = [mul.output]
    gm = torchmdf.emit(g, target="fx")
    assert list(gm.state_dict()) == ["block.offset"]
    assert [k for k, _ in gm.named_buffers()] == ["block.offset", "block.scale"]
    torch.testing.assert_close(gm(torch.zeros(3)), torch.full((3,), 2.0))
