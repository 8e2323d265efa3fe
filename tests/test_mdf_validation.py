"""Validation of MDF models built in code: each rule, every problem reported at once with its MDF
path, the function table, and agreement with modeci_mdf where it has an opinion."""

from __future__ import annotations

import pytest
import torch

import torchmdf.mdf as mdf
from torchmdf.errors import ExpressionError, ValidationError
from torchmdf.mdf import (
    Condition,
    ConditionSet,
    Edge,
    Function,
    Graph,
    InputPort,
    Model,
    Node,
    OutputPort,
    Parameter,
    ParameterCondition,
)
from torchmdf.mdf.functions import (
    STANDARD_FUNCTIONS,
    function_argument_names,
    is_known_function,
    onnx_signature,
)


def _model(*nodes, edges=(), conditions=None, fmt="ModECI MDF v0.4") -> Model:
    return Model(id="m", format=fmt, graphs=[Graph(id="g", nodes=list(nodes), edges=list(edges),
                                                   conditions=conditions)])


def _src(id="A", value=1.0) -> Node:
    return Node(id=id, parameters=[Parameter(id="p", value=value)], output_ports=[OutputPort(id="out", value="p")])


def _sink(id="B", default=None) -> Node:
    return Node(id=id, input_ports=[InputPort(id="inp", default_value=default)],
                output_ports=[OutputPort(id="out", value="inp")])


def _edge(s, r, id=None, sp="out", rp="inp") -> Edge:
    return Edge(id=id or f"{s}_{r}", sender=s, receiver=r, sender_port=sp, receiver_port=rp)


def _problems(model) -> list[str]:
    return [str(p) for p in mdf.validate(model, lowering=False)]  # the structure (lowering: elsewhere)


def _one(model, *fragments, cls=ValidationError) -> str:
    problems = mdf.validate(model, lowering=False)
    assert len(problems) == 1, [str(p) for p in problems]
    assert isinstance(problems[0], cls)
    msg = str(problems[0])
    for f in fragments:
        assert f in msg, msg
    return msg


def test_valid_model_has_no_problems():
    assert mdf.validate(_model(_src(), _sink(), edges=[_edge("A", "B")])) == []
    mdf.check(_model(_src()))


def test_all_problems_at_once():
    m = _model(
        Node(id="A", parameters=[Parameter(id="p", value="q + 1"), Parameter(id="p", value=2)],
             output_ports=[OutputPort(id="out", value="lambda: 1")]),
        Node(id="B", parameters=[Parameter(id="f", function="linearr", args={"variable0": 1})]),
        edges=[_edge("A", "Z")])
    problems = mdf.validate(m)
    text = "\n".join(map(str, problems))
    assert len(problems) == 5, text
    assert "model 'm' > graph 'g' > node 'A' > parameter 'p' > value: unknown name 'q'" in text
    assert "node 'A': duplicate id 'p': two parameters" in text
    assert "node 'A' > output port 'out' > value: a lambda" in text
    assert "node 'B' > parameter 'f' > function: unknown function 'linearr'" in text
    assert "edge 'A_Z': the receiver node 'Z' does not exist" in text
    with pytest.raises(ValidationError) as info:
        mdf.check(m)
    assert len(info.value.problems) == 5
    assert "5 problems" in str(info.value) and "linearr" in str(info.value)


def test_check_with_one_problem_keeps_its_class():
    with pytest.raises(ExpressionError) as info:
        mdf.check(_model(Node(id="A", output_ports=[OutputPort(id="o", value="__import__('os')")])))
    assert info.value.problems == [info.value.problems[0]] and "output port 'o'" in str(info.value)


