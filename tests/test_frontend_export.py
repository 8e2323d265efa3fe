"""The torch.export frontend: every zoo model lowers, verifies and computes what the model
computes; provenance, names, calling convention, dynamic shapes, state, control flow and
unsupported constructs."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.export import Dim
from torch.utils import _pytree as pytree

import torchmdf
from torchmdf.frontends import lower_pytorch
from torchmdf.frontends.export import lower_exported_program, lower_module
from torchmdf.interpreter import run, run_graph
from torchmdf.ir import InputMutation
from zoo import ZOO, get

RTOL, ATOL = 1e-4, 1e-5
REPO = Path(__file__).resolve().parents[1]


def _reference(entry, inputs=None):
    model = entry.make_model()
    with torch.no_grad():
        out = model(*(inputs if inputs is not None else entry.make_inputs()))
    return out


def _assert_close(got, want):
    want_leaves = pytree.tree_leaves(want)
    got_leaves = got if isinstance(got, list) else [got]
    assert len(got_leaves) == len(want_leaves)
    for a, b in zip(got_leaves, want_leaves):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_zoo_lowers_and_matches(entry):
    model, inputs = entry.make_model(), entry.make_inputs()
    g = lower_module(model, inputs)
    g.verify()
    _assert_close(run(g, *inputs), _reference(entry))

    # every node knows where it came from, with its nn.Module path
    for n in g:
        assert n.provenance.origin == "torch.export", n
        assert isinstance(n.provenance.module_path, str), n
    assert any(n.provenance.source for n in g)

    # parameters and buffers keep their fully qualified names (mutated buffers become state)
    names = set(g.parameters) | {sv.name for sv in g.state}
    assert set(entry.make_model().state_dict()) <= names

    # the calling convention is recorded and matches the model's
    sig = g.signature
    assert sig.input_names == [v.name for v in g.inputs]
    out_spec = pytree.treespec_loads(sig.out_spec)
    in_spec = pytree.treespec_loads(sig.in_spec)
    assert in_spec.num_leaves == len(g.inputs)
    rebuilt = pytree.tree_unflatten(list(range(out_spec.num_leaves)), out_spec)
    assert pytree.tree_structure(rebuilt) == pytree.tree_structure(_reference(entry))


def test_module_paths_and_sources():
    g = lower_module(get("resnet18").make_model(), get("resnet18").make_inputs())
    convs = [n for n in g if n.op == "aten::conv2d"]  # kept whole by the ONNX-preferred decomposition
    assert len(convs) == 20  # stem + 16 block convs + 3 downsample convs
    paths = {n.provenance.module_path for n in convs}
    assert {"conv1", "layer1.0.conv1", "layer2.0.downsample.0", "layer4.1.conv2"} <= paths
    add = next(n for n in g if n.op == "aten::add.Tensor" and n.provenance.module_path == "layer1.0")
    assert add.provenance.source.startswith("zoo.py:")  # the user's `out += identity` line
    assert "layer1.0.bn1.running_mean" in g.parameters
    assert g.parameters["layer1.0.bn1.running_mean"].role == "buffer"
    assert g.parameters["layer1.0.conv1.weight"].role == "parameter"


def test_multi_output_ops_map_getitem():
    g = lower_module(get("cnn").make_model(), get("cnn").make_inputs(), decompose="core")
    pools = [n for n in g if n.op == "aten::max_pool2d_with_indices"]
    assert pools and all(len(n.outputs) == 2 for n in pools)
    assert pools[0].outputs[1].type.dtype == torch.int64
    # the values come from output 0; the indices are unused
    assert all(n.outputs[0].num_uses == 1 and n.outputs[1].num_uses == 0 for n in pools)


def test_tensor_list_ops_become_slices():
    class Pieces(nn.Module):  # (a decomposed LSTM's gates, before LSTMs were kept whole)
        def forward(self, x):
            a, b = torch.split(x, [3, 5], dim=1)
            c, d = x.chunk(2, dim=1)
            return a.sum(1) + b.sum(1) + c.sum(1) * d.sum(1) + sum(x.unbind(1))

    x = torch.randn(2, 8)
    g = lower_module(Pieces(), (x,))
    assert not any(n.op.startswith(("aten::split", "aten::chunk", "aten::unbind")) for n in g)
    assert any(n.op == "aten::slice.Tensor" for n in g)
    torch.testing.assert_close(run(g, x), Pieces()(x))


def test_non_persistent_buffers_and_lifted_constants():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", torch.tensor([2.0, 3.0]), persistent=False)
            self.table = torch.tensor([1.0, -1.0])  # a plain tensor attribute: a lifted constant

        def forward(self, x):
            return x * self.scale + self.table + torch.tensor([0.5, 0.5])

    x = torch.randn(3, 2)
    g = lower_module(M(), (x,))
    g.verify()
    assert g.parameters["scale"].role == "buffer"
    assert g.parameters["table"].role == "constant"
    torch.testing.assert_close(run(g, x), M()(x))


def test_non_tensor_outputs_stay_out_of_the_graph():
    class M(nn.Module):
        def forward(self, x):
            return x * 2, None, x.shape[0], 1.5

    g = lower_module(M(), (torch.ones(2),), dynamic_shapes=({0: Dim("n")},))
    assert g.signature.constant_outputs == [(1, None), (3, 1.5)]
    assert g.signature.scalar_outputs == [2]  # the symbolic size, a 0-d tensor here
    doubled, n = run(g, torch.ones(5))
    torch.testing.assert_close(doubled, torch.full((5,), 2.0))
    assert int(n) == 5


# -- dynamic shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18", "transformer_layer", "lstm", "gru", "bert"])
def test_dynamic_batch(name):
    entry = get(name)
    inputs = entry.make_inputs()
    if inputs[0].shape[0] == 1:  # a size-1 example would be specialized by torch.export
        inputs = (torch.cat([inputs[0], -inputs[0]]),) + inputs[1:]
    batch = Dim("batch")
    batched = [x.shape[0] == inputs[0].shape[0] for x in inputs]
    dyn = tuple({0: batch} if b else None for b in batched)
    g = lower_module(entry.make_model(), inputs, dynamic_shapes=dyn)
    g.verify()
    for v, b in zip(g.inputs, batched):
        assert (v.type.shape[0] == "batch") == b
    assert g.outputs[0].type.shape[0] == "batch"
    for n in (3, 5):
        bigger = tuple(torch.cat([x] * n) if b else x for x, b in zip(inputs, batched))
        _assert_close(run(g, *bigger), _reference(entry, bigger))


def test_dynamic_batch_and_sequence():
    """Two symbolic dims: reshapes get their sizes computed in the IR."""
    entry = get("gpt2")
    (ids,) = entry.make_inputs()
    g = lower_module(entry.make_model(), (ids,),
                     dynamic_shapes=({0: Dim("batch"), 1: Dim("seq", min=2, max=64)},))
    g.verify()
    assert g.inputs[0].type.shape == ("batch", "seq")
    assert g.outputs[0].type.shape == ("batch", "seq", 100)
    assert any(n.op == "aten::_reshape_from_tensor" for n in g)
    other = torch.randint(0, 100, (3, 11), generator=torch.Generator().manual_seed(5))
    _assert_close(run(g, other), _reference(entry, (other,)))


# -- state --------------------------------------------------------------------------------------


def test_mutated_buffers_become_state():
    entry = get("running_stats")
    g = lower_module(entry.make_model(), entry.make_inputs())
    assert {sv.name for sv in g.state} == {"mean", "count"}
    assert not ({"mean", "count"} & set(g.parameters))
    assert g.signature.mutated_buffers == ["count", "mean"]
    model, (x,) = entry.make_model(), entry.make_inputs()
    state = None
    for step in range(3):
        with torch.no_grad():
            want = model(x * (step + 1))
        outs, state = run_graph(g, [x * (step + 1)], state)
        _assert_close(outs, want)
    torch.testing.assert_close(state["mean"], model.mean)
    assert int(state["count"]) == 3


def test_training_mode_batchnorm_updates_running_stats():
    entry = get("depthwise")
    model, inputs = entry.make_model().train(), entry.make_inputs()
    g = lower_module(model, inputs)
    assert {sv.name for sv in g.state} == {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    outs, state = run_graph(g, inputs)
    ref_model = entry.make_model().train()
    _assert_close(outs, ref_model(*inputs))
    torch.testing.assert_close(state["bn.running_var"], ref_model.bn.running_var)


def test_mutated_user_input_is_an_extra_output():
    class M(nn.Module):
        def forward(self, x, acc):
            acc.add_(x)
            return x * 2

    x, acc = torch.ones(3), torch.zeros(3)
    g = lower_module(M(), (x, acc))
    assert len(g.outputs) == 2
    assert g.signature.input_mutations == [InputMutation(input="acc", output=1)]
    out, new_acc = run(g, x, acc)
    torch.testing.assert_close(new_acc, torch.ones(3))
    torch.testing.assert_close(acc, torch.zeros(3))  # the IR itself is functional


# -- control flow -----------------------------------------------------------------------------


class CondModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: self.fc(t).sin(), lambda t: t.cos() - 1, (x,))


def test_torch_cond_lowers_to_if():
    torch.manual_seed(0)
    model = CondModel().eval()
    g = lower_module(model, (torch.ones(2, 4),))
    g.verify()
    assert [n.op for n in g if n.regions] == ["onnx::If"]
    assert "fc.weight" in g.parameters
    for x in (torch.ones(2, 4), -torch.ones(2, 4)):
        _assert_close(run(g, x), model(x))


# -- unsupported constructs: one error listing everything ---------------------------------------


@torch.library.custom_op("torchmdf_test::scale2", mutates_args=())
def _scale2(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_scale2.register_fake
def _(x):
    return torch.empty_like(x)


@torch.library.custom_op("torchmdf_test::shift1", mutates_args=())
def _shift1(x: torch.Tensor) -> torch.Tensor:
    return x + 1


@_shift1.register_fake
def _(x):
    return torch.empty_like(x)


class TwoCustomOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)

    def forward(self, x):
        y = torch.ops.torchmdf_test.scale2(self.inner(x))
        return torch.ops.torchmdf_test.shift1(y).relu()


class DataDependent(nn.Module):
    def forward(self, x):
        y = torch.ops.torchmdf_test.scale2(x)
        if y.sum() > 0:  # data-dependent Python control flow
            y = y + 1
        return torch.ops.torchmdf_test.shift1(y)


def test_unresolvable_ops_reported_together():
    with pytest.raises(torchmdf.UnsupportedOpError) as info:
        lower_module(TwoCustomOps(), (torch.randn(2, 3),))
    err = info.value
    names = [name for name, _ in err.ops]
    assert names == ["torchmdf_test::scale2", "torchmdf_test::shift1"]
    assert all(loc and "test_frontend_export.py:" in loc for _, loc in err.ops)
    assert "module 'inner'" not in err.ops[0][1]  # the custom op is called at the root module
    assert "torchmdf.ops.register" in str(err)


def test_export_failure_and_ops_reported_together():
    with pytest.raises(torchmdf.UnsupportedOpError) as info:
        lower_module(DataDependent(), (torch.randn(3),))
    err = info.value
    text = str(err)
    names = [name for name, _ in err.ops]
    assert names[0].startswith("data-dependent control flow")
    assert "if y.sum() > 0:" in names[0]
    assert err.ops[0][1].startswith("test_frontend_export.py:")
    assert "torchmdf_test::scale2" in names and "torchmdf_test::shift1" in names
    assert "torch.cond" in text and "TorchScript" in text


def test_dynamic_constraint_violation_is_explained():
    with pytest.raises(torchmdf.UnsupportedOpError) as info:
        lower_module(get("lstm").make_model(), get("lstm").make_inputs(),
                     dynamic_shapes=({1: Dim("seq", min=2, max=64)},))
    assert "dynamic shape constraint violated" in str(info.value)
    assert "static" in info.value.hint


# -- entry points -----------------------------------------------------------------------------


def test_exported_program_and_dispatcher():
    entry = get("mlp")
    model, inputs = entry.make_model(), entry.make_inputs()
    ep = torch.export.export(model, inputs)
    for g in (lower_exported_program(ep), lower_pytorch(ep), lower_pytorch(model, inputs),
              lower_pytorch(model, inputs[0])):
        g.verify()
        _assert_close(run(g, *inputs), _reference(entry))
    g = lower_exported_program(ep, decompose=False)
    assert any(n.op == "aten::linear" for n in g)
    _assert_close(run(g, *inputs), _reference(entry))


def test_no_module_imports_torch_onnx():
    """torchmdf never uses torch.onnx (its ONNX path is its own)."""
    offenders = []
    for folder in ("compiler", "passes", "backends"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    mods = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Attribute) and node.attr == "onnx" and \
                        isinstance(node.value, ast.Name) and node.value.id == "torch":
                    mods = ["torch.onnx"]
                if any(m == "torch.onnx" or m.startswith("torch.onnx.") for m in mods):
                    offenders.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert not offenders, offenders
