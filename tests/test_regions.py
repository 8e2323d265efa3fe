"""Regions in the IR core: nodes owning nested graphs (If, Loop, While), their scoping, use
lists across scopes, verifier, printer, clone, interpreter, the passes through them, and
nesting thousands deep without recursion."""

from __future__ import annotations

import pytest
import torch

from torchmdf.errors import VerificationError
from torchmdf.interpreter import run
from torchmdf.ir import Graph, TensorType
from torchmdf.passes import (
    DEFAULT_PIPELINE,
    Canonicalize,
    EliminateCommonSubexpressions,
    EliminateDeadCode,
    FoldConstants,
    InferShapes,
    PassManager,
)

F3 = TensorType(torch.float32, (3,))
B = TensorType(torch.bool, ())


def _if_graph() -> Graph:
    """y = relu(x) + 1 if c else x"""
    g = Graph("cond")
    c = g.add_input("c", B)
    x = g.add_input("x", F3)
    then, other = g.new_region("then_branch"), g.new_region("else_branch")
    node = g.create_node("onnx::If", [c], regions=[then, other], name="y")
    r = then.create_node("onnx::Relu", [x], name="r").output
    one = then.add_constant(torch.tensor(1.0), name="one")
    then.outputs = [then.create_node("onnx::Add", [r, one], name="r1").output]
    other.outputs = [x]
    g.outputs = [node.output]
    return g


def _loop_graph(trips: int | None, with_cond: bool, scans: bool = True) -> Graph:
    """ONNX Loop: v += 1 (carried); keep going while v < limit; scan output v * 2."""
    g = Graph("loop")
    v0 = g.add_input("v0", TensorType(torch.float32, ()))
    limit = g.add_input("limit", TensorType(torch.float32, ()))
    m = g.add_constant(torch.tensor(trips), name="M") if trips is not None else None
    cond0 = g.create_node("onnx::Less", [v0, limit], name="cond0").output if with_cond else None
    body = g.new_region("body")
    node = g.create_node("onnx::Loop", [m, cond0, v0], regions=[body], num_outputs=2 if scans else 1,
                         output_names=["v_final", "v_scan"] if scans else ["v_final"])
    body.add_input("i", TensorType(torch.int64, ()))
    body.add_input("cond_in", B)
    v = body.add_input("v", TensorType(torch.float32, ()))
    one = body.add_constant(torch.tensor(1.0), name="inc")
    v1 = body.create_node("onnx::Add", [v, one], name="v1").output
    keep = body.create_node("onnx::Less", [v1, limit], name="keep").output
    outs = [keep, v1]
    if scans:
        two = body.add_constant(torch.tensor(2.0), name="two")
        outs.append(body.create_node("onnx::Mul", [v1, two], name="twice").output)
    body.outputs = outs
    g.outputs = list(node.outputs)
    return g


def _while_graph() -> Graph:
    """torch.while_loop(lambda x, n: x.sum() < limit, lambda x, n: (x * 2, n + 1), (x, n))"""
    g = Graph("while")
    x = g.add_input("x", F3)
    n0 = g.add_input("n0", TensorType(torch.int64, ()))
    limit = g.add_input("limit", TensorType(torch.float32, ()))
    cond, body = g.new_region("cond"), g.new_region("body")
    node = g.create_node("torchmdf::While", [x, n0], regions=[cond, body], num_outputs=2,
                         output_names=["x_out", "n_out"])
    cx, _ = cond.add_input("cx", F3), cond.add_input("cn", TensorType(torch.int64, ()))
    s = cond.create_node("onnx::ReduceSum", [cx], {"keepdims": 0}, name="s").output
    cond.outputs = [cond.create_node("onnx::Less", [s, limit], name="go").output]
    bx, bn = body.add_input("bx", F3), body.add_input("bn", TensorType(torch.int64, ()))
    two, one = body.add_constant(torch.tensor(2.0), name="two"), body.add_constant(torch.tensor(1), name="one")
    body.outputs = [body.create_node("onnx::Mul", [bx, two], name="x2").output,
                    body.create_node("onnx::Add", [bn, one], name="n1").output]
    g.outputs = list(node.outputs)
    return g


# -- construction, scoping, use lists ------------------------------------------------------------------


