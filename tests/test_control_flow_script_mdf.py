"""Control flow from TorchScript and through MDF files (issue 11): scripted ``if``/``while``/
``for`` on tensor data become If/Loop regions (no unrolling, one branch runs), go torch -> IR ->
MDF file -> IR and run; the seed's DDM converts with ``pytorch_to_mdf(ddm, args)`` and keeps its
statistics; an MDF file with an ``onnx::Loop`` body runs; nesting in a file is bounded."""

from __future__ import annotations

import json
import math

import pytest
import torch

import torchmdf
from torchmdf import mdf
from torchmdf.api import emit
from torchmdf.examples.ddm import ddm  # the seed's DDM function: its one home is the ddm example
from torchmdf.frontends.mdf import lower_mdf
from torchmdf.frontends.torchscript import lower_scripted
from torchmdf.interfaces.pytorch import pytorch_to_mdf
from torchmdf.interpreter import run_graph
from torchmdf.limits import override
from torchmdf.passes import run_passes


class Branchy(torch.nn.Module):
    """A data-dependent if, a while on tensor data and a for with a trip count from .item()."""

    def forward(self, x, n):
        if bool(x.sum() > 0):
            y = torch.relu(x) * 2.0
        else:
            y = x - 1.0
        k = 0
        while bool(y.abs().sum() < 100.0):
            y = y * 2.0 + 1.0
            k += 1
        for i in range(int(n.item())):
            y = y + float(i)
        return y, k


CASES = [(torch.tensor([1.0, 2.0, -0.5]), torch.tensor(3)),    # then branch, a few trips
         (torch.tensor([-1.0, -2.0, 0.5]), torch.tensor(0)),    # else branch, no for trips
         (torch.tensor([60.0, 50.0, 1.0]), torch.tensor(5))]    # while loop runs zero times


def _via_mdf_file(g, tmp_path, name="m"):
    g, _ = run_passes(g, None)
    path = tmp_path / f"{name}.json"
    mdf.save(emit(g, target="mdf"), path)
    return lower_mdf(path), path


def _run(g, *xs):
    with torch.no_grad():
        return run_graph(g, list(xs))[0]


def test_scripted_if_while_for_become_regions_and_survive_an_mdf_file(tmp_path):
    model = Branchy()
    g = lower_scripted(model, CASES[0])
    g.verify()
    assert sorted(n.op for n in g.walk() if n.regions) == ["onnx::If", "onnx::Loop", "onnx::Loop"]
    back, path = _via_mdf_file(g, tmp_path)
    text = path.read_text()
    assert '"then_branch"' in text and '"graph_then_branch"' in text and '"body"' in text
    back.verify()
    for x, n in CASES:
        want = model(x, n)
        for graph in (g, back):
            got = _run(graph, x, n)
            torch.testing.assert_close(got[0], want[0])
            assert int(got[1]) == int(want[1])


def test_static_loops_still_unrolled_and_long_ones_are_loops():
    class Static(torch.nn.Module):
        def forward(self, x):
            for i in range(3):
                x = x * 2.0 + float(i)
            for _ in range(20000):  # too long to unroll: an onnx::Loop
                x = x * 0.5 + 1.0
            return x

    x = torch.tensor([0.5, 2.0])
    g = lower_scripted(Static(), (x,))
    assert [n.op for n in g if n.regions] == ["onnx::Loop"]
    torch.testing.assert_close(_run(g, x)[0], Static()(x))


def test_only_the_taken_branch_runs():
    """The branch not taken would fail at run time (an index out of range): it never runs."""

    class Guarded(torch.nn.Module):
        def forward(self, x, i):
            if bool(i < 3):
                y = x[i]
            else:
                y = x.sum()
            return y

    x = torch.arange(3.0)
    g = lower_scripted(Guarded(), (x, torch.tensor(1)))
    for i in (0, 2, 7):
        torch.testing.assert_close(_run(g, x, torch.tensor(i))[0], Guarded()(x, torch.tensor(i)))


# -- the seed's DDM ------------------------------------------------------------------------------


DDM_ARGS = tuple(torch.tensor(v) for v in (0.0, 0.3, 0.15, 0.6, 1.0, 0.001))
RUNS = 300


def _stats(sample):
    rts = torch.tensor([float(r) for r, _ in sample], dtype=torch.float64)
    ups = torch.tensor([float(d) for _, d in sample], dtype=torch.float64)
    return rts.mean().item(), rts.std().item() / math.sqrt(len(rts)), ups.mean().item()


