"""Pictures of MDF models with nested graphs (issue 13): each If branch and Loop/While body is
a Graphviz cluster (``subgraph cluster_*``) holding the nested graph's nodes, next to the node
that owns it (a dashed line ends on the cluster), at levels 1-3; the outer nodes stay outside;
a cond nested in a loop is a cluster inside a cluster."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import torchmdf
from pictures import assert_picture, have_renderer
from torchmdf import mdf
from torchmdf.examples import ddm as ddm_example
from torchmdf.mdf.picture import draw, to_dot

CLUSTER = re.compile(r"^( *)subgraph (cluster_\d+) \{$")


def clusters(dot: str) -> dict[str, tuple[str, list[str], str]]:
    """cluster name -> (its label, the node labels drawn inside it at any depth, its parent cluster
    or "")."""
    out: dict[str, tuple[str, list[str], str]] = {}
    open_: list[str] = []
    for line in dot.splitlines():
        m = CLUSTER.match(line)
        if m:
            out[m.group(2)] = ("", [], open_[-1] if open_ else "")
            open_.append(m.group(2))
        elif line.strip() == "}" and open_:
            open_.pop()
        elif open_ and line.strip().startswith("label="):
            name = open_[-1]
            out[name] = (line.strip().split(";")[0][len("label="):].strip('"'), out[name][1], out[name][2])
        for b in re.findall(r"<b>([^<]*)</b>", line):
            for name in open_:
                out[name][1].append(b)
    return out


def edges_in_clusters_touch_only_their_nodes(dot: str) -> bool:
    """An edge written inside a cluster makes both its ends members of it (Graphviz), so no
    edge inside a cluster may name a node declared outside every cluster."""
    depth, outer, inner_edges = 0, set(), []
    for line in dot.splitlines():
        if CLUSTER.match(line):
            depth += 1
        elif line.strip() == "}":
            depth -= 1
        elif "->" in line:
            if depth:
                inner_edges.append(re.findall(r"\b(n\d+)\b", line))
        elif depth == 0 and re.match(r"\s*n\d+ \[", line):
            outer.add(line.split()[0])
    return not any(set(ends) & outer for ends in inner_edges)


def outer_nodes(dot: str) -> list[str]:
    """Node labels drawn outside every cluster."""
    depth, names = 0, []
    for line in dot.splitlines():
        if CLUSTER.match(line):
            depth += 1
        elif line.strip() == "}":
            depth -= 1
        elif depth == 0:
            names += re.findall(r"<b>([^<]*)</b>", line)
    return names


@pytest.fixture(scope="module")
def ddm_mdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("pic") / "ddm.json"
    ddm_example.convert(path)
    return mdf.load(path)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_the_ddm_loop_body_is_a_cluster(ddm_mdf, level, tmp_path):
    dot = to_dot(ddm_mdf, level)
    found = clusters(dot)
    assert len(found) == 1
    (label, inside, parent), = found.values()
    assert label == "Loop.body: graph body" and parent == ""
    assert {"RandomNormalLike", "Sqrt", "Add_1"} <= set(inside)
    outside = outer_nodes(dot)
    assert "Loop" in outside and "GreaterOrEqual" in outside and "RandomNormalLike" not in outside
    assert re.search(r"-> n\d+ \[style=dashed, arrowhead=none, lhead=cluster_\d+\];", dot)
    assert edges_in_clusters_touch_only_their_nodes(dot)
    assert ("nested graph (cluster)" in dot) == (level == 3)  # the parameter is not dumped as text
    if have_renderer():
        assert_picture(draw(ddm_mdf, tmp_path / f"ddm{level}.png", level=level), min_side=200)


class Cond(nn.Module):
    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda x: x.sin() * 2.0, lambda x: x.cos() - 1.0, (x,))


class CondInLoop(nn.Module):
    def forward(self, x, limit):
        def cond(i, x):
            return x.abs().sum() < limit

        def body(i, x):
            return i + 1, torch.cond(i % 2 == 0, lambda x: x * 2 + 0.5, lambda x: x * 3 - 0.25, (x,))

        return torch.while_loop(cond, body, (torch.zeros((), dtype=torch.int64), x))


def test_a_torch_cond_has_a_cluster_per_branch(tmp_path):
    m = torchmdf.compile(Cond(), target="mdf", example_inputs=(torch.randn(3),))
    found = clusters(to_dot(m, 2))
    by_label = {label: set(nodes) for label, nodes, _ in found.values()}
    assert sorted(by_label) == ["If.else_branch: graph else_branch", "If.then_branch: graph then_branch"]
    assert "Sin" in by_label["If.then_branch: graph then_branch"] and "Cos" in by_label["If.else_branch: graph else_branch"]
    assert "If" in outer_nodes(to_dot(m, 2))
    if have_renderer():
        assert_picture(draw(m, tmp_path / "cond.png", level=1), min_side=100)


def test_a_cond_in_a_loop_is_a_cluster_in_a_cluster(tmp_path):
    m = torchmdf.compile(CondInLoop(), target="mdf", example_inputs=(torch.ones(2), torch.tensor(50.0)))
    found = clusters(to_dot(m, 1))
    parents = {name: parent for name, (_, _, parent) in found.items()}
    top = [n for n, p in parents.items() if p == ""]
    nested = [n for n, p in parents.items() if p != ""]
    assert len(top) == 2 and len(nested) == 2  # While's cond and body; the If's two branches in the body
    assert sorted(found[n][0] for n in top) == ["While.body: graph body", "While.cond: graph cond"]
    assert {found[parents[n]][0] for n in nested} == {"While.body: graph body"}
    assert sorted(found[n][0] for n in nested) == ["If.else_branch: graph else_branch",
                                                    "If.then_branch: graph then_branch"]
    for n in nested:
        assert set(found[n][1]) <= set(found[parents[n]][1])  # drawn inside their parent too
    if have_renderer():
        assert_picture(draw(m, tmp_path / "nested.png", level=3), min_side=100)


def test_a_graph_held_in_nodes_is_a_cluster_and_edges_to_it_end_on_it(mdf_examples, tmp_path):
    """modeci_mdf's PyTorch importer puts an onnx::Loop body in ``nodes`` as a graph named
    ``LoopSubgraph<id>``; edges name ``<id>``: they end on the cluster."""
    m = mdf.load(mdf_examples / "PyTorch" / "ddm.json")
    dot = to_dot(m, 2)
    found = clusters(dot)
    assert [label for label, _, _ in found.values()] == ["graph LoopSubgraphLoop_11_12"]
    assert '"Loop_11_12"' not in dot  # no stray node for the missing endpoint
    if have_renderer():
        assert_picture(draw(m, tmp_path / "shared_ddm.png", level=2), min_side=100)


def test_a_malformed_nested_graph_is_a_located_error():
    bad = mdf.Model(id="m", graphs=[mdf.Graph(id="g", nodes=[mdf.Node(
        id="L", parameters=[mdf.Parameter(id="body", value={"graph_b": {"nodes": {"x": 5}}})])])])
    with pytest.raises(torchmdf.TorchMDFError) as e:
        to_dot(bad, 1)
    assert "node 'L'" in str(e.value) and "parameter 'body'" in str(e.value)
