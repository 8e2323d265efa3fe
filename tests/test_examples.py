"""Each example of ``torchmdf.examples`` runs end to end (small sizes) and its pictures are
real images; one runs through the installed ``torchmdf example`` command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from pictures import assert_picture, have_renderer
from torchmdf.examples import EXAMPLES, run_example


def _run(name: str, argv: list[str], capsys) -> str:
    assert run_example(name, argv) == 0
    return capsys.readouterr().out


def test_the_examples_are_listed():
    assert set(EXAMPLES) == {"abcd", "mlp", "simple_pytorch_to_mdf", "inception", "fit_fitzhugh_nagumo", "ddm"}


def test_abcd(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = _run("abcd", ["--out", str(tmp_path), "--steps", "3"], capsys)
    assert re.search(r"MDF vs PyTorch \(FX module\), nodes A, B, C, D: max abs diff \S+ .* ok", out)
    assert re.search(r"MDF vs ONNX \(onnxruntime\), node D: max abs diff \S+ .* ok", out)
    assert (tmp_path / "abcd.json").is_file() and (tmp_path / "abcd.onnx").is_file()
    import torchmdf

    m = torchmdf.mdf.load(tmp_path / "abcd.json")
    assert [n.id for n in m.graphs[0].nodes] == ["input0", "A", "B", "C", "D"]
    if have_renderer():
        assert_picture(tmp_path / "abcd.png")


def test_mlp_trains_to_97_percent_and_runs_from_the_file(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = _run("mlp", ["--out", str(tmp_path), "-graph", "-run"], capsys)
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.97
    assert re.search(r"MDF file vs trained PyTorch module, logits: max abs diff \S+ .* ok", out)
    import torchmdf

    m = torchmdf.mdf.load(tmp_path / "mlp.json")
    functions = {p.function for n in m.graphs[0].nodes for p in n.parameters if p.function}
    assert functions == {"MatMul", "linear", "Relu"}  # pure MDF, not ONNX ops
    w, h = assert_picture(tmp_path / "mlp_results.png", min_side=200)
    assert w > h  # a grid of images, wider than tall
    if have_renderer():
        assert_picture(tmp_path / "mlp.png")


def test_simple_pytorch_to_mdf(tmp_path, capsys):
    out = _run("simple_pytorch_to_mdf", ["--out", str(tmp_path), "--size", "64"], capsys)
    assert re.search(r"MDF file vs PyTorch, softmax output: max abs diff \S+ .* ok", out)
    assert (tmp_path / "simple_pytorch_to_mdf.json").is_file()
    if have_renderer():
        w1, h1 = assert_picture(tmp_path / "simple_pytorch_to_mdf.png")
        w3, h3 = assert_picture(tmp_path / "simple_pytorch_to_mdf.level3.png")
        assert w3 * h3 > w1 * h1  # level 3 shows parameters and functions too


def test_inception_through_export_and_trace(tmp_path, capsys):
    out = _run("inception", ["--out", str(tmp_path), "--size", "16", "--blocks", "1"], capsys)
    assert re.search(r"MDF file \(torch.export\) vs PyTorch: max abs diff \S+ .* ok", out)
    assert re.search(r"MDF file \(TorchScript \(torch.jit.trace\)\) vs PyTorch: max abs diff \S+ .* ok", out)
    for method in ("export", "trace"):
        assert (tmp_path / f"inception_{method}.json").is_file()
    if have_renderer():
        assert_picture(tmp_path / "inception.png")


def test_a_mismatch_gives_a_non_zero_status(capsys):
    from torchmdf.examples._common import Report

    r = Report()
    r.compare("a vs b", [1.0, 2.0], [1.0, 2.5], 1e-6)
    assert r.finish() == 1 and "MISMATCH" in capsys.readouterr().out


def test_abcd_through_the_installed_command_and_python_m(tmp_path):
    exe = shutil.which("torchmdf")
    if exe is None:
        pytest.skip("console script not on PATH")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run([exe, "example", "abcd", "--out", str(tmp_path / "a"), "--steps", "2"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "max abs diff" in res.stdout and (tmp_path / "a" / "abcd.json").is_file()
    res = subprocess.run([sys.executable, "-m", "torchmdf.examples.abcd", "--steps", "2"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "abcd.json").is_file()  # the current directory by default
