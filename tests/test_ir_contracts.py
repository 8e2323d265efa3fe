"""The IR's typed contracts: the graph signature (``graph.signature``), the value roles
(:class:`ValueRole`), the liveness query and the typed ``torchmdf`` metadata schemas."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils import _pytree as pytree

import torchmdf
from torchmdf.backends.fx import emit_fx
from torchmdf.errors import ValidationError, VerificationError
from torchmdf.frontends.export import lower_module
from torchmdf.frontends.mdf import lower_mdf
from torchmdf.ir import Graph, GraphSignature, InputMutation, TensorType, Value, ValueRole
from torchmdf.mdf import torchmdf_metadata as tm
from torchmdf.passes import get_pass

F32 = torch.float32


class _Counter(nn.Module):
    """Mutates a buffer and an input, and returns a constant leaf: every signature field."""

    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x, acc):
        self.count.add_(1)
        acc.add_(x)
        return {"y": x * 2, "none": None, "k": 1.5}


def _counter_graph() -> Graph:
    return lower_module(_Counter(), (torch.ones(3), torch.zeros(3)))


# -- the graph signature -------------------------------------------------------------------------


def test_frontend_fills_the_signature_not_metadata():
    g = _counter_graph()
    sig = g.signature
    assert sig.from_torch and sig.input_names == [v.name for v in g.inputs]
    assert sig.mutated_buffers == ["count"]
    assert sig.input_mutations == [InputMutation(input="acc", output=1)]
    assert sig.constant_outputs == [(1, None), (2, 1.5)]  # leaves in key order: k, none, y
    assert pytree.treespec_loads(sig.out_spec).num_leaves == 3
    assert not any(k.startswith("pytorch_") for k in g.metadata)
    assert "signature inputs=[x, acc]" in str(g) and "mutated_buffers=[count]" in str(g)


def test_clone_keeps_an_independent_copy_of_the_signature():
    g = _counter_graph()
    c = g.clone()
    assert c.signature == g.signature and c.signature is not g.signature
    c.signature.input_mutations.append(InputMutation("x", 0))
    c.signature.input_names.append("z")
    assert g.signature.input_mutations == [InputMutation("acc", 1)] and "z" not in g.signature.input_names


def test_a_graph_not_from_torch_has_an_empty_signature():
    g = Graph()
    assert not g.signature and not g.signature.from_torch and g.signature == GraphSignature()
    assert "signature" not in str(g)


def test_signature_round_trips_through_an_mdf_file(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    x = torch.randn(2, 4)
    g = torchmdf.lower(model, example_inputs=(x,))
    m = torchmdf.emit(g, target="mdf")
    # the file format is unchanged: the same keys, in the same order
    assert list(m.metadata["torchmdf"]) == ["output_ports", "pytorch_in_spec", "pytorch_out_spec",
                                            "pytorch_input_names"]
    path = tmp_path / "m.json"
    torchmdf.mdf.save(m, path)
    back = lower_mdf(path)
    assert back.signature.in_spec == g.signature.in_spec
    assert back.signature.out_spec == g.signature.out_spec
    assert back.signature.input_names == g.signature.input_names
    gm = torchmdf.compile(path, target="fx")
    torch.testing.assert_close(gm(x), model(x))


# -- value roles ---------------------------------------------------------------------------------


def test_roles_are_an_enum_that_compares_as_strings():
    g = Graph()
    x = g.add_input("x", TensorType(F32, (2,)))
    w = g.add_parameter("w", torch.ones(2), role="buffer")  # the string spelling is accepted
    c = g.add_constant(torch.ones(2))
    assert x.role is ValueRole.INPUT and w.role is ValueRole.BUFFER and c.role is ValueRole.CONSTANT
    assert w.role == "buffer" and str(w.role) == "buffer" and f"{w.role}" == "buffer"
    assert w.role.is_named_tensor and not c.role.is_named_tensor
    assert json.dumps({"role": w.role}) == '{"role": "buffer"}'
    n = g.create_node("onnx::Add", [x, w])
    assert n.output.role is ValueRole.NODE
    g.outputs = [n.output]
    assert "  buffer %w: f32[2]" in str(g)
    w.role = "parameter"
    assert w.role is ValueRole.PARAMETER
    with pytest.raises(VerificationError, match="bad value role 'weight'"):
        Value("v", role="weight")
    with pytest.raises(VerificationError, match="bad parameter role 'input'"):
        g.add_parameter("p", torch.ones(1), role=ValueRole.INPUT)


def test_roles_reach_the_mdf_file_as_plain_strings(tmp_path):
    model = nn.BatchNorm1d(3).eval()
    m = torchmdf.compile(model, target="mdf", example_inputs=(torch.randn(2, 3),))
    path = tmp_path / "m.yaml"
    torchmdf.mdf.save(m, path)  # yaml refuses str subclasses: the role is written as a str
    text = path.read_text()
    assert "role: buffer" in text and "role: parameter" in text


# -- liveness ------------------------------------------------------------------------------------


def _stateful() -> tuple[Graph, Value, Value]:
    g = Graph()
    x = g.add_input("x", TensorType(F32, (2,)))
    sv = g.add_state("s", torch.zeros(2), TensorType(F32, (2,)))
    out = g.create_node("onnx::Add", [x, sv.current]).output
    nxt = g.create_node("onnx::Mul", [x, sv.current]).output
    g.outputs = [out]
    sv.next = nxt
    return g, out, nxt


def test_is_live_counts_uses_outputs_and_state():
    g, out, nxt = _stateful()
    x = g.inputs[0]
    assert x.is_used and g.is_live(x)
    assert not out.is_used and g.is_live(out)  # a graph output
    assert not nxt.is_used and g.is_live(nxt)  # a state variable's next value
    assert id(out) in g.live_roots() and id(nxt) in g.live_roots()
    g.state[0].next = None  # the query follows edits of the state
    assert not g.is_live(nxt) and id(nxt) not in g.live_roots()
    g.state[0].next = nxt
    assert g.is_live(nxt)
    g.state = []
    assert not g.is_live(nxt)


def test_removing_a_state_next_value_is_refused():
    g, _, nxt = _stateful()
    with pytest.raises(VerificationError, match="still used"):
        g.remove(nxt.producer)
    c = g.add_constant(torch.ones(2), "init")
    g.state[0].next = c
    with pytest.raises(VerificationError, match="still has uses"):
        g.remove_parameter(c)  # it would leave the state's next value dangling
    get_pass("eliminate_dead_code")(g)
    assert "init" in g.parameters
    g.verify()


def test_fx_keeps_a_secondary_output_that_only_state_reads():
    """Training-mode BatchNorm whose batch mean (output 1) is read only as a state's next
    value: the FX rule that updates the running statistics in place must not take the mean
    for unused (it used to look at uses and graph outputs only, and the module failed to build)."""
    g = Graph()
    x = g.add_input("x", TensorType(F32, (4, 3)))
    w, b = g.add_parameter("w", torch.ones(3)), g.add_parameter("b", torch.zeros(3))
    rm = g.add_state("rm", torch.zeros(3), TensorType(F32, (3,)))
    rv = g.add_state("rv", torch.ones(3), TensorType(F32, (3,)))
    bm = g.add_state("batch_mean", torch.zeros(3), TensorType(F32, (3,)))
    n = g.create_node("aten::_native_batch_norm_legit_functional.default", [x, w, b, rm.current, rv.current],
                      {"training": True, "momentum": 0.1, "eps": 1e-5}, num_outputs=5)
    g.outputs = [n.outputs[0]]
    rm.next, rv.next, bm.next = n.outputs[3], n.outputs[4], n.outputs[1]
    g.verify()
    gm = emit_fx(g)
    xs = torch.randn(4, 3)
    ref = nn.BatchNorm1d(3, momentum=0.1).train()
    torch.testing.assert_close(gm(xs), ref(xs))
    torch.testing.assert_close(gm.get_buffer("batch_mean"), xs.mean(0))
    torch.testing.assert_close(gm.get_buffer("rm"), ref.running_mean)


# -- typed torchmdf metadata ----------------------------------------------------------------------


def test_metadata_schemas_parse_into_typed_objects():
    md = {"torchmdf": {"output_ports": ["A.out"], "pytorch_input_names": ["x"], "injected": 1}}
    entry = tm.ModelMetadata.read(md)
    assert entry == tm.ModelMetadata(output_ports=["A.out"], input_names=["x"])
    assert entry.to_metadata() == {"output_ports": ["A.out"], "pytorch_input_names": ["x"]}
    assert entry.signature() == GraphSignature(input_names=["x"])
    assert tm.ParameterMetadata.read({"torchmdf": {"name": "fc.weight", "role": "parameter"}}).name == "fc.weight"
    assert tm.PortMetadata.read({"torchmdf": {"shape": ["batch", 16]}}).shape == ["batch", 16]
    assert tm.NodeMetadata.read(None) == tm.NodeMetadata()


def test_bad_metadata_is_a_located_error_or_left_out():
    bad = {"torchmdf": {"output_ports": 5, "pytorch_input_names": ["x"]}}
    with pytest.raises(ValidationError, match="metadata torchmdf.output_ports must be a list of strings") as e:
        tm.ModelMetadata.read(bad, "model 'm'")
    assert e.value.location == "model 'm'"
    assert tm.ModelMetadata.read(bad, lenient=True) == tm.ModelMetadata(input_names=["x"])
    assert tm.problems(bad, tm.MODEL_KEYS) == [("output_ports", "must be a list of strings")]
    with pytest.raises(ValidationError, match="metadata torchmdf must be a mapping"):
        tm.ParameterMetadata.read({"torchmdf": [1]})
    with pytest.raises(ValidationError, match="torchmdf.role must be 'parameter' or 'buffer'"):
        tm.ParameterMetadata.read({"torchmdf": {"role": "input"}})
    evil = json.dumps([1, {"type": "evilmod.Thing", "context": "null", "children_spec": []}])
    assert tm.ModelMetadata.read({"torchmdf": {"pytorch_out_spec": evil}}, lenient=True).out_spec is None


def test_graph_metadata_lays_a_graph_entry_over_its_model_entry():
    entry = tm.graph_metadata({"torchmdf": {"output_ports": ["A.o"], "pytorch_input_names": ["x"]}},
                              {"torchmdf": {"output_ports": ["B.o"]}}, None)
    assert entry == tm.ModelMetadata(output_ports=["B.o"], input_names=["x"])


def test_port_metadata_is_checked_at_load(tmp_path):
    m = torchmdf.compile(nn.Linear(16, 4), target="mdf", example_inputs=(torch.randn(2, 16),), dynamic_batch=True)
    path = tmp_path / "m.json"
    torchmdf.mdf.save(m, path)
    path.write_text(path.read_text().replace('"batch"', '{"x": 1}'))
    with pytest.raises(ValidationError, match=r"input port '\w+' > metadata > torchmdf > shape: must be a list"):
        torchmdf.mdf.load(path)