@pytest.mark.parametrize("make, fragments", [
    (lambda: Model(id="", graphs=[Graph(id="g")]), ["the model has no id"]),
    (lambda: Model(id="m", graphs=[]), ["the model has no graphs"]),
    (lambda: Model(id="m", graphs=[Graph(id="g"), Graph(id="g")]), ["duplicate id 'g': two graphs"]),
    (lambda: _model(Node(id="")), ["the node has no id"]),
    (lambda: _model(Node(id=3)), ["node 3", "must be a non-empty string"]),
    (lambda: _model(Node(id="A"), Node(id="A")), ["duplicate id 'A': two nodes"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x")], parameters=[Parameter(id="x", value=1)])),
     ["duplicate id 'x': a input port and a parameter"]),
    (lambda: _model(Node(id="A", output_ports=[OutputPort(id="o"), OutputPort(id="o")])),
     ["two output ports"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x", shape=(2, -1))])), ["input port 'x'", "shape"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x", shape="abc")])), ["shape"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x", reduce="mean")])), ["reduce"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x", default_value="a+1")])), ["default_value"]),
    (lambda: _model(Node(id="A", input_ports=[InputPort(id="x", type=5)])), ["type must be a string"]),
    (lambda: _model(Node(id="A", output_ports=[OutputPort(id="o", value=3)])), ["output port 'o'",
                                                                               "an expression string"]),
    (lambda: _model(Node(id="A", metadata=[1])), ["node 'A'", "metadata must be a mapping"]),
    (lambda: _model(Node(id="A", notes=5)), ["notes must be a string"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p")])), ["parameter 'p'", "has no value"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", value=object())])), ["parameter 'p' > value"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", time_derivative="1")])),
     ["needs a default_initial_value"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", default_initial_value=0, args={"a": 1})])), ["args given without a function"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="linear", args=[1])])),
     ["args must be a mapping"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="sin",
                                                       args={"variable0": 1, "scale": 1, "phase": 0})])),
     ["sin does not take the argument(s) 'phase'", "sin takes variable0, scale"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="linear", args={"variable0": 1})])),
     ["linear needs the argument(s) 'slope', 'intercept'"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="onnx::Gemm",
                                                       args={"A": 1, "B": 2, "D": 3})])),
     ["onnx::Gemm does not take the argument(s) 'D'"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="onnx::Cast", args={"input": 1})])),
     ["onnx::Cast needs the argument(s) 'to'"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="onnx::Nope", args={})])),
     ["unknown function 'onnx::Nope'"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", function="linear", args={
        "variable0": 1, "slope": "nope", "intercept": 0})])), ["arg 'slope'", "unknown name 'nope'"]),
    (lambda: _model(Node(id="A", parameters=[Parameter(id="p", value=1, conditions=[
        ParameterCondition(id="c", test="q > 1", value=0)])])), ["condition 'c' > test", "unknown name 'q'"]),
    (lambda: _model(Node(id="A", functions=[Function(id="f")])), ["neither a function name nor a value"]),
    (lambda: _model(Node(id="A", functions=[Function(id="f", value="g"), Function(id="g", value="f")])),
     ["the functions 'f', 'g' depend on each other"]),
    (lambda: _model(_src(), _sink(), edges=[_edge("A", "B", sp="nope")]), ["has no output port 'nope'"]),
    (lambda: _model(_src(), _sink(), edges=[_edge("A", "B", rp="nope")]), ["has no input port 'nope'"]),
    (lambda: _model(_src(), _sink(), edges=[_edge("X", "B")]), ["the sender node 'X' does not exist"]),
    (lambda: _model(_src(), _sink(), edges=[Edge(id="e", sender="A", receiver="B", sender_port="out",
                                                 receiver_port="inp", parameters={"weight": "w"})]),
     ["weight must be a number or an array"]),
    (lambda: _model(_src(), _sink(), edges=[_edge("A", "B"), _edge("A", "B")]), ["two edges"]),
    (lambda: _model(_src(), conditions=ConditionSet(node_specific={"Z": Condition("Always")})),
     ["node_specific 'Z'", "does not exist"]),
    (lambda: _model(_src(), conditions=ConditionSet(node_specific={"A": Condition("Sometimes")})),
     ["unknown condition type 'Sometimes'"]),
    (lambda: _model(_src(), conditions=ConditionSet(node_specific={"A": Condition("EveryNCalls", dependency="Q", n=1)})),
     ["depends on the node 'Q'"]),
    (lambda: _model(_src(), conditions=ConditionSet(termination={"environment_state_update": Condition(
        "All", dependencies=[Condition("Nope")])})), ["termination 'environment_state_update' > kwargs 'dependencies'",
                                                      "unknown condition type 'Nope'"]),
    (lambda: _model(_src(), conditions=ConditionSet(termination={"x": Condition(
        "Threshold", dependency="A", parameter="q", threshold=1, comparator=">")})), ["has no parameter, port or function 'q'"]),
])
def test_rule(make, fragments):
    msg = _one(make(), *fragments)
    assert "model " in msg


def test_expression_problems_are_expression_errors():
    m = _model(Node(id="A", parameters=[Parameter(id="p", value="x.__class__")]))
    _one(m, "node 'A' > parameter 'p' > value", "attribute access", cls=ExpressionError)


def test_self_reference_and_scope():
    n = Node(id="A", input_ports=[InputPort(id="i")],
             parameters=[Parameter(id="count", value="count + 1"), Parameter(id="p", value="i * f")],
             functions=[Function(id="f", value="x + i", args={"x": 2}),
                        Function(id="g", function="linear",
                                 args={"variable0": "f", "slope": 1, "intercept": "slope * 2"})],
             output_ports=[OutputPort(id="o", value="numpy.exp(p) + math.pi + g")])
    assert _problems(_model(n)) == []


