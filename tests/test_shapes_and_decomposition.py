"""Issue 18: the ONNX-preferred decomposition (ops kept whole, the direct path without a
re-trace, in-place ops made functional), GroupNormalization/PRelu/attention in ONNX, shape
guards on converted modules, ``dynamic_batch``, symbolic dims in MDF files."""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchmdf
from torchmdf.frontends.export import _lowers_directly, lower_module
from zoo import get


def _same(got, expected):
    for a, b in zip(torch.utils._pytree.tree_leaves(expected), torch.utils._pytree.tree_leaves(got)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


# -- ops kept whole ---------------------------------------------------------------------------


class Kept(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.prelu = nn.PReLU(4)

    def forward(self, x, img):
        q = self.ln(F.silu(self.fc(x))).view(2, 3, 2, 4).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        return a, self.prelu(self.gn(self.conv(img)))


def _kept_inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 8, generator=g), torch.randn(2, 4, 6, 6, generator=g)


def test_ops_with_a_direct_rule_are_not_decomposed():
    model, inputs = Kept().eval(), _kept_inputs()
    ops = {n.op for n in lower_module(model, inputs)}
    assert {"aten::linear", "aten::silu", "aten::layer_norm", "aten::scaled_dot_product_attention",
            "aten::conv2d", "aten::group_norm", "aten::prelu"} <= ops
    core = {n.op for n in lower_module(model, inputs, decompose="core")}
    assert "aten::scaled_dot_product_attention" not in core and "aten::linear" not in core
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs)
    fns = {p.function for g in m.graphs for n in g.nodes for p in n.parameters if p.function}
    assert all(f.startswith("onnx::") for f in fns), fns
    assert {"onnx::GroupNormalization", "onnx::PRelu", "onnx::Softmax", "onnx::LayerNormalization"} <= fns
    with torch.no_grad():
        _same(torchmdf.compile(m, target="fx")(*inputs), model(*inputs))


def test_group_norm_prelu_and_attention_run_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    model, inputs = Kept().eval(), _kept_inputs()
    proto = torchmdf.compile(model, target="onnx", example_inputs=inputs)
    assert any(o.version >= 21 for o in proto.opset_import)  # GroupNormalization's per-channel form
    sess = ort.InferenceSession(proto.SerializeToString())
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    with torch.no_grad():
        expected = model(*inputs)
    for a, b in zip(expected, sess.run(None, feeds)):
        torch.testing.assert_close(torch.from_numpy(b), a, rtol=1e-4, atol=1e-5)


def test_fx_calls_one_torch_op_for_each_kept_op():
    model, inputs = Kept().eval(), _kept_inputs()
    code = torchmdf.compile(model, target="fx", example_inputs=inputs).code
    for fn in ("linear(", "silu(", "layer_norm(", "scaled_dot_product_attention(", "group_norm(", "prelu("):
        assert code.count(fn) == 1, (fn, code)
    assert "sigmoid" not in code and "matmul" not in code and "softmax" not in code
    small = get("mlp_bn_prelu")
    code = torchmdf.compile(small.make_model(), target="fx", example_inputs=small.make_inputs()).code
    assert code.count("torch.prelu(") == 2 and "where" not in code and "reshape" not in code


# -- the direct path ----------------------------------------------------------------------------


