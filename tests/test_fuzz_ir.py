"""Fuzzing the IR: every built-in pass on random graphs over the op registry (regions
included), and the IR -> FX / MDF file backends; plus the regressions the fuzzers found."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import torchmdf
from torchmdf.interpreter import run
from torchmdf.ir import Graph, TensorType
from torchmdf.ops import registry
from torchmdf.passes import available_passes
from torchmdf.testing import (
    EXCLUDED_OPS,
    GraphCase,
    check_graph_backends,
    check_pass,
    check_pass_on,
    drawable_ops,
    ir_graphs,
)

INTERFACE_CHANGING = {"batch_trials": "gives every input and output a leading trials dim (tests/test_ddm.py "
                                      "checks each trial against a single run instead)"}
"""Built-in passes that change what a graph takes and returns, so 'same outputs' does not apply."""


@pytest.mark.property
@pytest.mark.parametrize("name", [p for p in available_passes() if p not in INTERFACE_CHANGING])
def test_every_builtin_pass_preserves_outputs_and_types(name):
    check_pass(name)


def test_every_builtin_pass_is_fuzzed_or_named_with_a_reason():
    assert set(INTERFACE_CHANGING) <= set(available_passes())


@pytest.mark.property
def test_the_default_pipeline_preserves_outputs():
    from torchmdf.passes import run_passes

    check_pass(lambda g: run_passes(g, None)[0])


def test_check_pass_catches_a_wrong_pass():
    """The property can fail: a pass that turns every Relu into a Neg is caught."""

    def wrong(g):
        for n in list(g):
            if n.op == "onnx::Relu":
                n.op = "onnx::Neg"

    with pytest.raises(AssertionError, match="differs"):
        check_pass(wrong, ir_graphs(["onnx::Relu"], regions=False), max_examples=20)


@given(ir_graphs())
def test_ir_graphs_through_fx_and_mdf_files(case):
    check_graph_backends(case, onnx=False)


def test_every_drawable_op_is_registered_and_excluded_ones_say_why():
    ops = set(drawable_ops())
    assert {"onnx::Conv", "onnx::Gemm", "mdf::linear", "torchmdf::linear"} <= ops
    assert not ops & set(EXCLUDED_OPS) and all(EXCLUDED_OPS.values())


@pytest.mark.slow
@pytest.mark.parametrize("op", drawable_ops())
def test_the_generator_draws_every_op(op):
    seen = []

    @settings(max_examples=200, database=None)
    @given(ir_graphs([op], regions=False, max_nodes=3))
    def prop(case):
        seen.extend(n for n in case.graph.walk() if n.op == op)

    prop()
    assert seen, f"ir_graphs never drew a valid {op} node"


def test_the_generator_draws_regions():
    kinds = set()

    @settings(max_examples=40, database=None)
    @given(ir_graphs(["onnx::Relu", "onnx::Add"]))
    def prop(case):
        kinds.update(n.op for n in case.graph.walk() if n.regions)

    prop()
    assert kinds == {"onnx::If", "onnx::Loop", "torchmdf::While"}


# -- regressions found by the fuzzers -----------------------------------------------------------


def _one_op_case(op, x, const, attrs=None):
    g = Graph("r")
    xv = g.add_input("x", TensorType.of(x))
    node = g.create_node(op, [xv] + ([g.add_constant(const)] if const is not None else []), attrs or {})
    g.outputs = [node.output]
    return GraphCase(g, [x])


def test_regression_global_pool_of_rank_two_keeps_the_input():
    """GlobalAveragePool/GlobalMaxPool reduced *every* dim of a rank-2 input (torch reads an
    empty dim tuple as all dims) while shape inference kept the shape."""
    x = torch.randn(3, 2)
    for op in ("onnx::GlobalAveragePool", "onnx::GlobalMaxPool"):
        case = _one_op_case(op, x, None)
        torch.testing.assert_close(run(case.graph, x), x)
        check_pass_on("infer_shapes", case)


def test_regression_expand_to_zero_broadcasts_a_one():
    """Expand of a size-1 dim to 0 gave 1 (``max(1, 0)``); numpy/ONNX broadcasting gives 0."""
    case = _one_op_case("onnx::Expand", torch.randn(()), torch.tensor([2, 0, 4]))
    assert run(case.graph, *case.inputs).shape == (2, 0, 4)
    check_pass_on("infer_shapes", case)


@pytest.mark.parametrize("op, x, const, attrs", [
    ("onnx::Expand", torch.randn(3), torch.tensor([-1, 3]), {}),     # negative target dim
    ("onnx::Tile", torch.randn(2), torch.tensor([2, 1, 3]), {}),     # more repeats than dims
    ("onnx::Squeeze", torch.randn(1, 2), torch.tensor([1]), {}),     # squeezing a dim of 2
    ("onnx::Squeeze", torch.randn(1, 2), torch.tensor([3]), {}),     # axis out of range
    ("onnx::Unsqueeze", torch.tensor(2), torch.tensor([-2]), {}),    # axis out of range
    ("onnx::Gather", torch.randn(4, 4), torch.tensor(0), {"axis": 3}),
    ("onnx::Flatten", torch.tensor(1.0), None, {"axis": 1}),
    ("onnx::ConstantOfShape", torch.tensor([[0, 1]]), None, {}),   # a 2-D shape (long profile)
    ("onnx::Conv", torch.randn(1, 1, 1), torch.ones(1, 1, 1), {"pads": [0, 0, 1]}),  # 3 pads for 1 dim
    ("onnx::Conv", torch.randn(1, 1, 1), torch.ones(1, 1, 1), {"kernel_shape": [2]}),  # not W's (long profile)
    ("onnx::Pad", torch.randn(2), torch.tensor([0, 1, 0]), {}),       # three pads for one axis (long profile)
    ("onnx::AveragePool", torch.randn(1, 1, 1), None, {"kernel_shape": [1], "pads": [0, 2], "ceil_mode": 1}),
    ("onnx::MaxPool", torch.randn(1, 1, 3), None, {"kernel_shape": [2], "pads": [2, 0]}),  # pads >= kernel
    ("onnx::Split", torch.randn(4), torch.tensor([4]), {"num_outputs": 2}),  # sizes and a count (long profile)
    # dilated AveragePool: torch has none, and computing it undilated gave another shape (long profile)
    ("onnx::AveragePool", torch.randn(1, 1, 1, 2), None, {"kernel_shape": [1, 2], "dilations": [1, 2]}),
    ("onnx::Reshape", torch.randn(2), torch.tensor([[2]]), {}),      # a 2-D shape
    ("onnx::ReduceProd", torch.randn(2, 1), torch.tensor([2]), {}),  # axis out of range (long profile)
    ("onnx::ReduceSum", torch.randn(2, 1), torch.tensor([1, -1]), {}),  # an axis repeated
])
def test_regression_invalid_onnx_arguments_are_refused_not_silently_reinterpreted(op, x, const, attrs):
    """torch's permissive expand/repeat/squeeze (and Python's ``%`` on an axis) computed another
    shape than shape inference or the FX code; the op now refuses, as ONNX does, with a located
    error."""
    case = _one_op_case(op, x, const, attrs)
    with pytest.raises(torchmdf.TorchMDFError):
        run(case.graph, *case.inputs)
    with pytest.raises(torchmdf.TorchMDFError):
        gm = torchmdf.compile(case.graph, target="fx", passes=["infer_shapes"])
        gm(*case.inputs)


def test_regression_flatten_of_rank_one_at_axis_one_through_fx():
    """FX wrote Flatten(axis=1) as torch.flatten(x, 1), which refuses rank 1 (ONNX: (n, 1))."""
    case = _one_op_case("onnx::Flatten", torch.randn(3), None, {"axis": 1})
    assert run(case.graph, *case.inputs).shape == (3, 1)
    check_graph_backends(case, onnx=False)


def test_regression_loop_condition_survives_an_mdf_file():
    """A Loop body's bool condition input, written as an input port of type bool without a
    default, was read back as float64 zeros: the file did not compile."""
    g = Graph("l")
    x = g.add_input("x", TensorType(torch.float32, ()))
    body = g.new_region("body")
    node = g.create_node("onnx::Loop", [g.add_constant(torch.tensor(0)), None, x], regions=[body], num_outputs=1)
    body.add_input("i", TensorType(torch.int64, ()))
    c = body.add_input("cond_in", TensorType(torch.bool, ()))
    v = body.add_input("v", TensorType(torch.float32, ()))
    body.outputs = [body.create_node("onnx::Identity", [c]).output, body.create_node("onnx::Tanh", [v]).output]
    g.outputs = [node.output]
    check_graph_backends(GraphCase(g, [torch.tensor(0.5)]), onnx=False)


def test_readme_testing_section_runs():
    import re

    from conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "NegNegIsIdentity" in b)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # our own README


def test_regression_silu_has_no_inplace_attribute():
    """torchmdf::silu took F.silu's ``inplace`` flag as an attribute a file could set: the op
    then wrote its input."""
    from torchmdf.ops import registry

    assert [a.name for a in registry.get("torchmdf::silu").attr_schema] == []
    x = torch.randn(4)
    before = x.clone()
    registry.get("torchmdf::silu").run([x], {})
    assert torch.equal(x, before)




def _if_twice_graph():
    """An If whose branches read the output of an earlier If (found by the fuzzer)."""
    g = Graph("f")
    x = g.add_input("x", TensorType(torch.float32, (2,)))
    outs = []
    cur = x
    for _ in range(2):
        s = g.create_node("onnx::ReduceSum", [cur], {"keepdims": 0}).output
        c = g.create_node("onnx::Greater", [s, g.add_constant(torch.tensor(0.0))]).output
        then, other = g.new_region("then_branch"), g.new_region("else_branch")
        node = g.create_node("onnx::If", [c], regions=[then, other])
        then.outputs = [then.create_node("onnx::Sin", [cur]).output]
        other.outputs = [other.create_node("onnx::Neg", [cur]).output]
        cur = node.output
        outs.append(cur)
    g.outputs = [outs[-1]]
    return GraphCase(g, [torch.tensor([0.5, -0.25])])


def test_regression_a_value_named_if_is_a_valid_fx_name():
    """A region capturing an If's output (IR name ``if``) got a placeholder named ``if``: the
    generated code did not parse."""
    check_graph_backends(_if_twice_graph(), onnx=False)


def test_regression_constant_of_shape_with_a_tensor_value_through_fx():
    """A tensor attribute was printed into the generated code (``dtype=float32``): NameError."""
    g = Graph("c")
    x = g.add_input("x", TensorType(torch.int64, (1,)))
    node = g.create_node("onnx::ConstantOfShape", [x], {"value": torch.tensor([1.5])})
    g.outputs = [node.output]
    check_graph_backends(GraphCase(g, [torch.tensor([3])]), onnx=False)


def test_regression_a_registered_op_without_its_optional_input_survives_an_mdf_file():
    """torchmdf::linear without a bias was written without the argument and read back as
    'missing bias': a registered op's trailing inputs that default to None are optional."""
    g = Graph("p")
    x = g.add_input("x", TensorType(torch.float32, (2, 3)))
    node = g.create_node("torchmdf::linear", [x, g.add_constant(torch.randn(4, 3))])
    g.outputs = [node.output]
    check_graph_backends(GraphCase(g, [torch.randn(2, 3)]), onnx=False)


