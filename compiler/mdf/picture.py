"""Pictures of MDF graphs: DOT text written here, rendered by the system ``dot`` when
present, else by ``graphviz-pure`` (a PyPI package shipping a binary with dot's command
line, in the ``viz`` and ``test`` extras).  Nothing from the file is executed: ids and values
are quoted into DOT strings."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from torchmdf.errors import TorchMDFError

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


def _q(s: Any) -> str:
    text = str(s)
    if len(text) > 60:
        text = text[:57] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _html(s: Any) -> str:
    text = str(s)
    if len(text) > 50:
        text = text[:47] + "..."
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _value_text(p: Any) -> str:
    if p.function:
        return f"{p.function}(...)"
    v = p.value if p.value is not None else p.time_derivative
    if hasattr(v, "shape") and getattr(v, "numel", lambda: 0)() > 4:
        return f"tensor{tuple(v.shape)}"
    return str(v.tolist() if hasattr(v, "tolist") else v)


def to_dot(model: Any, level: int = 2) -> str:
    """DOT source for the first graph of ``model``: nodes (with ports at level >= 2 and
    parameters at level 3), edges labelled with their weight."""
    g = model.graphs[0]
    lines = [f"digraph {_q(g.id)} {{", "  rankdir=TB;", '  node [shape=plaintext, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for n in g.nodes:
        rows = [f'<tr><td bgcolor="#cfe2f3" colspan="2"><b>{_html(n.id)}</b></td></tr>']
        if level >= 2:
            for ip in getattr(n, "input_ports", []):
                rows.append(f'<tr><td port="in_{_html(ip.id)}" colspan="2">in: {_html(ip.id)}</td></tr>')
        if level >= 3:
            for p in getattr(n, "parameters", []):
                rows.append(f"<tr><td>{_html(p.id)}</td><td>{_html(_value_text(p))}</td></tr>")
        if level >= 2:
            for op in getattr(n, "output_ports", []):
                rows.append(f'<tr><td port="out_{_html(op.id)}" colspan="2">out: {_html(op.id)} = '
                            f"{_html(op.value)}</td></tr>")
        table = '<<table border="0" cellborder="1" cellspacing="0">' + "".join(rows) + "</table>>"
        lines.append(f"  {_q(n.id)} [label={table}];")
    for e in g.edges:
        src = f'{_q(e.sender)}:{_q("out_" + e.sender_port)}' if level >= 2 else _q(e.sender)
        dst = f'{_q(e.receiver)}:{_q("in_" + e.receiver_port)}' if level >= 2 else _q(e.receiver)
        w = (e.parameters or {}).get("weight") if e.parameters else None
        label = f" [label={_q(w)}]" if w is not None and not hasattr(w, "shape") else ""
        lines.append(f"  {src} -> {dst}{label};")
    lines.append("}")
    return "\n".join(lines)


def renderer() -> list[str]:
    """The command that renders DOT: system ``dot``, else ``graphviz-pure``."""
    for name in ("dot", "graphviz-pure"):
        exe = shutil.which(name)
        if exe:
            return [exe]
    raise TorchMDFError("no Graphviz renderer found",
                        hint="pip install 'torchmdf[viz]' (brings graphviz-pure), or install Graphviz's dot")


def draw(model: Any, path: str | os.PathLike, *, level: int = 2) -> Path:
    """Render ``model`` to ``path`` (.png, .svg, .pdf or .dot); written atomically."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TorchMDFError(f"cannot draw to '{path.name}'", hint=f"use one of {', '.join(_FORMATS)}")
    dot = to_dot(model, level)
    from torchmdf.mdf.io import atomic_write_bytes

    if fmt == "dot":
        atomic_write_bytes(path, dot.encode())
        return path
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "graph.dot"
        out = Path(tmp) / f"graph.{fmt}"
        src.write_text(dot, encoding="utf-8")
        try:
            res = subprocess.run(renderer() + [f"-T{fmt}", str(src), "-o", str(out)], capture_output=True,
                                 text=True, timeout=120)
        except subprocess.TimeoutExpired as e:
            raise TorchMDFError("rendering the picture took over 120 s") from e
        if res.returncode != 0 or not out.exists():
            raise TorchMDFError(f"the renderer failed: {res.stderr.strip()[:500]}")
        atomic_write_bytes(path, out.read_bytes())
    return path


__all__ = ["draw", "to_dot", "renderer"]
