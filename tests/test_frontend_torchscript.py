"""The TorchScript frontend: every zoo model through torch.jit.script (where it scripts) and
torch.jit.trace, with provenance, state, in-place ops, control flow and unsupported
constructs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils import _pytree as pytree

import torchmdf
from torchmdf.frontends import lower_pytorch
from torchmdf.frontends.torchscript import lower_script_module, lower_scripted, lower_traced
from torchmdf.interpreter import run, run_graph
from zoo import ZOO, get

RTOL, ATOL = 1e-4, 1e-5
# transformers models do not script (their configs' source is not scriptable): traced only
SCRIPTABLE = [e for e in ZOO if "transformers" not in e.tags]


def _reference(entry, inputs=None):
    with torch.no_grad():
        return entry.make_model()(*(inputs if inputs is not None else entry.make_inputs()))


def _assert_close(got, want):
    want_leaves = pytree.tree_leaves(want)
    got_leaves = got if isinstance(got, list) else [got]
    assert len(got_leaves) == len(want_leaves)
    for a, b in zip(got_leaves, want_leaves):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


def _check(entry, g):
    g.verify()
    _assert_close(run(g, *entry.make_inputs()), _reference(entry))
    for n in g:
        assert n.provenance.origin == "torchscript", n
        assert isinstance(n.provenance.module_path, str), n
    assert all(v.type.dtype is not None and v.type.is_static for n in g for v in n.outputs)
    names = set(g.parameters) | {sv.name for sv in g.state}
    assert set(entry.make_model().state_dict()) <= names
    spec = pytree.treespec_loads(g.signature.out_spec)
    assert spec.num_leaves == len(g.outputs) - len(g.signature.input_mutations)
    assert pytree.treespec_loads(g.signature.in_spec).num_leaves == len(g.inputs)


@pytest.mark.parametrize("entry", SCRIPTABLE, ids=lambda e: e.name)
def test_zoo_scripted(entry):
    g = lower_script_module(torch.jit.script(entry.make_model()), entry.make_inputs())
    _check(entry, g)


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_zoo_traced(entry):
    g = lower_traced(entry.make_model(), entry.make_inputs())
    _check(entry, g)


def test_transformers_do_not_script_and_say_so():
    entry = get("bert")
    with pytest.raises(torchmdf.ConversionError) as info:
        lower_scripted(entry.make_model(), entry.make_inputs())
    assert "trace" in info.value.hint


def test_module_paths_and_sources():
    entry = get("resnet18")
    for g in (lower_scripted(entry.make_model(), entry.make_inputs()),
              lower_traced(entry.make_model(), entry.make_inputs())):
        convs = [n for n in g if n.op in ("aten::conv2d", "aten::_convolution")]
        assert len(convs) == 20
        paths = {n.provenance.module_path for n in convs}
        assert {"conv1", "layer1.0.conv1", "layer2.0.downsample.0", "layer4.1.conv2"} <= paths
        assert all(n.provenance.source for n in convs)
        assert g.parameters["layer1.0.bn1.running_mean"].role == "buffer"
        assert g.parameters["fc.weight"].role == "parameter"


def test_scripted_static_control_flow_is_folded():
    """BatchNorm's `if self.training`, its input-rank checks and F.relu's `inplace` branch are
    decided at conversion time: the graph has tensor ops only."""
    entry = get("depthwise")
    g = lower_scripted(entry.make_model(), entry.make_inputs())
    assert sorted({n.op for n in g}) == ["aten::batch_norm", "aten::conv2d", "aten::relu6"]


def test_scripted_lstm_is_decomposed():
    """aten::lstm takes two tensor lists, which the IR convention cannot spell."""
    entry = get("lstm")
    g = lower_scripted(entry.make_model(), entry.make_inputs())
    assert not any(n.op.startswith("aten::lstm") for n in g)
    assert {"rnn.weight_ih_l0", "rnn.bias_hh_l1"} <= set(g.parameters)


def test_inplace_writes_through_views():
    class M(nn.Module):
        def forward(self, x):
            y = x * 1.0
            y[:, 0] = 5.0
            y[1:].mul_(2)
            y.t()[0].add_(1)  # column 0 again, through a transpose
            return y.relu_()

    x = torch.randn(4, 3)
    want = M()(x.clone())
    for g in (lower_scripted(M(), (x,)), lower_traced(M(), (x,))):
        g.verify()
        torch.testing.assert_close(run(g, x), want)
        assert not any(n.op.endswith("_") for n in g)


def test_mutated_buffers_become_state():
    entry = get("running_stats")
    for g in (lower_scripted(entry.make_model(), entry.make_inputs()),
              lower_traced(entry.make_model(), entry.make_inputs())):
        assert {sv.name for sv in g.state} == {"mean", "count"}
        model, (x,) = entry.make_model(), entry.make_inputs()
        state = None
        for step in range(3):
            with torch.no_grad():
                want = model(x + step)
            outs, state = run_graph(g, [x + step], state)
            _assert_close(outs, want)
        assert int(state["count"]) == 3


def test_training_batchnorm_running_stats_are_state():
    """aten::batch_norm in training mode writes its running statistics without saying so in its
    schema; the frontend makes them state."""
    entry = get("depthwise")
    g = lower_scripted(entry.make_model().train(), entry.make_inputs())
    assert {sv.name for sv in g.state} == {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    model = entry.make_model().train()
    outs, state = run_graph(g, entry.make_inputs())
    _assert_close(outs, model(*entry.make_inputs()))
    torch.testing.assert_close(state["bn.running_mean"], model.bn.running_mean)


class DataDependentIf(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if bool(x.sum() > 0):
            y = self.fc(x)
        else:
            y = x - 1.0
        if x.max() > 10:
            raise ValueError("too large")  # an assert: dropped
        return y


def test_data_dependent_if_becomes_an_if_region():
    torch.manual_seed(0)
    model = DataDependentIf().eval()
    g = lower_scripted(model, (torch.ones(2, 3),))
    g.verify()
    assert [n.op for n in g if n.regions] == ["onnx::If"]  # only the taken branch runs
    for x in (torch.ones(2, 3), -torch.ones(2, 3)):
        torch.testing.assert_close(run(g, x), model(x))


@torch.library.custom_op("torchmdf_ts_test::double", mutates_args=())
def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


class Unsupported(nn.Module):
    def forward(self, x):
        y = torch.ops.torchmdf_ts_test.double(x)
        while bool(y.sum() > 1):  # a loop whose trip count depends on the data
            y = y / 2
        return y


def test_unsupported_reported_together():
    with pytest.raises(torchmdf.UnsupportedOpError) as info:
        lower_scripted(Unsupported(), (torch.ones(3),))
    ops = info.value.ops
    # the data-dependent while loop is an onnx::Loop now; the unknown op is reported, located
    assert [op for op, _ in ops] == ["torchmdf_ts_test::double"]
    assert all(loc and "test_frontend_torchscript.py:" in loc for _, loc in ops)


def test_dispatcher():
    entry = get("cnn")
    model, inputs = entry.make_model(), entry.make_inputs()
    for g in (lower_pytorch(model, inputs, method="trace"), lower_pytorch(model, inputs, method="script"),
              lower_pytorch(torch.jit.script(model), inputs)):
        g.verify()
        assert g.name == "SmallCNN"
        _assert_close(run(g, *inputs), _reference(entry))
    with pytest.raises(torchmdf.ConversionError):
        lower_pytorch(model, inputs, method="bogus")


def test_script_without_example_inputs_uses_torchscript_types():
    entry = get("mlp")
    traced = torch.jit.trace(entry.make_model(), entry.make_inputs())
    g = lower_script_module(traced)  # a traced graph carries complete tensor types
    g.verify()
    assert g.inputs[0].type.shape == (4, 16)
    _assert_close(run(g, *entry.make_inputs()), _reference(entry))


class _DtypeArgs(torch.nn.Module):
    def forward(self, x):
        return x.to(torch.float64).sum(dtype=torch.float32)


def test_scalar_type_codes_become_dtypes():
    """TorchScript passes dtypes as int codes; the schema's real type (ScalarType) makes them
    torch dtypes in the IR, so files and passes see ``torch.float64``, not ``7``."""
    g = torchmdf.lower(torch.jit.script(_DtypeArgs()), example_inputs=(torch.ones(3),))
    dtypes = [n.attrs["dtype"] for n in g.nodes if "dtype" in n.attrs]
    assert dtypes == [torch.float64, torch.float32]


# -- dynamic dims (dynamic_shapes / dynamic_batch) ---------------------------------------------


@pytest.mark.parametrize("method", ["trace", "script"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "gru", "lstm", "running_stats", "tv_resnet18"])
def test_dynamic_batch(method, name):
    """The graph keeps dim 0 symbolic ("batch") and runs other batch sizes, equal to the model."""
    e = get(name)
    model, inputs = e.make_model(), e.make_inputs()
    g = torchmdf.lower(model, inputs, method=method, dynamic_batch=True)
    assert all(v.type.shape[0] == "batch" for v in g.inputs)
    for b in (1, 5):
        gm = torchmdf.compile(g, target="fx")  # a fresh one: running_stats updates its buffers
        new = tuple(torch.cat([x[:1]] * b) for x in inputs)
        _assert_close(pytree.tree_leaves(gm(*new)), _reference(e, new))


def test_symbolic_sizes_are_computed_in_the_graph():
    """Sizes read with x.size() in a trace become IR arithmetic where an op needs them: a
    reshape with two symbolic entries, an arange over a symbolic length, new_zeros of a
    symbolic shape."""

    class M(nn.Module):
        def forward(self, x):
            b, s, d = x.shape
            y = x.reshape(s, b * d) + torch.arange(b * d)
            z = x.new_zeros(b, s)
            z[:, 1:] = x[:, :-1, 0]
            return y, z

    x = torch.randn(2, 5, 3)
    g = torchmdf.lower(M(), (x,), method="trace", dynamic_shapes=({0: "b", 1: "s"},))
    assert g.inputs[0].type.shape == ("b", "s", 3)
    ops = {n.op for n in g.walk()}
    assert {"aten::_reshape_from_tensor", "onnx::Range", "onnx::ConstantOfShape"} <= ops
    gm = torchmdf.compile(g, target="fx")
    for shape in [(2, 5, 3), (4, 3, 3), (3, 8, 3)]:
        x = torch.randn(*shape)
        _assert_close(list(gm(x)), M()(x))


def test_a_model_that_branches_on_a_dynamic_dim_is_refused():
    class Branch(nn.Module):
        def forward(self, x):
            return x * 2 if x.shape[0] > 4 else x

    sm = torch.jit.script(Branch())
    with pytest.raises(torchmdf.TorchMDFError, match=r"needs batch <= 4|needs batch < 5") as err:
        torchmdf.lower(sm, (torch.randn(3, 2),), dynamic_batch=True)
    assert "Dim(name, min=..., max=...)" in err.value.hint
    # a range that decides the branch: converted, for that range
    from torch.export import Dim

    g = torchmdf.lower(sm, (torch.randn(6, 2),), dynamic_shapes=({0: Dim("batch", min=5, max=100)},))
    gm = torchmdf.compile(g, target="fx")
    x = torch.randn(9, 2)
    torch.testing.assert_close(gm(x), x * 2)


def test_dynamic_dims_bad_specs():
    e = get("mlp")
    model = e.make_model()
    x = torch.randn(4, 16)
    with pytest.raises(torchmdf.TorchMDFError, match="no dim 2 in shape"):
        torchmdf.lower(model, (x,), method="trace", dynamic_shapes=({2: "b"},))
    with pytest.raises(torchmdf.TorchMDFError, match="has size 1 in the example"):
        torchmdf.lower(model, (torch.randn(1, 16),), method="trace", dynamic_shapes=({0: "b"},))

    class Sums(nn.Module):
        def forward(self, a, b):
            return a.sum() + b.sum()

    with pytest.raises(torchmdf.TorchMDFError, match="'n' is 3 in one example input and 4 in input"):
        torchmdf.lower(Sums(), (torch.ones(3, 2), torch.ones(4, 2)), method="trace",
                       dynamic_shapes=({0: "n"}, {0: "n"}))
    from torch.export import Dim

    with pytest.raises(torchmdf.TorchMDFError, match=r"outside its range \[5, 9\]"):
        torchmdf.lower(model, (x,), method="trace", dynamic_shapes=({0: Dim("b", min=5, max=9)},))


def test_composite_ops_become_core_aten_a_file_may_name(tmp_path):
    """A trace records composite ops as called (``torch.diff``); they are decomposed (with
    their dynamic dims) into the core ATen ops an MDF file may name."""

    class Diff(nn.Module):
        def forward(self, x):
            return torch.diff(x, dim=-1, prepend=x[:, :1]) * 2

    x = torch.randn(3, 6)
    g = torchmdf.lower(Diff(), (x,), method="trace", dynamic_shapes=({0: "b", 1: "n"},))
    assert "aten::diff" not in {n.op for n in g.walk()}
    path = tmp_path / "diff.json"
    torchmdf.mdf.save(torchmdf.compile(g, target="mdf"), path)
    gm = torchmdf.compile(torchmdf.mdf.load(path), target="fx")
    for shape in [(3, 6), (5, 2), (2, 9)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(gm(x), Diff()(x))
