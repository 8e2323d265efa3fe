"""The extension points: frontends and backends registered once are used by ``lower``,
``compile``, ``emit`` and the CLI alike; passes are selected by name with options."""

from __future__ import annotations

import json

import pytest
import torch

import torchmdf
from torchmdf.backends import backends, unregister_backend
from torchmdf.cli import main
from torchmdf.errors import ConversionError, PassError, TorchMDFError
from torchmdf.frontends import frontends, unregister_frontend
from torchmdf.ir import Graph, TensorType
from torchmdf.passes import FoldConstants, get_pass, parse_pass_spec, pass_options, split_pass_list


class Affine:
    """A toy model format: y = a * x + b, with its own file suffix (``.affine``)."""

    def __init__(self, a: float, b: float):
        self.a, self.b = a, b


def _lower_affine(obj, example_inputs=None, **options):
    if not isinstance(obj, Affine):  # a path: the file is 'a b'
        with open(obj, encoding="utf-8") as f:
            a, b = (float(t) for t in f.read().split())
        obj = Affine(a, b)
    g = Graph("affine")
    x = g.add_input("x", TensorType(torch.float32, (3,)))
    a = g.add_constant(torch.tensor(obj.a))
    b = g.add_constant(torch.tensor(obj.b))
    ax = g.create_node("onnx::Mul", [x, a]).output
    g.outputs = [g.create_node("onnx::Add", [ax, b]).output]
    return g


@pytest.fixture
def affine_frontend():
    torchmdf.register_frontend("affine", _lower_affine, accepts=lambda o: isinstance(o, Affine),
                               suffixes=[".affine"])
    yield
    unregister_frontend("affine")


@pytest.fixture
def count_backend():
    written = []

    def emit_count(graph, **options):
        return {"nodes": len(graph), **options}

    def write_count(result, path, **options):
        written.append(path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f)

    torchmdf.register_backend("count", emit_count, suffixes=[".count"], write=write_count)
    yield written
    unregister_backend("count")


def test_registered_frontend_is_used_by_lower_compile_and_cli(affine_frontend, tmp_path):
    assert "affine" in frontends()
    g = torchmdf.lower(Affine(2.0, 1.0))
    assert [n.op for n in g] == ["onnx::Mul", "onnx::Add"]
    gm = torchmdf.compile(Affine(2.0, 1.0), target="fx")
    x = torch.tensor([0.0, 1.0, 2.0])
    assert torch.equal(gm(x), 2 * x + 1)
    # a path with the frontend's suffix goes to it, in compile and in the CLI
    src = tmp_path / "m.affine"
    src.write_text("3 -1")
    gm = torchmdf.compile(str(src), target="fx")
    assert torch.equal(gm(x), 3 * x - 1)
    out = tmp_path / "m.json"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    (y,) = torchmdf.compile(str(out), target="fx")(x).values()  # an MDF module returns its output ports
    assert torch.equal(y, 3 * x - 1)


def test_registered_backend_is_used_by_emit_compile_and_cli(count_backend, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(2, 4)
    res = torchmdf.compile(model, target="count", example_inputs=(x,), tag=1)
    assert res["tag"] == 1 and res["nodes"] >= 2
    g = torchmdf.lower(model, (x,))
    assert torchmdf.emit(g, target="count")["nodes"] == len(g)
    src = tmp_path / "m.json"
    torchmdf.mdf.save(torchmdf.compile(model, example_inputs=(x,)), src)
    out = tmp_path / "m.count"
    assert main(["convert", str(src), "-o", str(out)]) == 0  # by suffix
    assert json.loads(out.read_text())["nodes"] >= 2
    out2 = tmp_path / "other.txt"
    assert main(["convert", str(src), "-o", str(out2), "--target", "count"]) == 0  # by name
    assert count_backend == [str(out), str(out2)]


def test_builtin_backends_and_frontends_are_listed(capsys):
    assert {"mdf", "fx", "onnx", "ir"} <= set(backends())
    assert {"mdf", "export", "fx", "trace", "script", "ir"} <= set(frontends())
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "export" in out and "onnx" in out and ".yaml" in out


def test_unknown_target_method_and_suffix_are_clear_errors(tmp_path):
    with pytest.raises(TorchMDFError, match="unknown target 'nope'"):
        torchmdf.emit(Graph("g"), target="nope")
    with pytest.raises(ConversionError, match="unknown method 'nope'"):
        torchmdf.lower(torch.nn.ReLU(), (torch.zeros(1),), method="nope")
    p = tmp_path / "m.txt"
    p.write_text("{}")
    with pytest.raises(ConversionError, match="no frontend reads files with this suffix"):
        torchmdf.lower(str(p))
    with pytest.raises(ConversionError, match="cannot lower a int"):
        torchmdf.lower(3)
    assert main(["convert", str(p), "-o", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_pass_by_name_with_options():
    p = get_pass("fold_constants{fold_parameters=True, max_output_elements=1000}")
    assert isinstance(p, FoldConstants) and p.fold_parameters is True and p.max_output_elements == 1000
    p = get_pass(("fold_constants", {"max_output_elements": 7}))
    assert isinstance(p, FoldConstants) and p.max_output_elements == 7 and p.fold_parameters is False
    assert "fold_parameters" in pass_options("fold_constants")
    assert parse_pass_spec("infer_shapes") == ("infer_shapes", {})
    assert split_pass_list("a{x=1, y=[1, 2]},b, c{}") == ["a{x=1, y=[1, 2]}", "b", "c{}"]


@pytest.mark.parametrize("spec, match", [
    ("fold_constants{bogus=1}", "has no option 'bogus'"),
    ("fold_constants{fold_parameters=__import__('os')}", "not a literal value"),
    ("fold_constants{fold_parameters=", "bad pass spec"),
    ("fold_constants{1}", "bad pass options"),
    ("no_such_pass{a=1}", "unknown pass"),
])
def test_bad_pass_specs_are_located_errors(spec, match):
    with pytest.raises(PassError, match=match):
        get_pass(spec)


def test_pass_options_from_compile_and_cli(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(2, 4)
    g = torchmdf.compile(model, target="ir", example_inputs=(x,),
                         passes=["fold_constants{fold_parameters=True}", ("infer_shapes", {"fallback": False})])
    assert all(v.type is not None for n in g for v in n.outputs)
    src = tmp_path / "m.json"
    torchmdf.mdf.save(torchmdf.compile(model, example_inputs=(x,)), src)
    assert main(["ir", str(src), "--passes", "fold_constants{fold_parameters=True},infer_shapes"]) == 0
    assert main(["passes"]) == 0
    assert "fold_constants{fold_parameters=False" in capsys.readouterr().out