def test_construction_and_walk():
    g = _if_graph()
    g.verify()
    node = next(iter(g))
    then, other = node.regions
    assert then.parent_node is node and then.parent_graph is g and then.root is g
    assert g.has_regions and not then.has_regions
    assert [n.op for n in g.walk()] == ["onnx::If", "onnx::Relu", "onnx::Add"]
    assert [r.name for r in g.graphs()] == ["cond", "then_branch", "else_branch"]
    x = g.inputs[1]
    # the use inside the region is on the outer value's use list; the else branch returns it
    assert [u.op for u in x.users()] == ["onnx::Relu"]
    assert x._returned_by == {other: 1}
    # names are unique across the nest
    names = [v.name for gr in g.graphs() for n in gr for v in n.outputs] + [p for gr in g.graphs()
                                                                             for p in gr.parameters]
    assert len(names) == len(set(names))


def test_rauw_and_remove_see_uses_inside_regions():
    g = _if_graph()
    x = g.inputs[1]
    node = next(iter(g))
    neg = g.create_node("onnx::Neg", [x], before=node, name="nx")
    x.replace_all_uses_with(neg.output)
    neg.replace_input_with(0, x)
    then, other = node.regions
    assert next(iter(then)).inputs[0] is neg.output and other.outputs[0] is neg.output
    assert x._returned_by == {} and neg.output._returned_by == {other: 1}
    g.verify()
    with pytest.raises(VerificationError, match="still used"):
        g.remove(neg)  # used inside the regions only
    # removing the If drops every use its regions made
    g.outputs = [x]
    g.remove(node)
    assert neg.output.uses() == [] and not neg.output._returned_by
    g.remove(neg)
    g.verify()


def test_regions_built_apart_are_renamed_when_attached():
    g = Graph()
    c = g.add_input("c", B)
    x = g.add_input("x", F3)
    then, other = Graph("then_branch"), Graph("else_branch")
    then.outputs = [then.create_node("onnx::Relu", [x], name="x").output]  # "x" is taken outside
    other.outputs = [x]
    node = g.create_node("onnx::If", [c], regions=[then, other])
    g.outputs = [node.output]
    g.verify()
    assert then.outputs[0].name != "x"


def test_topological_sort_orders_by_captured_values():
    g = _if_graph()
    node = next(iter(g))
    x = g.inputs[1]
    neg = g.create_node("onnx::Neg", [x], name="nx")  # after the If that will read it
    next(iter(node.regions[0])).replace_input_with(0, neg.output)
    with pytest.raises(VerificationError, match="does not enclose|not defined"):
        g.verify()
    g.topological_sort()
    g.verify()
    assert [n.op for n in g] == ["onnx::Neg", "onnx::If"]


# -- verifier ------------------------------------------------------------------------------------


def test_verifier_refuses_a_value_of_the_other_branch():
    g = _if_graph()
    node = next(iter(g))
    then, other = node.regions
    r = next(iter(then)).output
    other.create_node("onnx::Neg", [r], name="bad")
    with pytest.raises(VerificationError, match="defined in region 'then_branch'") as e:
        g.verify()
    assert "onnx::Neg" in str(e.value)  # located at the node


def test_verifier_refuses_a_region_value_used_after_the_node():
    g = _if_graph()
    r = next(iter(next(iter(g)).regions[0])).output
    g.create_node("onnx::Neg", [r], name="bad")
    with pytest.raises(VerificationError, match="does not enclose this node"):
        g.verify()


def test_verifier_refuses_region_output_count_mismatch():
    g = _if_graph()
    other = next(iter(g)).regions[1]
    other.outputs = [g.inputs[1], g.inputs[1]]
    with pytest.raises(VerificationError, match="returns 2 values but the If has 1 outputs") as e:
        g.verify()
    assert "onnx::If" in e.value.location


def test_verifier_refuses_bad_loop_arity():
    g = _loop_graph(3, False)
    body = next(iter(g)).regions[0]
    body.add_input("extra")
    with pytest.raises(VerificationError, match="takes 3 inputs"):
        g.verify()


# -- printer and clone ---------------------------------------------------------------------------


def test_printer_indents_regions():
    text = str(_if_graph())
    assert text == (
        "graph cond(%c: bool[], %x: f32[3]) {\n"
        "  %y: ?[*] = onnx::If(%c)\n"
        "    region then_branch() {\n"
        "      constant %one: f32[] = tensor(1.0)\n"
        "      %r: ?[*] = onnx::Relu(%x)\n"
        "      %r1: ?[*] = onnx::Add(%r, %one)\n"
        "      return %r1\n"
        "    }\n"
        "    region else_branch() {\n"
        "      return %x\n"
        "    }\n"
        "  return %y\n"
        "}")


def test_clone_is_independent_and_remaps_captured_values():
    g = _loop_graph(4, True)
    h = g.clone()
    h.verify()
    assert str(h) == str(g)
    hbody = next(n for n in h if n.regions).regions[0]
    keep = next(n for n in hbody if n.op == "onnx::Less")
    assert keep.inputs[1] is h.inputs[1]  # the captured limit is the copy's input
    keep.set_inputs([keep.inputs[0], keep.inputs[0]])
    assert str(h) != str(g)
    g.verify()
    assert g.inputs[1].num_uses == 2 and h.inputs[1].num_uses == 1


# -- interpreter ---------------------------------------------------------------------------------


def test_interpreter_if_runs_the_taken_branch():
    g = _if_graph()
    x = torch.tensor([-1.0, 2.0, 3.0])
    assert torch.equal(run(g, torch.tensor(True), x), torch.tensor([1.0, 3.0, 4.0]))
    assert torch.equal(run(g, torch.tensor(False), x), x)


def test_interpreter_if_does_not_run_the_other_branch():
    g = _if_graph()
    other = next(iter(g)).regions[1]
    bad = other.create_node("onnx::Reshape", [g.inputs[1], other.add_constant(torch.tensor([7]))])
    other.outputs = [bad.output]
    assert torch.equal(run(g, torch.tensor(True), torch.zeros(3)), torch.ones(3))
    with pytest.raises(Exception, match="Reshape"):
        run(g, torch.tensor(False), torch.zeros(3))


def test_interpreter_loop_fixed_trip_count_with_scans():
    g = _loop_graph(3, False)
    final, scan = run(g, torch.tensor(0.0), torch.tensor(1.0))  # cond ignored: no cond input
    assert final.item() == 3.0
    assert scan.tolist() == [2.0, 4.0, 6.0]


def test_interpreter_loop_data_dependent_condition():
    g = _loop_graph(None, True)
    final, scan = run(g, torch.tensor(0.0), torch.tensor(5.0))
    assert final.item() == 5.0 and scan.tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]
    final, scan = run(g, torch.tensor(9.0), torch.tensor(5.0))  # no iteration at all
    assert final.item() == 9.0 and scan.shape == (0,)
    g2 = _loop_graph(2, True, scans=False)  # both: whichever stops first
    assert run(g2, torch.tensor(0.0), torch.tensor(5.0)).item() == 2.0


def test_interpreter_while_data_dependent():
    g = _while_graph()
    x, n = run(g, torch.tensor([1.0, 1.0, 1.0]), torch.tensor(0), torch.tensor(20.0))
    assert x.tolist() == [8.0, 8.0, 8.0] and n.item() == 3
    x, n = run(g, torch.tensor([1.0, 1.0, 1.0]), torch.tensor(0), torch.tensor(2.0))
    assert n.item() == 0


# -- passes --------------------------------------------------------------------------------------


def test_dce_inside_regions_and_purity():
    g = _if_graph()
    node = next(iter(g))
    then = node.regions[0]
    x = g.inputs[1]
    dead_outer = g.create_node("onnx::Neg", [x], before=node, name="dead_outer")
    then.create_node("onnx::Abs", [dead_outer.output], name="dead_inner")
    PassManager([EliminateDeadCode()]).run(g)
    assert [n.op for n in g.walk()] == ["onnx::If", "onnx::Relu", "onnx::Add"]
    # an If nobody reads goes, unless a region is impure
    noise = then.create_node("onnx::RandomNormalLike", [x], name="noise")
    then.outputs = [noise.output]
    g.outputs = [x]
    PassManager([EliminateDeadCode()]).run(g)
    assert [n.op for n in g] == ["onnx::If"]
    then.outputs = [x]
    then.remove(noise)
    PassManager([EliminateDeadCode()]).run(g)
    assert len(g) == 0 and not g.parameters


def test_cse_is_scoped():
    g = _if_graph()
    node = next(iter(g))
    then, other = node.regions
    x = g.inputs[1]
    outer = g.create_node("onnx::Relu", [x], before=node, name="outer_relu")
    g.outputs = [node.output, outer.output]
    # the else branch computes the same relu as the then branch: not merged across branches
    other_relu = other.create_node("onnx::Relu", [x], name="else_relu")
    other.outputs = [other_relu.output]
    PassManager([EliminateCommonSubexpressions()]).run(g)
    # both branch relus reuse the outer one (defined before the If); nothing else merged
    assert [n.op for n in then] == ["onnx::Add"] and next(iter(then)).inputs[0] is outer.output
    assert len(other) == 0 and other.outputs[0] is outer.output