class InPlace(nn.Module):
    """In-place ops on intermediates, chained, and read through another name afterwards."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        z = y.mul_(2.0).add_(1.0)
        y.relu_()
        return y + z, torch.sigmoid(y)


class ViewThenMutate(nn.Module):
    def forward(self, x):
        y = x * 2
        v = y[:, 0]  # a view of y ...
        y.add_(1.0)  # ... that sees this update
        return v * 3


@pytest.mark.parametrize("cls,direct", [(InPlace, True), (ViewThenMutate, False)])
def test_in_place_ops_on_intermediates(cls, direct):
    model = cls().eval()
    x = torch.randn(3, 4)
    assert _lowers_directly(torch.export.export(model, (x,))) is direct
    gm = torchmdf.compile(model, target="fx", example_inputs=(x,))
    with torch.no_grad():
        _same(gm(x.clone()), model(x.clone()))


def test_direct_and_decomposed_paths_agree():
    e = get("resnet18")
    model, inputs = e.make_model(), e.make_inputs()
    assert _lowers_directly(torch.export.export(model, inputs))
    a = torchmdf.compile(lower_module(model, inputs), target="fx")
    b = torchmdf.compile(lower_module(model, inputs, decompose="core"), target="fx")
    with torch.no_grad():
        torch.testing.assert_close(a(*inputs), b(*inputs), rtol=1e-5, atol=1e-6)


# -- shape guards and dynamic dims --------------------------------------------------------------


def test_static_module_names_expected_and_given_shapes(tmp_path):
    e = get("mlp")
    model, (x,) = e.make_model(), e.make_inputs()
    gm = torchmdf.compile(model, target="fx", example_inputs=(x,))
    with pytest.raises(torchmdf.TorchMDFError) as info:
        gm(torch.randn(3, 16))
    msg = str(info.value)
    assert "(3, 16)" in msg and "(4, 16)" in msg and "input 'x'" in msg and "dynamic_batch=True" in msg
    # through an MDF file, and after pickling, the check is still there and the default works
    path = tmp_path / "mlp.json"
    torchmdf.mdf.save(torchmdf.compile(model, target="mdf", example_inputs=(x,)), path)
    gm2 = torchmdf.compile(path, target="fx")
    buf = io.BytesIO()
    torch.save(gm2, buf)
    buf.seek(0)
    gm3 = torch.load(buf, weights_only=False)
    for m in (gm2, gm3):
        with pytest.raises(torchmdf.TorchMDFError, match=r"given shape \(4, 15\)"):
            m(torch.randn(4, 15))
        _same(m(x), model(x))
    assert gm3().shape == (4, 8)  # the file's default input


def test_dynamic_batch_round_trips_through_a_file(tmp_path):
    e = get("mlp_bn_prelu")
    model, inputs = e.make_model(), e.make_inputs()
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs, dynamic_batch=True)
    path = tmp_path / "m.json"
    torchmdf.mdf.save(m, path)
    assert '"shape": ["batch", 16]' in json.dumps(json.loads(path.read_text()))
    modeci = pytest.importorskip("modeci_mdf.utils")
    modeci.load_mdf(str(path))  # the port's int-only `shape` stays as modeci_mdf reads it
    gm = torchmdf.compile(path, target="fx")
    for b in (1, 2, 9):
        x = torch.randn(b, 16)
        with torch.no_grad():
            _same(gm(x), model(x))
    with pytest.raises(torchmdf.TorchMDFError, match=r"converted for shape \(batch, 16\)"):
        gm(torch.randn(5, 17))


def test_dims_sharing_a_symbol_are_checked_against_each_other():
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    gm = torchmdf.compile(Add(), target="fx", example_inputs=(torch.ones(3, 2), torch.ones(3, 2)),
                          dynamic_batch=True)
    assert gm(torch.ones(5, 2), torch.ones(5, 2)).shape == (5, 2)
    with pytest.raises(torchmdf.TorchMDFError, match="input 'b'"):
        gm(torch.ones(5, 2), torch.ones(4, 2))


def test_dynamic_shapes_errors():
    e = get("mlp")
    model, inputs = e.make_model(), e.make_inputs()
    with pytest.raises(torchmdf.TorchMDFError, match="both dynamic_batch and dynamic_shapes"):
        torchmdf.compile(model, example_inputs=inputs, dynamic_batch=True, dynamic_shapes=({0: None},))
    with pytest.raises(torchmdf.TorchMDFError, match="need torch.export or TorchScript, not method='fx'"):
        torchmdf.compile(model, example_inputs=inputs, dynamic_batch=True, method="fx")
    gm = torch.fx.symbolic_trace(model)
    with pytest.raises(torchmdf.TorchMDFError, match="need torch.export or TorchScript, not a"):
        torchmdf.compile(gm, example_inputs=inputs, dynamic_batch=True)
    with pytest.raises(torchmdf.TorchMDFError, match="batch of at least 2"):
        torchmdf.compile(model, example_inputs=(torch.randn(1, 16),), dynamic_batch=True)


def test_bad_symbolic_port_shape_is_a_located_error(tmp_path):
    e = get("mlp")
    m = torchmdf.compile(e.make_model(), target="mdf", example_inputs=e.make_inputs(), dynamic_batch=True)
    path = tmp_path / "m.json"
    torchmdf.mdf.save(m, path)
    text = json.dumps(json.loads(path.read_text())).replace('"shape": ["batch", 16]', '"shape": [{"x": 1}, 16]')
    assert '{"x": 1}' in text
    path.write_text(text)
    with pytest.raises(torchmdf.TorchMDFError, match="input port 'x'"):
        torchmdf.compile(path, target="fx")


# -- expands that a broadcasting op makes anyway --------------------------------------------------


class SetColumn(nn.Module):
    """``z[:, 0] = 1.0`` exports as Where(mask, Expand(Unsqueeze(Expand(1.0))), z); ``w`` is
    expanded to a shape the Add would not broadcast to, so that Expand stays."""

    def forward(self, x, w):
        z = torch.relu(x).clone()
        z[:, 0] = 1.0
        return z - x, (x[:, :1] + w.expand(3, 4, 6)).sum(0)


def test_broadcasting_ops_read_the_value_before_its_expand():
    model = SetColumn().eval()
    x, w = torch.randn(4, 6), torch.randn(3, 1, 1)
    gm = torchmdf.compile(model, target="fx", example_inputs=(x, w))
    code = gm.code
    assert "torch.where(" in code and "unsqueeze" not in code, code
    assert code.count("expand(") == 1, code  # the one the Add needs: (3, 4, 1) + (4, 1) is not (3, 4, 6)
    with torch.no_grad():
        _same(gm(x, w), model(x, w))


# -- recurrent layers kept whole -----------------------------------------------------------------


class TwoRNNs(nn.Module):
    """A 2-layer sequence-first GRU (or LSTM) with a given initial state, and a bidirectional
    one."""

    def __init__(self, cls):
        super().__init__()
        self.uni = cls(6, 5, num_layers=2)
        self.bi = cls(6, 3, batch_first=True, bidirectional=True)

    def forward(self, x, h0):
        y, h = self.uni(x, h0 if isinstance(self.uni, nn.GRU) else (h0, torch.tanh(h0)))
        z, hb = self.bi(x.transpose(0, 1))
        return y, h, z, hb


def _gru_inputs():
    g = torch.Generator().manual_seed(4)
    return torch.randn(7, 2, 6, generator=g), torch.randn(2, 2, 5, generator=g)


def test_gru_is_one_onnx_gru_per_layer_and_one_torch_gru_call():
    model, inputs = TwoRNNs(nn.GRU).eval(), _gru_inputs()
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs)
    fns = [p.function for g in m.graphs for n in g.nodes for p in n.parameters if p.function]
    assert fns.count("onnx::GRU") == 2 and "aten::gru.input" in fns  # bidirectional: no ONNX form here
    code = torchmdf.compile(model, target="fx", example_inputs=inputs).code
    assert code.count("torch.gru(") == 2 and code.count("aten.gru.input(") == 1, code  # the layers; the bidirectional op
    for gm in (torchmdf.compile(m, target="fx"), torchmdf.compile(model, target="fx", example_inputs=inputs)):
        with torch.no_grad():
            _same(gm(*inputs), model(*inputs))
    gm = torchmdf.compile(model, target="fx", example_inputs=inputs)
    sum(t.sum() for t in gm(*inputs)).backward()
    sum(t.sum() for t in model(*inputs)).backward()
    for name, p in model.named_parameters():  # gradients reach the original weights
        torch.testing.assert_close(gm.get_parameter(name).grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


class UniLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.uni = nn.LSTM(6, 5, num_layers=2)

    def forward(self, x, h0):
        return self.uni(x, (h0, torch.tanh(h0)))  # (y, (h, c)): a nested output


@pytest.mark.parametrize("method", ["export", "trace"])
def test_lstm_is_one_onnx_lstm_per_layer_and_one_torch_lstm_call(method, tmp_path):
    """aten::lstm.input has two tensor lists, which the IR does not spell: the export frontend
    writes the ONNX LSTMs itself (TorchScript decomposes such ops through export)."""
    model, inputs = UniLSTM().eval(), _gru_inputs()
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs, method=method)
    fns = [p.function for g in m.graphs for n in g.nodes for p in n.parameters if p.function]
    assert fns.count("onnx::LSTM") == 2 and all(f.startswith("onnx::") for f in fns), fns
    code = torchmdf.compile(model, target="fx", example_inputs=inputs, method=method).code
    assert code.count("torch.lstm(") == 2, code
    path = tmp_path / "lstm.json"
    torchmdf.mdf.save(m, path)  # the file's inputs have defaults: the nested output's pytree code binds them
    for gm in (torchmdf.compile(path, target="fx"),
               torchmdf.compile(model, target="fx", example_inputs=inputs, method=method)):
        with torch.no_grad():
            _same(gm(*inputs), model(*inputs))
    sum(t.sum() for t in torch.utils._pytree.tree_leaves(gm(*inputs))).backward()
    sum(t.sum() for t in torch.utils._pytree.tree_leaves(model(*inputs))).backward()
    for name, p in model.named_parameters():  # gradients reach the original weights
        torch.testing.assert_close(gm.get_parameter(name).grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_bidirectional_lstm_decomposes():
    model, inputs = TwoRNNs(nn.LSTM).eval(), _gru_inputs()
    m = torchmdf.compile(model, target="mdf", example_inputs=inputs)
    fns = [p.function for g in m.graphs for n in g.nodes for p in n.parameters if p.function]
    assert "onnx::LSTM" not in fns and all(f.startswith("onnx::") for f in fns)
    with torch.no_grad():
        _same(torchmdf.compile(m, target="fx")(*inputs), model(*inputs))


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
def test_rnn_runs_in_onnxruntime(cls):
    ort = pytest.importorskip("onnxruntime")

    class Uni(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(6, 5, num_layers=2, batch_first=True)

        def forward(self, x):
            return self.rnn(x)

    model, x = Uni().eval(), torch.randn(2, 7, 6)
    proto = torchmdf.compile(model, target="onnx", example_inputs=(x,))
    assert [n.op_type for n in proto.graph.node].count(cls.__name__) == 2
    sess = ort.InferenceSession(proto.SerializeToString())
    with torch.no_grad():
        expected = model(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(expected), sess.run(None, {sess.get_inputs()[0].name: x.numpy()})):
        torch.testing.assert_close(torch.from_numpy(b), a, rtol=1e-4, atol=1e-5)