def test_torchmdf_imports_without_hypothesis_and_testing_says_what_it_needs():
    import subprocess
    import sys

    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import torchmdf, torchmdf.mdf, torchmdf.passes\n"
            "try:\n    import torchmdf.testing\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "torchmdf.testing needs hypothesis" in out.stdout


def test_regression_sdpa_without_a_scale_attribute_through_fx():
    """torchmdf::scaled_dot_product_attention's FX lowering read attrs['scale'] (KeyError when
    the optional attribute is absent; found by the long profile)."""
    g = Graph("a")
    q = g.add_input("q", TensorType(torch.float32, (1, 2, 3)))
    node = g.create_node("torchmdf::scaled_dot_product_attention", [q, q, q])
    g.outputs = [node.output]
    check_graph_backends(GraphCase(g, [torch.randn(1, 2, 3)]), onnx=False)


def test_regression_prelu_of_integers_through_fx():
    """FX lowered every PRelu with one slope to torch.prelu, which has no integer kernel
    ("prelu_cpu" not implemented for 'Long'); ONNX PRelu takes int32/int64 (opset 16)."""
    x = torch.tensor([-3, 0, 2])
    case = _one_op_case("onnx::PRelu", x, torch.tensor([2]))
    check_graph_backends(case, onnx=False)
    gm = torchmdf.compile(case.graph, target="fx", passes=["infer_shapes"])
    assert gm(x).tolist() == [-6, 0, 2]


@pytest.mark.parametrize("op", ["onnx::ReduceMean", "onnx::ReduceL2", "onnx::ReduceLogSum", "onnx::ReduceLogSumExp"])
def test_regression_float_reductions_of_integers_keep_the_integer_type(op):
    """ReduceL2/LogSum/LogSumExp of int64 computed a float tensor (typed int64 by shape
    inference) and ReduceMean raised in torch ("mean(): could not infer output dtype"); ONNX
    keeps the input's type, onnxruntime truncates (found by the long profile)."""
    x = torch.tensor([[3, 4], [1, 2]])
    case = _one_op_case(op, x, torch.tensor([1]))
    check_graph_backends(case, onnx=True)
    got = run(case.graph, x)
    assert got.dtype == torch.int64
    want = {"onnx::ReduceMean": [[3], [1]], "onnx::ReduceL2": [[5], [2]], "onnx::ReduceLogSum": [[1], [1]],
            "onnx::ReduceLogSumExp": [[4], [2]]}[op]
    assert got.tolist() == want


@pytest.mark.parametrize("starts, ends, axes", [
    ([1, -1, 1, 0], [0, -1, 1, 0], None),  # four starts for a rank-1 input (found by the long profile)
    ([0, 1], [1, 2], [0, -1]),              # axis 0 twice
    ([0], [1], [1]),                         # axis out of range
])
def test_regression_slice_refuses_axes_onnx_refuses(starts, ends, axes):
    """Slice wrapped each axis with Python's ``%``, so four starts on a rank-1 input sliced axis
    0 four times in the interpreter while the FX code indexed four dims (IndexError)."""
    g = Graph("r")
    x = g.add_input("x", TensorType(torch.int64, (2,)))
    ins = [x, g.add_constant(torch.tensor(starts)), g.add_constant(torch.tensor(ends))]
    if axes is not None:
        ins.append(g.add_constant(torch.tensor(axes)))
    g.outputs = [g.create_node("onnx::Slice", ins).output]
    with pytest.raises(torchmdf.TorchMDFError, match="Slice"):
        run(g, torch.tensor([4, 5]))


def test_regression_pow_of_an_unknown_base_is_not_typed_by_its_exponent():
    """Shape inference typed Pow(base of unknown dtype, f32 exponent) f32 (the exponent's type);
    the base, a Loop's output, turned out f64 and the next inference raised "declared f32 but
    the op produces f64".  Mixed dtypes with an unknown one are left unknown (found by the long
    profile)."""
    from torchmdf.passes.infer_shapes import _mixed_dtype

    g = Graph("r")
    a = g.add_input("a", TensorType(None, ()))
    b = g.add_input("b", TensorType(torch.float32, ()))
    pw = g.create_node("onnx::Pow", [a, b])
    add = g.create_node("onnx::Add", [a, b])
    assert _mixed_dtype([a.type, b.type], pw) is None
    assert _mixed_dtype([a.type, b.type], add) is None
    assert _mixed_dtype([b.type, TensorType(torch.float64, ())], pw) == torch.float32
    # mdf::MatMul promotes as numpy: typed only when both dtypes are known
    mm = g.create_node("mdf::MatMul", [a, b])
    infer = registry.get("mdf::MatMul").shape_fn
    assert infer([a.type, b.type], {}, mm)[0].dtype is None
    assert infer([TensorType(torch.float64, (1,)), b.type], {}, mm)[0].dtype == torch.float64


def test_regression_softplus_module_through_the_fx_frontend():
    """``nn.Softplus`` was listed without a lowering in the FX frontend (UnsupportedOpError)."""
    from torchmdf.testing import check_roundtrip

    for m in (torch.nn.Softplus(), torch.nn.Softplus(beta=2.0, threshold=1.0)):
        check_roundtrip(m, (torch.randn(3, 4) * 3,), frontend="fx", onnx=False)


def test_regression_split_into_more_outputs_than_fit_gives_every_output():
    """Split(num_outputs=2) of a dim of 1 gave one tensor (torch.split's chunks) for a node of
    two outputs, so the MDF file it wrote could not be read back; ONNX (onnxruntime) gives
    n - 1 chunks of ceil(size / n) and a smaller, possibly empty, last one (long profile)."""
    g = Graph("r")
    x = g.add_input("x", TensorType(torch.float32, (1,)))
    node = g.create_node("onnx::Split", [x], {"num_outputs": 2}, num_outputs=2)
    g.outputs = list(node.outputs)
    case = GraphCase(g, [torch.tensor([3.0])])
    check_graph_backends(case, onnx=True)
    a, b = run(g, torch.tensor([3.0]))
    assert a.tolist() == [3.0] and b.shape == (0,)
    x7 = torch.arange(7.0)
    assert [t.numel() for t in registry.get("onnx::Split").run([x7], {"num_outputs": 3})] == [3, 3, 1]
    with pytest.raises(ValueError, match="negative last chunk"):
        registry.get("onnx::Split").run([torch.arange(5.0)], {"num_outputs": 4})


@pytest.mark.parametrize("sizes", [[0, 1], [1]])
def test_regression_split_by_constant_sizes_survives_an_mdf_file(sizes):
    """onnx::Split with its sizes as an input (no num_outputs attribute) was read back from an
    MDF file with an unknown number of results ("a multi-output function is indexed by a
    constant position"); the count is the constant sizes' length (long profile)."""
    g = Graph("fuzz")
    x = g.add_input("x0", TensorType(torch.float32, (1,)))
    n = g.create_node("onnx::Split", [x, g.add_constant(torch.tensor(sizes))], {}, num_outputs=len(sizes))
    g.outputs = [n.outputs[-1]]
    check_graph_backends(GraphCase(g, [torch.tensor([2.0])]), onnx=False)


def test_regression_gemm_of_integers_with_a_float_alpha_keeps_the_integer_type():
    """Gemm(int64, int64, alpha=0.5) computed float32 (typed int64); ONNX's T is the inputs'
    type (long profile)."""
    g = Graph("r")
    x = g.add_input("x", TensorType(torch.int64, (1, 2)))
    y = g.add_constant(torch.tensor([[3], [4]]))
    g.outputs = [g.create_node("onnx::Gemm", [x, y], {"alpha": 0.5}).output]
    check_graph_backends(GraphCase(g, [torch.tensor([[1, 2]])]), onnx=False)  # onnxruntime has no int64 Gemm
    assert run(g, torch.tensor([[1, 2]])).tolist() == [[5]]


def test_regression_split_of_one_result_through_fx():
    """A Split with one result gave its consumers the whole tuple in the FX code ("sum():
    argument 'input' must be Tensor, not tuple"; long profile)."""
    g = Graph("r")
    x = g.add_input("x", TensorType(torch.float32, (3,)))
    sp = g.create_node("onnx::Split", [x, g.add_constant(torch.tensor([3]))], {}, num_outputs=1)
    g.outputs = [g.create_node("onnx::ReduceSum", [sp.outputs[0]], {"keepdims": 0}).output]
    check_graph_backends(GraphCase(g, [torch.tensor([1.0, 2.0, 3.0])]), onnx=True)


def test_regression_an_empty_constant_keeps_its_shape_in_an_mdf_file():
    """A folded empty constant of shape (0, 1) was written as ``[]`` and read back as (0,);
    its shape is now in the parameter's torchmdf metadata (long profile)."""
    g = Graph("fuzz")
    x = g.add_input("x0", TensorType(torch.float32, ()))
    one = g.add_constant(torch.tensor(1.0))
    r = g.create_node("onnx::Range", [one, g.add_constant(torch.tensor(1.0)), g.add_constant(torch.tensor(1.0))])
    u = g.create_node("onnx::Unsqueeze", [r.output, g.add_constant(torch.tensor([1]))])
    g.outputs = [g.create_node("onnx::Abs", [x]).output, u.output]
    check_graph_backends(GraphCase(g, [torch.tensor(1.0)]), onnx=False)
    m = torchmdf.compile(g, target="mdf")
    lying = m.to_dict()
    node = next(n for n in lying["fuzz"]["graphs"]["fuzz"]["nodes"].values() if "parameters" in n
                and any("metadata" in p for p in n["parameters"].values()))
    param = next(p for p in node["parameters"].values() if "metadata" in p)
    assert param["metadata"]["torchmdf"]["shape"] == [0, 1]
    param["value"] = [1.0]  # a shape for an empty value, on a value that is not
    with pytest.raises(torchmdf.TorchMDFError, match="empty value"):
        torchmdf.compile(torchmdf.mdf.Model.from_dict(lying), target="fx")


def test_regression_a_loop_that_runs_zero_times_keeps_the_rank_of_its_scan_outputs():
    """A Loop with a trip count of 0 stacked its scan outputs as shape (0,) whatever the body
    output's rank: after infer_shapes typed the body output rank 1, the value computed rank 1
    for a type of rank 2 (long profile).  An unknown dim of the element is 0."""
    from torchmdf.ops.control_flow import _empty_scan

    assert _empty_scan(TensorType(torch.float32, (3,))).shape == (0, 3)
    assert _empty_scan(TensorType(torch.float32, ("n", 2))).shape == (0, 0, 2)
    assert _empty_scan(TensorType(torch.float32, None)).shape == (0,)


@pytest.mark.parametrize("op", ["onnx::ReduceSum", "onnx::ReduceProd", "onnx::ReduceSumSquare", "onnx::ReduceL1"])
def test_regression_integer_sums_keep_int32(op):
    """ReduceSum of int32 computed int64 (torch promotes integer sums); ONNX keeps T (long
    profile: ReduceSum(BitwiseNot(Cast(x, int32))))."""
    x = torch.tensor([[3, -4], [1, 2]], dtype=torch.int32)
    case = _one_op_case(op, x, torch.tensor([1]))
    check_graph_backends(case, onnx=False)
    assert run(case.graph, x).dtype == torch.int32
    assert torchmdf.compile(case.graph, target="fx", passes=["infer_shapes"])(x).dtype == torch.int32
