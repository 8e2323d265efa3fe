"""The pass manager: ordering, fixed point, verify_each, instrumentation, named passes."""

from __future__ import annotations

import pytest
import torch

from torchmdf.errors import PassError, VerificationError
from torchmdf.ir import Graph, TensorType
from torchmdf.passes import (
    EliminateCommonSubexpressions,
    EliminateDeadCode,
    Instrumentation,
    Pass,
    PassManager,
    PassResult,
    available_passes,
    get_pass,
    graph_pass,
)


def _graph() -> Graph:
    g = Graph()
    x = g.add_input("x", TensorType(torch.float32, (3,)))
    a = g.create_node("onnx::Relu", [x]).output
    b = g.create_node("onnx::Relu", [x]).output  # duplicate of a
    c = g.create_node("onnx::Add", [a, b]).output
    g.create_node("onnx::Neg", [c])  # dead
    g.outputs = [c]
    return g


def test_order_is_kept_and_recorded():
    calls = []

    class Rec(Pass):
        def __init__(self, tag):
            self.tag = tag
            self.name = f"rec_{tag}"

        def call(self, graph):
            calls.append(self.tag)
            return PassResult(graph, False)

    inst = Instrumentation()
    PassManager([Rec("a"), Rec("b"), Rec("c")], instrument=inst).run(_graph())
    assert calls == ["a", "b", "c"]
    assert [r.name for r in inst.records] == ["rec_a", "rec_b", "rec_c"]


def test_dce_and_cse():
    g = _graph()
    res = PassManager([EliminateDeadCode(), EliminateCommonSubexpressions(), EliminateDeadCode()]).run(g)
    assert res.modified
    assert [n.op for n in g] == ["onnx::Relu", "onnx::Add"]
    add = list(g)[-1]
    assert add.inputs[0] is add.inputs[1]


def test_fixed_point_iterates_until_stable():
    counter = {"n": 0}

    @graph_pass
    def peel_one_neg(graph):
        # removes one trailing Neg per call: needs several rounds
        for n in graph:
            if n.op == "onnx::Neg":
                n.output.replace_all_uses_with(n.inputs[0])
                graph.remove(n)
                counter["n"] += 1
                return True
        return False

    g = Graph()
    v = g.add_input("x")
    for _ in range(4):
        v = g.create_node("onnx::Neg", [v]).output
    g.outputs = [v]
    res = PassManager([peel_one_neg], fixed_point=True).run(g)
    assert res.modified and counter["n"] == 4 and len(g) == 0


def test_fixed_point_limit_is_an_error():
    @graph_pass
    def always(graph):
        return True

    with pytest.raises(PassError, match="fixed point"):
        PassManager([always], fixed_point=True, max_iterations=3).run(_graph())


def test_verify_each_blames_the_broken_pass():
    class Breaker(Pass):
        name = "breaker"

        def call(self, graph):
            n = next(iter(graph))
            n._inputs = (None,)  # corrupt the use lists behind the IR's back
            return PassResult(graph, True)

    with pytest.raises(VerificationError, match="after pass breaker"):
        PassManager([Breaker()], verify_each=True).run(_graph())
    PassManager([Breaker()], verify_each=False).run(_graph())  # not checked: no error


def test_instrumentation_times_and_dumps(tmp_path):
    inst = Instrumentation(dump_dir=str(tmp_path))
    PassManager(["eliminate_dead_code", "eliminate_common_subexpressions"], instrument=inst).run(_graph())
    rep = inst.report()
    assert "eliminate_dead_code" in rep and "total" in rep
    assert all(r.seconds >= 0 for r in inst.records)
    dumps = sorted(p.name for p in tmp_path.iterdir())
    assert dumps == ["01_eliminate_dead_code.ir", "02_eliminate_common_subexpressions.ir"]
    assert "onnx::Neg" not in (tmp_path / dumps[0]).read_text()


def test_named_passes_and_unknown_name():
    assert {"eliminate_dead_code", "eliminate_common_subexpressions"} <= set(available_passes())
    assert isinstance(get_pass("eliminate_dead_code"), EliminateDeadCode)
    with pytest.raises(PassError, match="unknown pass 'nope'"):
        get_pass("nope")


def test_registered_function_pass_by_name():
    @graph_pass("count_nodes_test")
    def count(graph):
        graph.metadata["count"] = len(graph)
        return False

    g = _graph()
    PassManager(["count_nodes_test"]).run(g)
    assert g.metadata["count"] == 4


def test_dce_keeps_impure_ops():
    g = Graph()
    x = g.add_input("x")
    g.create_node("aten::rand_like", [x])  # random: has an effect on the RNG
    g.outputs = [x]
    EliminateDeadCode()(g)
    assert len(g) == 1
