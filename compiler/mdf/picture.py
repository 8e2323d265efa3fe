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


def _nested_graphs(graph: Any, where: str) -> list[tuple[str, str, Any]]:
    """The graphs nested in ``graph``, each as ``(owner node id, label, graph)``: a control-flow
    node's graph-valued parameters (``{"graph_<id>": {...}}``, If branches, a Loop body) and
    graphs held directly in ``nodes`` (modeci_mdf's PyTorch importer writes a Loop body so)."""
    from torchmdf.mdf.model import Graph

    out = []
    for n in graph.nodes:
        if isinstance(n, Graph):
            out.append((n.id, f"graph {n.id}", n))
            continue
        for p in getattr(n, "parameters", []):
            if _is_graph_value(p.value):
                key, body = next(iter(p.value.items()))
                gid = key[6:] if isinstance(key, str) and key.startswith("graph_") and len(key) > 6 else str(key)
                sub = Graph.from_dict(body, id=gid, location=f"{where} > node '{n.id}' > parameter '{p.id}'")
                out.append((n.id, f"{n.id}.{p.id}: graph {gid}", sub))
    return out


def _is_graph_value(v: Any) -> bool:
    from torchmdf.frontends.mdf import is_graph_value

    return is_graph_value(v)


def _node_label(n: Any, level: int) -> str:
    rows = [f'<tr><td bgcolor="#cfe2f3" colspan="2"><b>{_html(n.id)}</b></td></tr>']
    if level >= 2:
        for ip in getattr(n, "input_ports", []):
            rows.append(f'<tr><td port="in_{_html(ip.id)}" colspan="2">in: {_html(ip.id)}</td></tr>')
    if level >= 3:
        for p in getattr(n, "parameters", []):
            text = "nested graph (cluster)" if _is_graph_value(p.value) else _value_text(p)
            rows.append(f"<tr><td>{_html(p.id)}</td><td>{_html(text)}</td></tr>")
    if level >= 2:
        for op in getattr(n, "output_ports", []):
            rows.append(f'<tr><td port="out_{_html(op.id)}" colspan="2">out: {_html(op.id)} = '
                        f"{_html(op.value)}</td></tr>")
    return '<<table border="0" cellborder="1" cellspacing="0">' + "".join(rows) + "</table>>"


def to_dot(model: Any, level: int = 2) -> str:
    """DOT source for the first graph of ``model``: nodes (with ports at level >= 2 and
    parameters at level 3), edges labelled with their weight; each nested graph (a control-flow
    node's If branches or Loop body) is a cluster next to its node, joined to it by a dashed
    line, at every level and any depth (an explicit stack, no recursion).  DOT ids are
    generated (``n0``, ``n1``...), so a node of a nested graph never collides with an outer one."""
    from torchmdf.mdf.model import Graph

    top = model.graphs[0]
    lines = [f"digraph {_q(top.id)} {{", "  rankdir=TB;", "  compound=true;",
             '  node [shape=plaintext, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];']
    counter = iter(range(1 << 62))
    # work items: a graph to draw (its indent, where it is for errors), or a line (a cluster's end)
    stack: list[Any] = [(top, "  ", f"model '{model.id}' > graph '{top.id}'")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            lines.append(item)
            continue
        g, pad, where = item
        ids = {n.id: f"n{next(counter)}" for n in g.nodes if not isinstance(n, Graph)}
        anchors: dict[str, str] = {}
        children = []
        for owner_id, label, sub in _nested_graphs(g, where):
            name = f"cluster_{next(counter)}"
            anchor = f"n{next(counter)}"
            anchors[owner_id] = anchor
            children.append((sub, label, ids.get(owner_id), name, anchor, f"{where} > graph '{sub.id}'"))
        for n in g.nodes:
            if not isinstance(n, Graph):
                lines.append(f"{pad}{ids[n.id]} [label={_node_label(n, level)}];")
        for e in g.edges:
            lines.append(pad + _edge(e, ids, anchors, level, g))
        for sub, label, owner_dot, name, anchor, sub_where in reversed(children):
            inner = pad + "  "
            if owner_dot is not None:  # after the cluster: an edge inside it would pull the owner in
                stack.append(f"{pad}{owner_dot} -> {anchor} [style=dashed, arrowhead=none, lhead={name}];")
            stack.append(f"{pad}}}")
            stack.append((sub, inner, sub_where))
            stack.append(f'{pad}subgraph {name} {{\n{inner}label={_q(label)}; style="rounded,dashed"; '
                         f'color="#7f7f7f"; fontname="Helvetica";\n{inner}{anchor} [shape=point, width=0.05, '
                         'label=""];')
    lines.append("}")
    return "\n".join(lines)


def _edge(e: Any, ids: dict[str, str], anchors: dict[str, str], level: int, g: Any) -> str:
    """One edge; an endpoint that is a nested graph (not a node) is its cluster's anchor point."""
    def end(node_id: str, port: str, kind: str) -> str:
        if node_id in ids:
            return f'{ids[node_id]}:{_q(kind + port)}' if level >= 2 else ids[node_id]
        return anchors.get(node_id) or anchors.get(f"LoopSubgraph{node_id}") or _q(node_id)

    w = (e.parameters or {}).get("weight") if e.parameters else None
    label = f" [label={_q(w)}]" if w is not None and not hasattr(w, "shape") else ""
    return f"{end(e.sender, e.sender_port, 'out_')} -> {end(e.receiver, e.receiver_port, 'in_')}{label};"


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