def _agree(a, b):
    (m1, se1, p1), (m2, se2, p2) = a, b
    assert abs(m1 - m2) < 4.5 * math.hypot(se1, se2), (a, b)
    se_p = math.sqrt(max(p1 * (1 - p1), 0.05) / RUNS)
    assert abs(p1 - p2) < 4.5 * math.sqrt(2) * se_p, (a, b)


@pytest.fixture(scope="module")
def ddm_original():
    torch.manual_seed(1234)
    with torch.no_grad():
        return _stats([ddm(*DDM_ARGS) for _ in range(RUNS)])


@pytest.fixture(scope="module")
def ddm_model(tmp_path_factory):
    m, params = pytorch_to_mdf(ddm, DDM_ARGS)
    assert m.id == "ddm" and params == {}
    path = tmp_path_factory.mktemp("ddm") / "ddm.json"
    mdf.save(m, path)
    return m, path


def test_ddm_converts_and_keeps_its_statistics(ddm_original, ddm_model):
    m, path = ddm_model
    text = path.read_text()
    assert '"onnx::Loop"' in text and '"graph_body"' in text and "RandomNormalLike" in text
    g = lower_mdf(path)
    assert [n.op for n in g if n.regions] == ["onnx::Loop"]
    torch.manual_seed(99)
    converted = _stats([_run(g, *DDM_ARGS) for _ in range(RUNS)])
    _agree(ddm_original, converted)
    assert 0.3 < ddm_original[0] < 0.8 and 0.4 < ddm_original[2] < 0.8  # the known DDM regime


def test_ddm_through_fx(ddm_original, ddm_model):
    _, path = ddm_model
    module = torchmdf.compile(path, target="fx")  # the file's Loop runs as torch's while_loop
    torch.manual_seed(7)
    with torch.no_grad():
        converted = _stats([module(*DDM_ARGS) for _ in range(RUNS)])
    _agree(ddm_original, converted)


# -- an MDF file with an onnx::Loop body ---------------------------------------------------------


def _loop_file(cond_limit: str = "limit") -> dict:
    """``v = v0; while v < limit (at most M times): v = v * 2 + step`` with the body as a nested
    graph, as modeci_mdf's ONNX importer nests it; ``step`` is captured from the outer graph."""
    def inp(name, typ="float64"):
        return {"input_ports": {name: {"shape": [], "type": typ}}, "output_ports": {"out": {"value": name}}}

    body = {
        "metadata": {"torchmdf": {"output_ports": ["keep.out", "next.out"], "captures": ["capture_0"]}},
        "nodes": {
            "input_i": inp("i", "int64"), "input_c": inp("c", "bool"), "input_v": inp("v"),
            "input_step": inp("step"),
            "next": {"input_ports": {"v": {}, "s": {}},
                     "parameters": {"two": {"value": 2.0},
                                    "op": {"function": "onnx::Add", "args": {"A": "v * two", "B": "s"}}},
                     "output_ports": {"out": {"value": "op"}}},
            "keep": {"input_ports": {"x": {}}, "parameters": {"lim": {"value": 100.0},
                                                              "op": {"function": "onnx::Less",
                                                                     "args": {"A": "x", "B": cond_limit}}},
                     "output_ports": {"out": {"value": "op"}}},
        },
        "edges": {
            "e1": {"sender": "input_v", "sender_port": "out", "receiver": "next", "receiver_port": "v"},
            "e2": {"sender": "input_step", "sender_port": "out", "receiver": "next", "receiver_port": "s"},
            "e3": {"sender": "next", "sender_port": "out", "receiver": "keep", "receiver_port": "x"},
        },
    }
    if cond_limit == "limit":
        body["nodes"]["keep"]["parameters"]["op"]["args"]["B"] = "lim"
    return {"loopy": {"format": "ModECI MDF v0.4", "graphs": {"g": {
        "nodes": {
            "source": {"input_ports": {"v0": {"shape": [], "default_value": 1.0},
                                       "step": {"shape": [], "default_value": 0.5}},
                       "output_ports": {"v": {"value": "v0"}, "s": {"value": "step"}}},
            "Loop_1": {"input_ports": {"v_initial_1": {}, "capture_0": {}},
                       "parameters": {"M": {"value": 50}, "cond": {"value": True},
                                      "body": {"value": {"graph_b": body}},
                                      "op": {"function": "onnx::Loop",
                                             "args": {"M": "M", "cond": "cond", "v_initial": "['v_initial_1']"}}},
                       "output_ports": {"out": {"value": "op"}}},
        },
        "edges": {
            "a": {"sender": "source", "sender_port": "v", "receiver": "Loop_1", "receiver_port": "v_initial_1"},
            "b": {"sender": "source", "sender_port": "s", "receiver": "Loop_1", "receiver_port": "capture_0"},
        },
    }}}}


