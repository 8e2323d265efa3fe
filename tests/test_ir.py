"""IR invariants: construction, mutation, verification, printing, deep graphs."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchmdf.errors import VerificationError
from torchmdf.interpreter import run
from torchmdf.ir import Graph, Node, Provenance, TensorType


def _chain(n: int) -> Graph:
    g = Graph("chain")
    v = g.add_input("x", TensorType(torch.float32, (4,)))
    for _ in range(n):
        v = g.create_node("onnx::Relu", [v]).output
    g.outputs = [v]
    return g


def test_build_verify_print():
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, ("batch", 3)))
    w = g.add_parameter("fc.weight", torch.ones(4, 3))
    n = g.create_node("onnx::Gemm", [x, w], {"transB": 1}, provenance=Provenance(module_path="fc", source="m.py:3"))
    g.outputs = [n.output]
    g.verify()
    text = str(g)
    assert "graph main(%x: f32[batch,3])" in text
    assert "onnx::Gemm(%x, %fc.weight) {transB=1}  # module 'fc' (m.py:3)" in text
    assert str(g) == text  # stable


def test_use_lists_follow_mutations():
    g = Graph()
    x = g.add_input("x")
    a = g.create_node("onnx::Relu", [x])
    b = g.create_node("onnx::Add", [a.output, a.output])
    assert a.output.uses() == [(b, 0), (b, 1)]
    c = g.create_node("onnx::Neg", [x], before=b)
    a.output.replace_all_uses_with(c.output)
    assert a.output.uses() == [] and c.output.uses() == [(b, 0), (b, 1)]
    g.outputs = [b.output]
    g.remove(a)
    g.verify()
    assert [n.op for n in g] == ["onnx::Neg", "onnx::Add"]


def test_remove_used_node_is_refused():
    g = _chain(2)
    first = next(iter(g))
    with pytest.raises(VerificationError, match="still used"):
        g.remove(first)


def test_verifier_names_the_node_and_provenance():
    g = Graph()
    x = g.add_input("x")
    a = g.create_node("onnx::Relu", [x], provenance=Provenance(module_path="block.act", source="net.py:7"))
    b = g.create_node("onnx::Neg", [a.output], provenance=Provenance(module_path="head", source="net.py:9"))
    g.outputs = [b.output]
    # break the order behind the IR's back: move b before a
    g._head, a._prev, a._next, b._prev, b._next = b, b, None, None, a
    g._tail = a
    with pytest.raises(VerificationError) as e:
        g.verify()
    assert "head" in str(e.value) and "net.py:9" in str(e.value) and "before it is defined" in str(e.value)


def test_verifier_catches_stale_use_list():
    g = _chain(3)
    n = list(g)[1]
    n._inputs = (g.inputs[0],)  # bypass the mutator
    with pytest.raises(VerificationError, match="use list"):
        g.verify()


def test_topological_sort_and_cycle():
    g = Graph()
    x = g.add_input("x")
    a = Node("onnx::Relu", [x])
    b = Node("onnx::Neg", [a.outputs[0]])
    g.append(b)
    g.append(a)
    g.outputs = [b.outputs[0]]
    with pytest.raises(VerificationError):
        g.verify()
    g.topological_sort()
    g.verify()
    assert [n.op for n in g] == ["onnx::Relu", "onnx::Neg"]


def test_deep_chain_has_no_recursion():
    n = 3 * sys.getrecursionlimit() + 10
    g = _chain(n)
    g.verify()
    text = str(g)
    assert text.count("onnx::Relu") == n
    c = g.clone()
    c.verify()
    c.topological_sort()
    c.verify()
    x = torch.randn(4)
    assert torch.equal(run(c, x), torch.relu(x))


def test_clone_is_independent():
    g = _chain(3)
    c = g.clone()
    c.remove(list(c)[-1], safe=False)
    g.verify()
    assert len(g) == 3 and len(c) == 2


def test_iteration_survives_removal_of_current_node():
    g = _chain(5)
    g.outputs = [g.inputs[0]]
    seen = 0
    for node in g.reversed():
        g.remove(node)
        seen += 1
    assert seen == 5 and len(g) == 0
    g.verify()


# -- random DAGs ------------------------------------------------------------------------------

_BIN = ["onnx::Add", "onnx::Mul", "onnx::Sub"]
_UN = ["onnx::Relu", "onnx::Neg", "onnx::Tanh"]


@st.composite
def dags(draw):
    g = Graph("rand")
    vals = [g.add_input(f"x{i}", TensorType(torch.float32, (3,))) for i in range(draw(st.integers(1, 3)))]
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.booleans()):
            op = draw(st.sampled_from(_BIN))
            ins = [draw(st.sampled_from(vals)), draw(st.sampled_from(vals))]
        else:
            op = draw(st.sampled_from(_UN))
            ins = [draw(st.sampled_from(vals))]
        vals.append(g.create_node(op, ins).output)
    g.outputs = [vals[-1]] + draw(st.lists(st.sampled_from(vals), max_size=2))
    return g


@given(dags(), st.data())
def test_random_dag_mutations_keep_invariants(g, data):
    g.verify()
    inputs = [torch.randn(3) for _ in g.inputs]
    before = run(g, *inputs)
    printed = str(g)
    assert str(g) == printed
    assert str(g.clone()) == printed
    nodes = list(g)
    for _ in range(data.draw(__import__("hypothesis").strategies.integers(0, 5))):
        nodes = list(g)
        if not nodes:
            break
        kind = data.draw(st.sampled_from(["identity_insert", "dce", "swap_commutative"]))
        n = data.draw(st.sampled_from(nodes))
        if kind == "identity_insert":
            # insert an Identity after n and route every use through it
            ident = g.create_node("onnx::Identity", [n.outputs[0]], after=n)
            for user, i in n.outputs[0].uses():
                if user is not ident:
                    user.replace_input_with(i, ident.output)
            g.outputs = [ident.output if o is n.outputs[0] else o for o in g.outputs]
        elif kind == "dce":
            from torchmdf.passes import EliminateDeadCode

            EliminateDeadCode()(g)
        elif n.op in ("onnx::Add", "onnx::Mul"):
            a, b = n.inputs
            n.set_inputs([b, a])
        g.verify()
    after = run(g, *inputs)
    if isinstance(before, list):
        for x, y in zip(before, after):
            assert torch.allclose(x, y)
    else:
        assert torch.allclose(before, after)


def test_clone_keeps_input_meta_and_remaps_meta_values():
    g = _chain(2)
    g.inputs[0].meta["default"] = torch.ones(4)
    g.meta["all_outputs"] = {"out": g.outputs[0]}
    c = g.clone()
    assert torch.equal(c.inputs[0].meta["default"], torch.ones(4))
    assert c.meta["all_outputs"]["out"] is c.outputs[0]


def test_compiling_an_mdf_lowered_graph_keeps_input_defaults():
    import torchmdf
    from torchmdf.examples import example_path

    g = torchmdf.lower(str(example_path("abc.json")))
    gm = torchmdf.compile(g, target="fx")  # compile clones the graph it is given
    ref = torchmdf.compile(str(example_path("abc.json")), target="fx")
    torch.testing.assert_close(gm()["C.out_port"], ref()["C.out_port"])
