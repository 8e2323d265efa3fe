"""Hostile model files (issue 9): the corpus of ``tests/hostile_corpus.py`` run case by case in
forked children with a memory cap and a timeout (``tests/hostile_worker.py``), plus in-process
checks of the allow-list, the limits and located run-time errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import hostile_corpus
import pytest
import torch

import torchmdf
from torchmdf.ops import registry

HERE = os.path.dirname(__file__)
CASES = {c["name"]: c for c, _ in hostile_corpus._cases()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    out = root / "results.json"
    before = set(os.listdir(os.getcwd()))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "hostile_worker.py"), str(root), str(out)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(os.listdir(os.getcwd())) == before, "the corpus wrote into the working directory"
    return root, {r["name"]: r for r in json.loads(out.read_text())}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_case(corpus, name):
    root, results = corpus
    case, res = CASES[name], results[name]
    assert res["status"] in ("ok", "torchmdf_error"), \
        f"{name}: {res['status']} {res.get('type')}: {res.get('message')}\n{res.get('traceback', '')}"
    if case["expect"] == "error":
        assert res["status"] == "torchmdf_error", f"{name} was accepted"
        assert os.path.basename(case["file"]) in res["message"], f"not located in the file: {res['message']}"
    elif case["expect"] == "ok":
        assert res["status"] == "ok", res.get("message")
    assert res["seconds"] < case["bound"], f"{name} took {res['seconds']:.1f} s (bound {case['bound']} s)"
    assert not res["violations"], f"{name} touched: {res['violations']}"
    assert hostile_corpus.CANARY not in (res.get("message") or "")
    assert not (root / name / "IMPORTED").exists(), "a module next to the file was imported"


def test_corpus_touched_nothing_outside(corpus):
    root, _ = corpus
    assert sorted(os.listdir(root / "outside")) == ["secret.txt"]
    assert (root / "outside" / "secret.txt").read_text() == hostile_corpus.CANARY


# -- the allow-list ------------------------------------------------------------------------------

def test_allow_list_is_functional_and_memory_safe():
    allowed = registry.file_allowed_aten_ops()
    assert len(allowed) > 150
    print(f"\n{len(allowed)} aten overloads a file may call")
    for name in allowed:
        ov = registry.resolve_aten(name)
        schema = ov._schema
        assert not any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments), name
        base = name[6:].split(".")[0]
        assert not base.endswith("_") and "out" not in name[6:].split(".", 1)[-1].split("_"), name
        assert "strided" not in base and "storage" not in base and not base.startswith("empty"), name
        assert base not in ("from_file", "set", "rand", "randn", "bernoulli", "resize"), name


@pytest.mark.parametrize("name", ["aten::from_file", "aten::as_strided", "aten::_reshape_alias", "aten::copy_",
                                  "aten::add_.Tensor", "aten::add.out", "aten::empty.memory_format",
                                  "aten::empty_like", "aten::set_.source_Storage", "aten::rand",
                                  "aten::resize_", "aten::_unsafe_index_put", "aten::normal.Tensor_float"])
def test_dangerous_aten_refused(name):
    assert registry.file_op_refusal(name) is not None


def test_every_registered_op_may_be_named_by_a_file():
    for name in registry.names():
        if not name.startswith("aten::"):
            assert registry.file_op_refusal(name) is None, name


def test_what_the_project_writes_is_allowed():
    """Every aten op kept by the frontends on the zoo (written into MDF files) is allowed."""
    import zoo

    class BiGRU(torch.nn.Module):  # no ONNX form here: stays aten::gru.input
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(4, 3, bidirectional=True, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    cases = [(zoo.get(n).make_model().eval(), zoo.get(n).make_inputs())
             for n in ("cnn", "gru", "lstm", "transformer_layer", "buffer_inplace", "running_stats")]
    seen = set()
    for model, args in cases + [(BiGRU().eval(), (torch.randn(2, 5, 4),))]:
        for method in ("export", "trace", "script"):
            try:
                g = torchmdf.compile(model, target="ir", example_inputs=args, method=method)
            except torchmdf.TorchMDFError:
                continue
            seen |= {n.op for n in g if n.op.startswith("aten::")}
    refused = {op: registry.file_op_refusal(op) for op in seen if registry.file_op_refusal(op)}
    assert seen and not refused


def test_registered_custom_op_validates():
    name = "custom::twice_hostile_test"
    if registry.lookup(name) is None:
        registry.register(registry.OpDef(name=name, impl=lambda x: 2 * x, input_names=["x"]))
    m = torchmdf.mdf.Model.from_dict(hostile_corpus._model({"A": hostile_corpus._param_node(
        {"a": {"value": [1.0, 2.0]}, "x": {"function": name, "args": {"x": "a"}}})}))
    assert [str(p) for p in torchmdf.mdf.validate(m, lowering=False)] == []


# -- limits and located run-time errors ------------------------------------------------------------

def test_limits_override_restores_and_refuses_unknown():
    before = torchmdf.limits.LIMITS.max_elements
    with torchmdf.limits.override(max_elements=10):
        assert torchmdf.limits.LIMITS.max_elements == 10
    assert torchmdf.limits.LIMITS.max_elements == before
    with pytest.raises(torchmdf.TorchMDFError, match="unknown limit"):
        with torchmdf.limits.override(max_elephants=1):
            pass


def test_element_limit_is_configurable(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(hostile_corpus._model({"A": hostile_corpus._param_node(
        {"x": {"function": "aten::zeros", "args": {"size": [1000]}}})})))
    assert torchmdf.compile(str(p), target="fx")()["A.o"].shape == (1000,)
    with torchmdf.limits.override(max_elements=999):
        with pytest.raises(torchmdf.TorchMDFError, match="limit of 999"):
            torchmdf.compile(str(p), target="fx")


def test_wrong_input_shape_at_run_time_names_node_and_shapes(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(hostile_corpus._model({"A": hostile_corpus._param_node(
        {"b": {"value": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}, "x": {"function": "onnx::MatMul",
                                                                    "args": {"A": "i", "B": "b"}}},
        ports={"i": {"default_value": [[1.0, 2.0]]}})})))
    gm = torchmdf.compile(str(p), target="fx")
    assert gm()["A.o"].shape == (1, 3)
    with pytest.raises(torchmdf.ExecutionError) as e:
        gm(torch.ones(4, 7, dtype=torch.float64))
    msg = str(e.value)
    assert "m.json" in msg and "node 'A'" in msg and "parameter 'x'" in msg and "[4, 7]" in msg
    assert len(msg) < 1000


def test_cli_prints_one_line_and_traceback_only_with_debug(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(hostile_corpus._model({"A": hostile_corpus._param_node(
        {"b": {"value": [[1.0, 2.0, 3.0]]}, "x": {"function": "onnx::MatMul", "args": {"A": "i", "B": "b"}}},
        ports={"i": {"default_value": [[1.0, 2.0]]}})})))
    cmd = [sys.executable, "-m", "torchmdf.cli", "run", str(p)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0 and "Traceback" not in plain.stderr and "m.json" in plain.stderr
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