def test_reference_by_exact_id_and_string_attributes():
    n = Node(id="/A/Add", input_ports=[InputPort(id="input")],
             parameters=[Parameter(id="B", value=1.0), Parameter(id="mode", value="constant"),
                         Parameter(id="/A/Add", function="onnx::Add", args={"A": "input", "B": "B"}),
                         Parameter(id="onnx::Pad_1", function="onnx::Pad", args={"data": "/A/Add", "pads": "[B, B]"})],
             output_ports=[OutputPort(id="o", value="onnx::Pad_1")])
    assert _problems(_model(n)) == []
    # "constant" is a literal only as the value of a string attribute's parameter
    n.parameters[1].id = "other"
    _one(_model(n), "parameter 'other' > value", "unknown name 'constant'")


def test_missing_argument_may_come_from_the_node():
    n = Node(id="A", input_ports=[InputPort(id="x")],
             parameters=[Parameter(id="to", value=1), Parameter(id="c", function="onnx::Cast", args={"input": "x"}),
                         Parameter(id="slope", value=2), Parameter(id="intercept", value=0),
                         Parameter(id="l", function="linear", args={"variable0": "x"})])
    assert _problems(_model(n)) == []


def test_variadic_onnx_inputs():
    n = Node(id="A", input_ports=[InputPort(id="_1"), InputPort(id="_2")],
             parameters=[Parameter(id="axis", value=1),
                         Parameter(id="c", function="onnx::Concat", args={"inputs": "['_1', '_2']"})])
    assert _problems(_model(n)) == []
    n.parameters[1].args["inputs"] = "['_1', '_3']"
    _one(_model(n), "unknown name '_3'")


# ------------------------------------------------------------------------------- cycles

def _cycle(default=None, stateful=False):
    a = Node(id="A", input_ports=[InputPort(id="inp", default_value=default)],
             parameters=[Parameter(id="s", default_initial_value=0, time_derivative="inp")] if stateful else [],
             output_ports=[OutputPort(id="out", value="s" if stateful else "inp + 1")])
    return _model(a, _sink("B"), edges=[_edge("A", "B"), _edge("B", "A")])


def test_cycle_without_a_break_is_an_error():
    _one(_cycle(), "the edges between the nodes 'A', 'B' form a cycle", "default_value")


def test_stateful_parameters_do_not_break_a_cycle():
    # modeci_mdf never finishes ordering the edges of this graph (see validate.py).
    _one(_cycle(stateful=True), "form a cycle")


def test_input_port_default_value_breaks_a_cycle():
    assert _problems(_cycle(default=1.0)) == []


def test_self_loop_is_a_cycle():
    n = Node(id="A", input_ports=[InputPort(id="inp")], output_ports=[OutputPort(id="out", value="inp")])
    _one(_model(n, edges=[_edge("A", "A")]), "'A' form a cycle")


def test_long_chain_does_not_recurse():
    nodes = [_src("n0")] + [_sink(f"n{i}") for i in range(1, 3000)]
    edges = [_edge(f"n{i}", f"n{i + 1}") for i in range(2999)]
    assert _problems(_model(*nodes, edges=edges)) == []


# -------------------------------------------------------------- legacy (pre-v0.4) files

def test_pre_v04_files_may_use_their_applications_functions():
    node = Node(id="A", input_ports=[InputPort(id="x")],
                functions=[Function(id="f", function="simpleintegrator", args={"variable0": "x", "rate": 0.5}),
                           Function(id="g", function="logistic", args={"variable0": "x", "gain": 1, "bias": 0,
                                                                        "offset": 0, "x_0": 0, "scale": 1})])
    assert _problems(_model(node, fmt="ModECI MDF v0.1")) == []
    problems = _problems(_model(node))
    assert len(problems) == 2
    assert "unknown function 'simpleintegrator'" in problems[0]
    assert "logistic does not take the argument(s) 'x_0', 'scale'" in problems[1]


def test_nested_graph_endpoint():
    loop = Graph(id="LoopSubgraphL", nodes=[_src("inner")])
    m = _model(_src(), loop, edges=[_edge("A", "L", rp="_6")])
    assert _problems(m) == []


# ------------------------------------------------------------------------ function table

