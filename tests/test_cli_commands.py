"""Every subcommand driven through the installed ``torchmdf`` entry point, with a bad file
and bad arguments too (exit status 2, one line on stderr -- plus a hint line where the error
has one -- and no traceback).  The commands run concurrently in one fixture, since each
process spends most of its time importing torch; the other error cases run in-process
(``torchmdf.cli.main``), where they cost no torch import each."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from pictures import assert_picture, have_renderer
from torchmdf.examples import example_path

ABC = str(example_path("abc.json"))
FACTORY = '''
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval(), (torch.randn(3, 4),)

def broken():
    raise RuntimeError("no model today")
'''
STATEFUL = '''{"counter": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": {"N": {
  "parameters": {"rate": {"value": 2.0}, "x": {"default_initial_value": 0.0, "time_derivative": "rate"}},
  "output_ports": {"out_port": {"value": "x"}}}}}}}}'''


def _commands(tmp: Path) -> dict[str, list[str]]:
    fac = f"{tmp / 'net.py'}:make"
    return {
        "help": ["--help"],
        "demo": ["demo", "-o", str(tmp / "demo.json")],
        "example_list": ["example"],
        "ir": ["ir", ABC],
        "ir_bad_file": ["ir", str(tmp / "bad.json")],
        "validate": ["validate", ABC],
        "run": ["run", ABC],
        "simulate": ["simulate", str(tmp / "counter.json"), "--steps", "5", "--dt", "0.5", "--param", "N.rate=4",
                     "--csv", str(tmp / "traj.csv"), "--plot", str(tmp / "traj.png")],
        "simulate_bad_steps": ["simulate", ABC, "--steps", "many", "--dt", "0.1"],
        "verify_factory": ["verify", fac],
        "convert_factory": ["convert", fac, "-o", str(tmp / "net.json")],
        "convert_bad_pt2": ["convert", str(tmp / "bad.pt2"), "-o", str(tmp / "x.json")],
        "graph": ["graph", ABC, "-o", str(tmp / "abc.png"), "--level", "3"],
        "passes": ["passes"],
        "targets": ["targets"],
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    exe = shutil.which("torchmdf")
    if exe is None:
        pytest.skip("the torchmdf console script is not on PATH")
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "net.py").write_text(FACTORY)
    (tmp / "bad.json").write_text('{"m": {"graphs": {"g": {"nodes": {"A": {"parameters": 3}}}}}}')
    (tmp / "bad.pt2").write_bytes(b"not a zip")
    (tmp / "counter.json").write_text(STATEFUL)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    torch.export.save(torch.export.export(net, (torch.randn(2, 4),)), tmp / "net.pt2")
    env = dict(os.environ, COLUMNS="80", PYTHONWARNINGS="ignore")

    def run(argv):
        return subprocess.run([exe, *argv], capture_output=True, text=True, timeout=600, cwd=tmp, env=env)

    cmds = _commands(tmp)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(cmds, pool.map(run, cmds.values())))
    done["_tmp"] = tmp
    return done


class _InProcess:
    """``torchmdf.cli.main(argv)`` with its exit status and output, as a subprocess result."""

    def __init__(self, argv: list[str], capsys) -> None:
        from torchmdf.cli import main

        try:
            self.returncode = main(argv)
        except SystemExit as e:  # argparse
            self.returncode = e.code
        cap = capsys.readouterr()
        self.stdout, self.stderr = cap.out, cap.err


def _ok(res) -> str:
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _one_line_error(res, *needles: str) -> str:
    """Exit status 2; stderr is the error line (and a hint line), no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr[-2000:])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("torchmdf") and "error:" in lines[0]
    assert len(lines) == 1 or lines[1].lstrip().startswith("hint:")
    for n in needles:
        assert n in res.stderr, (n, res.stderr)
    return lines[0]


def test_help_fits_one_screen(results):
    out = _ok(results["help"])
    assert len(out.splitlines()) <= 24
    for cmd in ("demo", "example", "ir", "validate", "run", "simulate", "verify", "convert", "picture (graph)",
                "passes", "targets"):
        assert cmd in out


def test_demo_ir_validate_run_passes_targets(results):
    assert "max |torch - mdf->fx|" in _ok(results["demo"])
    assert "mdf::linear" in _ok(results["ir"])
    assert "valid" in _ok(results["validate"])
    assert "C.out_port" in _ok(results["run"])
    assert "fold_constants" in _ok(results["passes"])
    targets = _ok(results["targets"])
    assert "pt2" in targets and "factory" in targets


def test_example_lists_and_rejects_unknown(results, capsys):
    out = _ok(results["example_list"])
    for name in ("abcd", "mlp", "simple_pytorch_to_mdf", "inception"):
        assert name in out
    _one_line_error(_InProcess(["example", "nope"], capsys), "no example named 'nope'")


