"""The README's code blocks run as written."""

from __future__ import annotations

import re

from conftest import REPO


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_write_your_own_pass_section_runs():
    blocks = [b for b in _python_blocks() if "class ReluOfReluIsRelu" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})  # our own README, not user data


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    cmds = [ln for ln in first_block.splitlines() if ln and not ln.startswith("#")]
    assert len(cmds) == 2
    assert "torchmdf demo" in cmds[0] and cmds[0].startswith("python3 -m venv")
    assert 'pip install -e ".[test]" && python -m pytest' in cmds[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert cmds[1] in ci  # CI runs exactly the README's test command
