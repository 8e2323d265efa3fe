"""A custom op registered with ``torchmdf.ops.register`` is an MDF function: files that name it
(``function: {"myns::myop": {...}}``, or ``myop(...)`` in an expression for an ``mdf::`` op)
validate, lower, run and round-trip, with no other file touched; the file allow-list for
``aten::`` ops is unchanged."""

from __future__ import annotations

import pytest
import torch

import torchmdf
from torchmdf.frontends.mdf import lower_mdf
from torchmdf.interpreter import run
from torchmdf.mdf import Graph, InputPort, Model, Node, OutputPort, Parameter, dumps, loads, validate
from torchmdf.ops import OpDef, register


def _scaled_add(x, y, alpha=1.0):
    return x + alpha * y


def _cube(x):
    return x * x * x


@pytest.fixture(scope="module", autouse=True)
def ops():
    register(OpDef("testmdf::scaled_add", impl=_scaled_add, input_names=("x", "y"), attr_defaults={"alpha": 1.0},
                   mdf_name="testmdf::scaled_add"), replace=True)
    register(OpDef("mdf::test_cube", impl=_cube, input_names=("x",), mdf_name="test_cube"), replace=True)


def _run(g):
    """One evaluation of a lowered graph, its free input ports at their defaults."""
    return run(g, *[v.meta["default"] for v in g.inputs])


def _model(param: Parameter) -> Model:
    node = Node("n", input_ports=[InputPort("inp", shape=(3,), default_value=[1.0, 2.0, 3.0])],
                parameters=[param], output_ports=[OutputPort("out", value=param.id)])
    return Model("m", graphs=[Graph("g", nodes=[node])])


def test_function_of_a_registered_op_validates_lowers_and_runs():
    m = _model(Parameter("p", function="testmdf::scaled_add", args={"x": "inp", "y": 2.0, "alpha": 3}))
    assert validate(m) == []
    g = lower_mdf(m)
    assert any(n.op == "testmdf::scaled_add" and n.attrs == {"alpha": 3} for n in g)
    assert torch.equal(_run(g), torch.tensor([7.0, 8.0, 9.0], dtype=torch.float64))
    traj = torchmdf.simulate(m, steps=2)
    assert torch.equal(traj["n.out"][1], torch.tensor([7.0, 8.0, 9.0], dtype=torch.float64))


def test_registered_op_round_trips_through_a_file():
    m = _model(Parameter("p", function="testmdf::scaled_add", args={"x": "inp", "y": "inp"}))
    again = loads(dumps(m, "json"), "json")
    assert validate(again) == []
    assert torch.equal(_run(lower_mdf(again)), torch.tensor([2.0, 4.0, 6.0], dtype=torch.float64))


def test_mapping_form_in_a_file():
    text = """{"m": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": {"n": {
        "input_ports": {"inp": {"shape": [2], "default_value": [1.0, 2.0]}},
        "functions": {"f": {"function": {"testmdf::scaled_add": {"x": "inp", "y": 1.0, "alpha": 0.5}}}},
        "output_ports": {"out": {"value": "f"}}}}}}}}"""
    m = loads(text, "json")
    assert m.graphs[0].nodes[0].functions[0].function == "testmdf::scaled_add"
    assert validate(m) == []
    assert torch.equal(_run(lower_mdf(m)), torch.tensor([1.5, 2.5], dtype=torch.float64))


def test_registered_mdf_op_is_callable_in_expressions():
    for value in ("test_cube(inp) + 1", "test_cube(x=inp) + 1"):
        m = _model(Parameter("p", value=value))
        assert validate(m) == [], value
        assert torch.equal(_run(lower_mdf(m)), torch.tensor([2.0, 9.0, 28.0], dtype=torch.float64))
    m = _model(Parameter("p", function="test_cube", args={"x": "inp"}))  # its MDF spelling
    assert validate(m) == []
    assert torch.equal(_run(lower_mdf(m)), torch.tensor([1.0, 8.0, 27.0], dtype=torch.float64))


def test_registering_after_a_refusal_makes_the_file_valid():
    m = _model(Parameter("p", function="testmdf::late", args={"x": "inp"}))
    e = _model(Parameter("p", value="test_late(inp)"))
    assert any("unknown function" in str(p) for p in validate(m))
    assert any("unknown function" in str(p) for p in validate(e))
    register(OpDef("testmdf::late", impl=torch.neg, input_names=("x",)), replace=True)
    register(OpDef("mdf::test_late", impl=torch.neg, input_names=("x",), mdf_name="test_late"), replace=True)
    for model in (m, e):
        assert validate(model) == []
        assert torch.equal(_run(lower_mdf(model)), -torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_wrong_arguments_of_a_registered_op_are_located():
    m = _model(Parameter("p", function="testmdf::scaled_add", args={"x": "inp", "z": 1}))
    problems = validate(m)
    assert any("does not take the argument(s) 'z'" in str(p) and "parameter 'p'" in str(p) for p in problems)


def test_file_allow_list_still_refuses_unsafe_aten_ops():
    m = _model(Parameter("p", function="aten::from_file", args={"filename": "x"}))
    assert any("may not call aten::from_file" in str(p) for p in validate(m))
    m = _model(Parameter("p", function="aten::empty.memory_format", args={"size": [2]}))
    assert any("may not call" in str(p) for p in validate(m))