def test_simulate_with_param_csv_and_plot(results):
    out = _ok(results["simulate"])
    assert "5 steps of dt=0.5" in out and '"N.out_port": 8.0' in out
    tmp = results["_tmp"]
    rows = list(csv.reader((tmp / "traj.csv").open()))
    assert rows[0] == ["step", "t", "N.out_port"] and len(rows) == 6
    xs = [float(r[2]) for r in rows[1:]]
    assert xs == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])  # rate 4 (set by --param) times dt 0.5
    assert_picture(tmp / "traj.png", min_side=200)


def test_simulate_bad_arguments(results, capsys):
    line = _one_line_error(results["simulate_bad_steps"], "--steps")
    assert "invalid int value" in line
    base = ["simulate", ABC, "--steps", "2", "--dt", "0.1"]
    _one_line_error(_InProcess(base + ["--param", "A.nope=1"], capsys), "node 'A' has no parameter 'nope'")
    _one_line_error(_InProcess(base + ["--param", "A=1"], capsys), "expected node.parameter=value")
    _one_line_error(_InProcess(base + ["--param", "Z.slope=1"], capsys), "no node 'Z'")
    _one_line_error(_InProcess(["simulate", ABC, "--steps", "0", "--dt", "0.1"], capsys), "at least 1")
    cuda = _InProcess(base + ["--device", "cuda"], capsys)
    if torch.cuda.is_available():
        _ok(cuda)
    else:
        _one_line_error(cuda, "CUDA is not available")


def test_verify_mdf_file_and_factory(results, capsys):
    out = _ok(results["verify_factory"])
    for path in ("native torch", "torchmdf FX module", "MDF file -> FX", "onnxruntime"):
        assert path in out
    assert "max abs diff" in out and "all paths agree" in out
    out = _ok(_InProcess(["verify", ABC], capsys))
    assert "IR interpreter (no passes)" in out and "MDF file -> FX module" in out and "all paths agree" in out
    tmp = results["_tmp"]
    _one_line_error(_InProcess(["verify", f"{tmp / 'net.py'}:broken"], capsys), "net.py",
                    "broken() failed: RuntimeError: no model today")
    _one_line_error(_InProcess(["verify", f"{tmp / 'net.py'}:absent"], capsys), "has no function 'absent'")
    _one_line_error(_InProcess(["verify", f"{tmp / 'none.py'}:make"], capsys), "none.py", "no such file")


def test_convert_from_factory_and_pt2(results, capsys):
    import torchmdf

    tmp = results["_tmp"]
    _ok(results["convert_factory"])
    _ok(_InProcess(["convert", str(tmp / "net.pt2"), "-o", str(tmp / "pt2.yaml")], capsys))
    gm = torchmdf.compile(tmp / "net.json", target="fx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    x = torch.randn(3, 4)
    torch.testing.assert_close(gm(x), net(x))
    assert torchmdf.mdf.load(tmp / "pt2.yaml").graphs
    _one_line_error(results["convert_bad_pt2"], "bad.pt2", "not a torch.export program")


def test_graph_alias_and_bad_picture(results, capsys):
    if have_renderer():
        _ok(results["graph"])
        assert_picture(results["_tmp"] / "abc.png")
    _one_line_error(_InProcess(["picture", ABC, "-o", str(results["_tmp"] / "abc.bmp")], capsys), "abc.bmp")


def test_bad_files_and_commands(results, capsys):
    _one_line_error(results["ir_bad_file"], "bad.json")
    _one_line_error(_InProcess(["run", str(results["_tmp"] / "missing.json")], capsys), "missing.json")
    _one_line_error(_InProcess(["frobnicate"], capsys), "invalid choice")
    _one_line_error(_InProcess(["convert", ABC], capsys), "-o/--output")


def test_verify_names_the_first_diverging_node(monkeypatch):
    """A faulty FX backend (relu emitted as sigmoid) is caught and located at the relu node."""
    from torchmdf import verify

    real = verify.emit_fx

    def faulty(graph):
        gm = real(graph)
        for n in gm.graph.nodes:
            if n.op == "call_function" and "relu" in str(n.target):
                n.target = torch.sigmoid
        gm.recompile()
        return gm

    monkeypatch.setattr(verify, "emit_fx", faulty)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    result = verify.verify_module(net, (torch.randn(3, 4),))
    assert not result.ok and result.differs
    assert "MISMATCH" in result.table()
    assert result.divergence.startswith("first diverging IR node (IR interpreter vs FX module): %relu")


def test_first_divergence_in_ir_order():
    import torchmdf
    from torchmdf import verify

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.Tanh())
    x = torch.randn(3, 4)
    g = torchmdf.lower(net, (x,))
    ref = verify.ir_values(g, (x,))
    other = dict(ref)
    names = [o.name for n in g for o in n.outputs]
    for late in names[2:]:
        other[late] = other[late] + 1
    node, diff = verify.first_divergence(g, ref, other, 1e-6, 0)
    assert node.outputs[0].name == names[2] and diff == pytest.approx(1.0)
    assert verify.first_divergence(g, ref, dict(ref), 1e-6, 0) is None