def test_known_functions():
    for name in ["linear", "logistic", "exponential", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                 "arcsin", "arccos", "arctan", "MatMul", "Relu", "onnx::Gemm", "onnx::Relu",
                 "aten::addmm", "drift_diffusion_integrator", "chunk_to_string"]:
        assert is_known_function(name), name
    for name in ["", "linearr", "onnx::NotAnOp", "onnx::", "aten::", "exp", None, "numpy.sin"]:
        assert not is_known_function(name), name
    assert function_argument_names("linear") == {"variable0", "slope", "intercept"}
    assert function_argument_names("onnx::Gemm") == {"A", "B", "C", "alpha", "beta", "transA", "transB"}
    assert function_argument_names("aten::anything") is None
    sig = onnx_signature("Gemm")
    assert sig.required_inputs == ("A", "B") and not sig.variadic
    assert onnx_signature("Concat").variadic


def test_standard_expressions_parse():
    for f in STANDARD_FUNCTIONS.values():
        tree = f.parsed()
        if f.kind == "mdf":
            assert tree is not None
            from torchmdf.mdf.expressions import free_names
            assert free_names(tree) == set(f.arguments), f.name
        else:
            assert tree is None


def test_standard_expressions_compute_modeci_values():
    from torchmdf.mdf.expressions import evaluate_expression

    x = torch.tensor([0.25, -1.5], dtype=torch.float64)
    env = {"variable0": x, "slope": 2.0, "intercept": 1.0, "gain": 2.1, "bias": 2.2, "offset": 2.3,
           "scale": 3.1, "rate": 3.2, "A": x, "B": x}
    logistic = evaluate_expression(STANDARD_FUNCTIONS["logistic"].parsed(), env)
    assert torch.allclose(logistic, 1 / (1 + torch.exp(-1 * 2.1 * (x + 2.2) + 2.3)))
    assert torch.equal(evaluate_expression(STANDARD_FUNCTIONS["Relu"].parsed(), env), torch.relu(x))


@pytest.mark.oracle
def test_function_table_matches_modeci_mdf():
    standard = pytest.importorskip("modeci_mdf.functions.standard")
    theirs = {k: v for k, v in standard.mdf_functions.items() if not k.startswith("onnx")}
    assert set(theirs) == set(STANDARD_FUNCTIONS)
    for name, f in STANDARD_FUNCTIONS.items():
        assert tuple(theirs[name]["arguments"]) == f.arguments, name
        if f.kind == "mdf":
            assert theirs[name]["expression_string"] == f.expression, name
    onnx_names = [k for k in standard.mdf_functions if k.startswith("onnx::")]
    assert onnx_names and all(is_known_function(k) for k in onnx_names)
    for k in onnx_names:
        assert set(standard.mdf_functions[k]["arguments"]) <= function_argument_names(k), k


@pytest.mark.oracle
def test_stateful_matches_modeci_mdf():
    ref = pytest.importorskip("modeci_mdf.mdf")
    for kwargs in [dict(value="count + 1"), dict(value="x + 1"), dict(value=3), dict(default_initial_value=0),
                   dict(default_initial_value=0, time_derivative="1"), dict(value="count[0] * 2")]:
        ours = Parameter(id="count", **kwargs).is_stateful()
        assert ours == ref.Parameter(id="count", **kwargs).is_stateful(), kwargs


def test_validate_rejects_non_models():
    problems = mdf.validate("not a model")  # type: ignore[arg-type]
    assert len(problems) == 1 and "expected a torchmdf.mdf.Model" in str(problems[0])


def test_arrays_and_tensors_are_values():
    n = Node(id="A", parameters=[Parameter(id="w", value=torch.ones(2, 2)), Parameter(id="b", value=[1, 2]),
                                 Parameter(id="c", value=torch.zeros(2, dtype=torch.complex64))])
    _one(_model(n), "parameter 'c' > value", "complex")


def test_aten_string_argument_is_a_literal():
    """``rounding_mode: "floor"`` of ``aten::div.Tensor_mode`` is the string, not an expression
    naming ``floor`` (found by the ATen coverage sweep); a string that names a value in scope
    still refers to it, and one given where the schema takes no string is still an expression."""
    import torchmdf

    class FloorDiv(torch.nn.Module):
        def forward(self, a, b):
            return torch.div(a, b, rounding_mode="floor")

    a, b = torch.tensor([7.5, -3.0, 2.0]), torch.tensor([2.0, 2.0, -0.5])
    m = torchmdf.compile(FloorDiv(), example_inputs=(a, b))
    assert torchmdf.mdf.validate(m) == []
    torch.testing.assert_close(torchmdf.compile(m, target="fx")(a, b), torch.div(a, b, rounding_mode="floor"))
    p = next(p for n in m.graphs[0].nodes for p in n.parameters if p.function == "aten::div.Tensor_mode")
    p.args["other"] = "floor"  # not a string argument: an expression, and no value is named so
    assert any("floor" in str(e) for e in torchmdf.mdf.validate(m))
