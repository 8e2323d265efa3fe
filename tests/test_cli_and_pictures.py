"""The command line as a user runs it, and graph pictures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import torchmdf
from conftest import EXAMPLES
from torchmdf.cli import main
from torchmdf.examples import example_path
from torchmdf.mdf.picture import draw, to_dot

ABC = str(example_path("abc.json"))


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and torchmdf.__version__ in capsys.readouterr().out
    assert main([]) == 0 and "demo" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("torchmdf")
    if exe is None:
        pytest.skip("console script not on PATH")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "torchmdf" in out.stdout


def test_demo_writes_mdf_and_picture(tmp_path, capsys):
    out = tmp_path / "demo.json"
    pic = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out), "--picture", str(pic)]) == 0
    text = capsys.readouterr().out
    assert "pass timings" in text and "max |torch - mdf->fx|" in text
    m = torchmdf.mdf.load(out)
    assert m.graphs and pic.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ir_validate_run_convert(tmp_path, capsys):
    assert main(["ir", ABC]) == 0
    assert "mdf::linear" in capsys.readouterr().out
    assert main(["validate", ABC]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["run", ABC]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"C.out_port"}
    y = tmp_path / "abc.yaml"
    assert main(["convert", ABC, "-o", str(y)]) == 0
    capsys.readouterr()
    assert main(["run", str(y)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert list(again) == ["C.out_port"]
    assert again["C.out_port"] == pytest.approx(out["C.out_port"], rel=1e-6)


def test_convert_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    if not EXAMPLES.is_dir():
        pytest.skip("no shared examples")
    out = tmp_path / "ab.onnx"
    assert main(["convert", str(EXAMPLES / "ONNX" / "ab.json"), "-o", str(out)]) == 0
    import onnx

    onnx.checker.check_model(str(out))


def test_errors_are_located_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"m": {"graphs": {"g": {"nodes": {"A": {"parameters": {"p": {"value": "__import__(1)"}}}}}}}}')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "node 'A'" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.json")]) == 2


def test_picture_levels_and_formats(tmp_path):
    m = torchmdf.mdf.load(ABC)
    d1, d3 = to_dot(m, 1), to_dot(m, 3)
    assert "in: input_port" not in d1 and "intercept" in d3
    assert draw(m, tmp_path / "a.dot").read_text().startswith("digraph")
    svg = draw(m, tmp_path / "a.svg", level=3).read_text()
    assert "<svg" in svg and "linear_1" in svg
    with pytest.raises(torchmdf.TorchMDFError, match="cannot draw"):
        draw(m, tmp_path / "a.bmp")
    assert not (tmp_path / "a.bmp").exists()


def test_picture_quotes_hostile_ids(tmp_path):
    m = torchmdf.mdf.Model(id="m", graphs=[torchmdf.mdf.Graph(id="g", nodes=[
        torchmdf.mdf.Node(id='x"]; evil [label="', parameters=[torchmdf.mdf.Parameter(id="p", value=1.0)],
                          output_ports=[torchmdf.mdf.OutputPort(id="o", value="p")])])])
    dot = to_dot(m, 3)
    assert '\\"' in dot or "&quot;" in dot
    png = draw(m, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_module_runs_as_python_m(tmp_path):
    out = subprocess.run([sys.executable, "-m", "torchmdf.cli", "validate", ABC], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