def test_cse_does_not_merge_across_branches():
    g = _if_graph()
    node = next(iter(g))
    then, other = node.regions
    x = g.inputs[1]
    other.outputs = [other.create_node("onnx::Relu", [x], name="else_relu").output]
    PassManager([EliminateCommonSubexpressions()]).run(g)
    assert [n.op for n in other] == ["onnx::Relu"] and [n.op for n in then] == ["onnx::Relu", "onnx::Add"]


def test_fold_inside_regions_and_constant_if_is_inlined():
    g = _if_graph()
    node = next(iter(g))
    then = node.regions[0]
    k = then.add_constant(torch.tensor(2.0), name="k")
    k2 = then.create_node("onnx::Mul", [k, k], name="k2").output
    add = next(n for n in then if n.op == "onnx::Add")
    add.replace_input_with(1, k2)
    PassManager([FoldConstants()]).run(g)
    assert [n.op for n in then] == ["onnx::Relu", "onnx::Add"]  # Mul folded inside the branch
    # an If on a constant condition becomes its taken branch
    g.inputs[0].replace_all_uses_with(g.add_constant(torch.tensor(True), name="yes"))
    PassManager([FoldConstants(), EliminateDeadCode()]).run(g)
    assert [n.op for n in g] == ["onnx::Relu", "onnx::Add"]
    assert torch.equal(run(g, torch.tensor(False), torch.tensor([-1.0, 0.0, 1.0])),
                       torch.tensor([4.0, 4.0, 5.0]))


def test_constant_false_if_inlines_else_returning_outer_value():
    g = _if_graph()
    g.inputs[0].replace_all_uses_with(g.add_constant(torch.tensor(False), name="no"))
    PassManager([FoldConstants()]).run(g)
    assert len(g) == 0 and g.outputs[0] is g.inputs[1]


def test_canonicalize_inside_regions():
    g = _if_graph()
    then = next(iter(g)).regions[0]
    x = g.inputs[1]
    relu = next(iter(then))
    a = then.create_node("aten::relu", [x], before=relu, name="aten_relu")
    a.output.type = F3
    relu.replace_input_with(0, a.output)
    PassManager([Canonicalize()]).run(g)
    assert [n.op for n in then] == ["onnx::Relu", "onnx::Relu", "onnx::Add"]


def test_infer_shapes_through_if():
    g = _if_graph()
    PassManager([InferShapes()]).run(g)
    assert str(g.outputs[0].type) == "f32[3]"
    other = next(iter(g)).regions[1]
    wide = g.add_input("w", TensorType(torch.float32, (5,)))
    other.outputs = [wide]
    PassManager([InferShapes()]).run(g)
    assert g.outputs[0].type == TensorType(torch.float32, ("y_0",))


def test_infer_shapes_loop_carried_value_that_grows():
    """A loop that appends to a tensor: its carried dim becomes a symbol; the scan output
    gets the trip count in front; types inside the body describe every iteration."""
    g = Graph("grow")
    seq = g.add_input("seq", TensorType(torch.float32, (1, 4)))
    m = g.add_constant(torch.tensor(5), name="M")
    body = g.new_region("body")
    node = g.create_node("onnx::Loop", [m, None, seq], regions=[body], num_outputs=2,
                         output_names=["all", "rows"])
    body.add_input("i", TensorType(torch.int64, ()))
    cond_in = body.add_input("cond_in", B)
    s = body.add_input("s")
    bigger = body.create_node("onnx::Concat", [s, seq], {"axis": 0}, name="bigger").output
    body.outputs = [cond_in, bigger, body.create_node("onnx::Relu", [seq], name="row").output]
    g.outputs = list(node.outputs)
    result = PassManager([InferShapes()], fixed_point=True).run(g)
    assert result.modified
    assert node.outputs[0].type == TensorType(torch.float32, ("all_0", 4))
    assert s.type == TensorType(torch.float32, ("all_0", 4))
    assert node.outputs[1].type == TensorType(torch.float32, (5, 1, 4))
    assert bigger.type.shape is not None and bigger.type.shape[0] != 2  # not the first iteration's
    assert not PassManager([InferShapes()]).run(g).modified  # stable
    out, rows = run(g, torch.ones(1, 4))
    assert out.shape == (6, 4) and rows.shape == (5, 1, 4)


def test_infer_shapes_while():
    g = _while_graph()
    PassManager([InferShapes()]).run(g)
    assert [str(o.type) for o in g.outputs] == ["f32[3]", "i64[]"]


def test_default_pipeline_through_regions():
    g = _loop_graph(None, True)
    expected = run(g, torch.tensor(0.0), torch.tensor(4.0))
    PassManager(DEFAULT_PIPELINE).run(g)
    got = run(g, torch.tensor(0.0), torch.tensor(4.0))
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


# -- depth ---------------------------------------------------------------------------------------


def _deep(depth: int) -> Graph:
    """``depth`` nested regions, alternating If (then: deeper, else: x) and Loop (one trip,
    body: deeper); the innermost computes relu(x)."""
    g = Graph("deep")
    c = g.add_input("c", B)
    x = g.add_input("x", TensorType(torch.float32, (2,)))
    one = g.add_constant(torch.tensor(1), name="one")
    chain = []
    cur = g
    for level in range(depth):
        if level % 2 == 0:
            then, other = cur.new_region("then"), cur.new_region("else")
            node = cur.create_node("onnx::If", [c], regions=[then, other])
            other.outputs = [x]
            chain.append((cur, node, None))
            cur = then
        else:
            body = cur.new_region("body")
            node = cur.create_node("onnx::Loop", [one, None, x], regions=[body])
            body.add_input("i", TensorType(torch.int64, ()))
            cond_in = body.add_input("cond_in", B)
            body.add_input("v", TensorType(torch.float32, (2,)))
            chain.append((cur, node, cond_in))
            cur = body
    inner = cur.create_node("onnx::Relu", [x]).output
    cond_of = {node: cond_in for _, node, cond_in in chain}  # a loop body returns (cond, value)
    for graph, node, _ in reversed(chain):
        owner = graph.parent_node
        graph.outputs = [cond_of[owner], node.output] if cond_of.get(owner) is not None else [node.output]
    last = chain[-1][1]
    cur.outputs = [cond_of[last], inner] if cond_of[last] is not None else [inner]
    return g


def test_three_thousand_nested_regions_without_recursion():
    g = _deep(3000)
    g.verify()
    assert sum(1 for _ in g.walk()) == 3001
    text = str(g)
    assert text.count("region then()") == 1500 and text.count("region body(") == 1500
    h = g.clone()
    h.verify()
    assert str(h) == text
    x = torch.tensor([-1.0, 2.0])
    assert torch.equal(run(g, torch.tensor(True), x), torch.tensor([0.0, 2.0]))
    assert torch.equal(run(g, torch.tensor(False), x), x)
    PassManager(DEFAULT_PIPELINE).run(g)
    assert g.outputs[0].type == TensorType(torch.float32, (2,))
    assert torch.equal(run(g, torch.tensor(True), x), torch.tensor([0.0, 2.0]))
    # a constant condition folds the whole nest of Ifs away
    g.inputs[0].replace_all_uses_with(g.add_constant(torch.tensor(True), name="yes"))
    PassManager(DEFAULT_PIPELINE).run(g)
    assert "onnx::If" not in {n.op for n in g.walk()}
    assert torch.equal(run(g, torch.tensor(True), x), torch.tensor([0.0, 2.0]))


def test_dce_keeps_an_outer_value_a_region_returns():
    g = _if_graph()
    node = next(iter(g))
    neg = g.create_node("onnx::Neg", [g.inputs[1]], before=node, name="nx")
    node.regions[1].outputs = [neg.output]
    PassManager([EliminateDeadCode()]).run(g)
    assert [n.op for n in g] == ["onnx::Neg", "onnx::If"]
    assert torch.equal(run(g, torch.tensor(False), torch.ones(3)), -torch.ones(3))


def test_pass_regions_order_and_contract():
    from torchmdf.errors import PassError
    from torchmdf.ops.control_flow import node_is_pure
    from torchmdf.passes import Pass, PassResult

    g = _if_graph()
    seen = []

    class Names(Pass):
        regions = "inner_first"

        def call(self, graph):
            seen.append(graph.name)
            return PassResult(graph, False)

    Names()(g)
    assert seen == ["else_branch", "then_branch", "cond"]
    seen.clear()
    Names.regions = "outer_first"
    Names()(g)
    assert seen == ["cond", "then_branch", "else_branch"]

    class Replaces(Pass):
        regions = "inner_first"

        def call(self, graph):
            return PassResult(Graph(), False)

    with pytest.raises(PassError, match="must return"):
        Replaces()(g)
    node = next(iter(g))
    assert node_is_pure(node)
    node.regions[0].create_node("onnx::RandomNormalLike", [g.inputs[1]])
    assert not node_is_pure(node)