def _want(v0: float, step: float, trips: int = 50) -> float:
    v = v0
    for _ in range(trips):
        v = v * 2 + step
        if not v < 100.0:
            break
    return v


def test_mdf_file_with_a_loop_body_lowers_and_runs(tmp_path):
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(_loop_file()))
    model = mdf.load(path)
    assert mdf.validate(model) == []
    g = lower_mdf(path)
    assert [n.op for n in g if n.regions] == ["onnx::Loop"]
    for v0, step in ((1.0, 0.5), (3.0, 0.0), (200.0, 1.0)):
        got = _run(g, torch.tensor(v0, dtype=torch.float64), torch.tensor(step, dtype=torch.float64))
        assert float(got[0]) == _want(v0, step)


def test_mdf_loop_iteration_limit_is_a_located_error(tmp_path):
    d = _loop_file()
    d["loopy"]["graphs"]["g"]["nodes"]["Loop_1"]["parameters"]["M"]["value"] = 10**9
    path = tmp_path / "forever.json"
    path.write_text(json.dumps(d).replace('"value": 100.0', '"value": 1e308'))
    with override(max_loop_iterations=20):
        g = lower_mdf(path)
        with pytest.raises(torchmdf.TorchMDFError, match="more than 20 iterations") as e:
            _run(g, torch.tensor(-1e9, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64))
    assert "onnx::Loop" in str(e.value) and "max_loop_iterations" in str(e.value)


def test_errors_inside_a_loop_body_are_located(tmp_path):
    d = _loop_file()
    d["loopy"]["graphs"]["g"]["nodes"]["Loop_1"]["parameters"]["body"]["value"]["graph_b"]["nodes"]["next"][
        "parameters"]["op"]["function"] = "onnx::NoSuchOp"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(torchmdf.TorchMDFError) as e:
        lower_mdf(path)
    assert "graph 'g' > node 'Loop_1' > parameter 'body' > graph 'b' > node 'next'" in str(e.value)


# -- hostile nesting -----------------------------------------------------------------------------


def _nested_loops_text(depth: int) -> str:
    """A file whose Loop bodies nest ``depth`` deep, built as text (no recursion here either)."""
    head = ('{"loop": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": {"input_x": {"input_ports": '
            '{"x": {"shape": []}}, "output_ports": {"out": {"value": "x"}}}, ')
    open_ = ('"L": {"input_ports": {"v_initial_1": {}}, "parameters": {"M": {"value": 1}, "op": {"function": '
             '"onnx::Loop", "args": {"M": "M", "v_initial": "[\'v_initial_1\']"}}, "body": {"value": {"graph_b": '
             '{"nodes": {"input_i": {"input_ports": {"i": {}}, "output_ports": {"out": {"value": "i"}}}, ')
    close = '}}}}}'
    return head + open_ * depth + '"k": {"parameters": {"c": {"value": true}}, "output_ports": {"out": {"value": "c"}}}' \
        + close * depth + '}}}}}'


@pytest.mark.parametrize("depth", [40, 10_000])
def test_deeply_nested_loop_bodies_give_a_located_error(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text(_nested_loops_text(depth))
    with pytest.raises(torchmdf.TorchMDFError) as e:
        model = mdf.load(path)
        lower_mdf(model)
    assert e.value.location and "deep.json" in e.value.location


# -- every region op through an MDF file ---------------------------------------------------------


def test_if_loop_and_while_graphs_survive_an_mdf_file(tmp_path):
    from test_regions import _if_graph, _loop_graph, _while_graph

    f3 = torch.tensor([1.0, -2.0, 3.0])
    cases = [(_if_graph(), [[torch.tensor(True), f3], [torch.tensor(False), f3]]),
             (_loop_graph(5, True), [[torch.tensor(0.0), torch.tensor(3.0)], [torch.tensor(0.0), torch.tensor(9.0)]]),
             (_loop_graph(None, True, scans=False), [[torch.tensor(1.0), torch.tensor(4.0)]]),
             (_while_graph(), [[f3, torch.tensor(0), torch.tensor(20.0)], [f3, torch.tensor(0), torch.tensor(-1.0)]])]
    for k, (g, inputs) in enumerate(cases):
        back, _ = _via_mdf_file(g.clone() if hasattr(g, "clone") else g, tmp_path, f"g{k}")
        for xs in inputs:
            want = _run(g, *xs)
            got = _run(back, *xs)
            for a, b in zip(got, want):
                torch.testing.assert_close(a.to(b.dtype), b)
