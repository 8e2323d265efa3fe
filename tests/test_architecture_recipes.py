"""ARCHITECTURE.md's recipes (a new op, pass, frontend, backend) run exactly as written, so
the page cannot drift from the code; and every module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _recipes() -> dict[str, str]:
    out = {}
    for m in re.finditer(r"^### (.+?)\n(.*?)(?=^### |^## |\Z)", DOC, flags=re.S | re.M):
        blocks = re.findall(r"```python\n(.*?)```", m.group(2), flags=re.S)
        if blocks:
            out[m.group(1).strip()] = "\n".join(blocks)
    return out


RECIPES = _recipes()


def test_the_four_recipes_are_there():
    assert set(RECIPES) == {"A new op", "A new pass", "A new frontend", "A new backend"}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs(name, tmp_path, monkeypatch):
    from torchmdf.backends import unregister_backend
    from torchmdf.frontends import unregister_frontend

    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(RECIPES[name], f"ARCHITECTURE.md: {name}", "exec"), {"__name__": "recipe"})  # noqa: S102
    finally:
        unregister_frontend("polynomial")
        unregister_backend("histogram")


def test_every_path_the_page_names_exists():
    paths = set(re.findall(r"`((?:compiler|passes|backends|benchmarks)/[\w/]*(?:\.py)?)`", DOC))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing
