"""ACT-R models (chunks, not tensors) evaluated on Python values: the helpers against
modeci_mdf's ccm-based ones, the corpus's two ACT-R models evaluation by evaluation against
modeci_mdf, the reference's script loop through the drop-in EvaluableGraph, and the tensor paths'
located refusal."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from fuzz_profiles import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import torchmdf
from conftest import REPO
from torchmdf.execution_engine import EvaluableGraph
from torchmdf.mdf import actr
from torchmdf.mdf.functions import STANDARD_FUNCTIONS
from torchmdf.mdf.symbolic import SymbolicGraph, is_symbolic

ACTR_DIR = REPO / "tests" / "fixtures" / "mdf_corpus" / "ACT-R"
FILES = ["count.json", "count.yaml", "addition.json", "addition.yaml"]


def _plain(v):
    """modeci_mdf's values as Python values (it turns lists into numpy arrays at input ports)."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()] if v.dtype == object or v.ndim else v.item()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _run_script_loop(eg_cls, graph, limit=50):
    """The reference's ACT-R example loop (examples/ACT-R/count.py): evaluate, read the
    termination flag, feed the fired production's goal and retrieval back in."""
    eg = eg_cls(graph=graph, verbose=False)
    trace, term, goal, retrieval = [], False, {}, {}
    while not term:
        assert len(trace) < limit, "did not terminate"
        eg.evaluate(initializer={"goal_input": goal, "dm_input": retrieval})
        ports = {f"{nid}.{pid}": _plain(o.curr_value) for nid, en in eg.enodes.items()
                 for pid, o in en.evaluable_outputs.items()}
        trace.append(ports)
        term = eg.enodes["check_termination"].evaluable_outputs["check_output"].curr_value
        goal = eg.enodes["fire_production"].evaluable_outputs["fire_prod_output_to_goal"].curr_value
        retrieval = eg.enodes["fire_production"].evaluable_outputs["fire_prod_output_to_retrieval"].curr_value
    return trace, _plain(eg.enodes["goal_buffer"].evaluable_outputs["goal_output"].curr_value)


@pytest.mark.parametrize("name", FILES)
def test_actr_models_match_modeci_mdf_evaluation_by_evaluation(name, capsys):
    mdf = pytest.importorskip("modeci_mdf.utils")
    from modeci_mdf.execution_engine import EvaluableGraph as RefGraph

    ref_graph = mdf.load_mdf(str(ACTR_DIR / name)).graphs[0]
    random.seed(0)
    ref, ref_goal = _run_script_loop(RefGraph, ref_graph)
    capsys.readouterr()  # modeci_mdf prints every input it sets
    graph = torchmdf.mdf.load(ACTR_DIR / name).graphs[0]
    random.seed(0)
    ours, goal = _run_script_loop(EvaluableGraph, graph)
    assert len(ours) == len(ref) >= 5
    for k, (a, b) in enumerate(zip(ours, ref)):
        # procedural_memory's productions: the reference's match_production writes "bindings"
        # into the parameter's dicts, torchmdf's helpers change nothing (see torchmdf.mdf.actr)
        a.pop("procedural_memory.pm_output")
        b.pop("procedural_memory.pm_output")
        assert a == b, f"evaluation {k + 1} differs"
    assert goal == ref_goal
    final = {"count": "four", "addition": "seven"}[name.split(".")[0]]
    assert final in goal.values()


def test_productions_parameter_is_not_changed_and_reads_as_in_the_file():
    m = torchmdf.mdf.load(ACTR_DIR / "count.json")
    sg = SymbolicGraph(m)
    before = copy.deepcopy(m.graphs[0].get_node("procedural_memory").get_parameter("productions").value)
    goal = retrieval = {}
    for _ in range(3):
        sg.evaluate({"goal_input": goal, "dm_input": retrieval})
        goal = sg.value("fire_production", "port", "fire_prod_output_to_goal")
        retrieval = sg.value("fire_production", "port", "fire_prod_output_to_retrieval")
    assert sg.value("procedural_memory", "port", "pm_output") == before
    assert m.graphs[0].get_node("procedural_memory").get_parameter("productions").value == before


def test_tensor_paths_refuse_actr_models_with_a_located_hint():
    m = torchmdf.mdf.load(ACTR_DIR / "addition.json")
    assert is_symbolic(m.graphs[0])
    for call in (lambda: torchmdf.simulate(m, steps=2), lambda: torchmdf.compile(m, target="fx")):
        with pytest.raises(torchmdf.TorchMDFError, match="ACT-R chunks") as e:
            call()
        assert "addition.json" in str(e.value) and "EvaluableGraph" in str(e.value)


def test_helper_names_and_arguments_are_the_function_tables():
    import inspect

    table = {n: f.arguments for n, f in STANDARD_FUNCTIONS.items() if f.kind == "actr"}
    assert set(actr.ACTR_HELPERS) == set(table)
    for name, fn in actr.ACTR_HELPERS.items():
        assert tuple(inspect.signature(fn).parameters) == table[name], name


def test_bad_values_are_located_errors():
    m = torchmdf.mdf.load(ACTR_DIR / "count.json")
    node = m.graphs[0].get_node("declarative_memory")
    node.get_parameter("chunk_types").value = {"count-from": ["start"]}  # "number" missing
    sg = SymbolicGraph(m)
    with pytest.raises(torchmdf.TorchMDFError) as e:
        sg.evaluate({"goal_input": {}, "dm_input": {"buffer": "retrieval", "ISA": "number", "number": "two"}})
    msg = str(e.value)
    assert "node 'declarative_memory'" in msg and "retrieve_chunk" in msg and "'number'" in msg
    with pytest.raises(torchmdf.TorchMDFError, match="unknown text"):
        actr.retrieve_chunk({"b": "r", "ISA": "n", "x": "a+b"}, [{"ISA": "n", "x": "y"}], {"n": ["x"]})
    with pytest.raises(torchmdf.TorchMDFError, match="must be text"):
        actr.chunk_to_string({"ISA": 3})


def test_matching_work_is_limited():
    from torchmdf.limits import override

    m = torchmdf.mdf.load(ACTR_DIR / "count.json")
    node = m.graphs[0].get_node("declarative_memory")
    node.get_parameter("chunks").value = [{"name": str(i), "ISA": "number", "number": str(i), "next": str(i + 1)}
                                          for i in range(2000)]
    sg = SymbolicGraph(m)
    with override(max_schedule_work=10_000), pytest.raises(torchmdf.TorchMDFError, match="slot comparisons"):
        sg.evaluate({"goal_input": {}, "dm_input": {"buffer": "retrieval", "ISA": "number", "number": "1999"}})


def test_expressions_compare_chunks_and_refuse_numeric_calls():
    from torchmdf.mdf import Graph, Model, Node, OutputPort, Parameter

    node = Node(id="n", parameters=[Parameter(id="c", value={"ISA": "x"}),
                                    Parameter(id="e", value="c if c != {} else 0"),
                                    Parameter(id="bad", value="exp(c)")],
                output_ports=[OutputPort(id="o", value="e")])
    sg = SymbolicGraph(Model(id="m", graphs=[Graph(id="g", nodes=[node])]))
    with pytest.raises(torchmdf.TorchMDFError, match="a call of 'exp'") as e:
        sg.evaluate()
    assert "parameter 'bad'" in str(e.value)
    node.parameters.pop()
    sg = SymbolicGraph(Model(id="m", graphs=[Graph(id="g", nodes=[node])]))
    sg.evaluate()
    assert sg.value("n", "port", "o") == {"ISA": "x"}
    assert torchmdf.mdf.expressions.to_source(torchmdf.mdf.expressions.parse_expression("a == {}")) == "a == {}"


