"""The three folders install as one package, editable and as a built wheel, data included."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

CHECK = """
import importlib.resources, sys, torchmdf, torchmdf.passes, torchmdf.backends, torchmdf.ir, torchmdf.mdf
root = sys.argv[1]
for mod in (torchmdf, torchmdf.passes, torchmdf.backends):
    assert mod.__file__.startswith(root), (mod.__name__, mod.__file__, root)
data = importlib.resources.files("torchmdf.examples") / "abc.json"
assert data.is_file(), data
assert (importlib.resources.files("torchmdf") / "py.typed").is_file()
from torchmdf.cli import main
print("ok", torchmdf.__version__)
"""


def _run_check(root: str, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", CHECK, root], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_editable_install_maps_three_folders(tmp_path):
    import torchmdf

    if not torchmdf.__file__.startswith(str(REPO)):
        pytest.skip("torchmdf is not installed from this checkout")
    assert "ok" in _run_check(str(REPO), cwd=str(tmp_path))


def test_built_wheel_contains_and_imports_everything(tmp_path):
    wheel_dir = tmp_path / "wheel"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{res.stderr[-3000:]}")
    wheels = list(wheel_dir.glob("torchmdf-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    for must in ("torchmdf/__init__.py", "torchmdf/passes/__init__.py", "torchmdf/backends/__init__.py",
                 "torchmdf/ir/_core.py", "torchmdf/examples/abc.json", "torchmdf/py.typed"):
        assert must in names, must
    assert not any(n.startswith(("compiler/", "passes/", "backends/", "tests/")) for n in names)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    assert "ok" in _run_check(str(tmp_path / "site"), env=env, cwd=str(tmp_path))