# -- the helpers against modeci_mdf's, on random chunks and productions -----------------------------

WORDS = st.sampled_from(["one", "two", "three", "nil", "x-1", "a.b"])
SLOTS = ["s1", "s2", "s3"]


@st.composite
def chunk_sets(draw):
    types = {"t": SLOTS, "u": SLOTS[:2]}
    chunks = []
    for i in range(draw(st.integers(0, 6))):
        isa = draw(st.sampled_from(["t", "u"]))
        c = {"name": f"c{i}", "ISA": isa}
        for s in types[isa]:
            c[s] = draw(WORDS)
        chunks.append(c)
    return chunks, types


SLOT_VALUES = st.one_of(WORDS, st.sampled_from(["=v", "=w", "-=v", "=v1"]),
                        WORDS.map(lambda w: "!" + w))


@st.composite
def patterns(draw, buffer):
    isa = draw(st.sampled_from(["t", "u"]))
    p = {"buffer": buffer, "ISA": isa}
    for s in SLOTS[:draw(st.integers(0, 3))]:
        p[s] = draw(SLOT_VALUES)
    return p


@settings(max_examples=examples(60))
@given(chunk_sets(), patterns("retrieval"))
def test_retrieve_chunk_matches_modeci_mdf(cs, pattern):
    ref = pytest.importorskip("modeci_mdf.functions.actr")
    chunks, types = cs
    try:
        want = ref.retrieve_chunk(copy.deepcopy(pattern), copy.deepcopy(chunks), types)
    except (KeyError, TypeError, IndexError):
        with pytest.raises(torchmdf.TorchMDFError):
            actr.retrieve_chunk(pattern, chunks, types)
        return
    assert actr.retrieve_chunk(pattern, chunks, types) == want


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(patterns("goal"), st.one_of(st.none(), patterns("retrieval")), patterns("goal")),
                max_size=4),
       chunk_sets(), chunk_sets())
def test_production_matching_and_firing_match_modeci_mdf(rules, goals, retrievals):
    ref = pytest.importorskip("modeci_mdf.functions.actr")
    prods = [{"name": f"p{i}", "lhs": [g] + ([r] if r else []), "rhs": [rhs]} for i, (g, r, rhs) in enumerate(rules)]
    goal = goals[0][0] if goals[0] else {"ISA": "t", "s1": "one"}
    retrieval = retrievals[0][0] if retrievals[0] else {}
    goal = {k: v for k, v in goal.items() if k != "name"}
    retrieval = {k: v for k, v in retrieval.items() if k != "name"}
    want = ref.pattern_matching_function(copy.deepcopy(prods), dict(goal), dict(retrieval))
    got = actr.pattern_matching_function(prods, goal, retrieval)
    assert got == want
    for p in got:
        assert actr.update_goal(p) == ref.update_goal(copy.deepcopy(p))
        assert actr.update_retrieval(p) == ref.update_retrieval(copy.deepcopy(p))
        assert actr.change_goal(actr.update_goal(p), goal) == ref.change_goal(ref.update_goal(copy.deepcopy(p)),
                                                                              dict(goal))
    assert actr.check_termination(actr.conflict_resolution_function([])) is True


def test_models_with_dict_valued_bodies_are_not_chunk_models():
    """Regression: a control-flow body is a dict-valued parameter too; only an ACT-R helper makes
    a graph symbolic (a dict test sent every torch.cond model to the ACT-R refusal)."""
    import torch

    class Branch(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda x: x + 1, lambda x: x - 1, (x,))

    x = torch.randn(3)
    m = torchmdf.compile(Branch(), target="mdf", example_inputs=(x,))
    assert any(isinstance(p.value, dict) for n in m.graphs[0].nodes for p in n.parameters)
    assert not is_symbolic(m.graphs[0])
    torchmdf.simulate(m, steps=1)  # not refused
    assert torch.allclose(torchmdf.compile(m, target="fx")(x), Branch()(x))
