"""The stable text form of a graph, used in error messages, docs and expect-tests."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ._core import Graph, Node, Value


def _fmt_attr(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, torch.Tensor):
        if v.numel() <= 4:
            return f"tensor({v.tolist()})"
        return f"tensor<{tuple(v.shape)}>"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_fmt_attr(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    if isinstance(v, str):
        return repr(v)
    return str(v)


def _val(v: Value | None) -> str:
    return "None" if v is None else f"%{v.name}"


def format_node(n: Node) -> str:
    outs = ", ".join(f"%{o.name}: {o.type}" for o in n.outputs)
    args = ", ".join(_val(v) for v in n.inputs)
    attrs = ""
    if n.attrs:
        attrs = " {" + ", ".join(f"{k}={_fmt_attr(n.attrs[k])}" for k in sorted(n.attrs)) + "}"
    where = str(n.provenance)
    line = f"{outs} = {n.op}({args}){attrs}" if outs else f"{n.op}({args}){attrs}"
    return line + (f"  # {where}" if where else "")


def print_graph(g: Graph, *, provenance: bool = True) -> str:
    """The graph as text; a node's regions follow it, indented (explicit stack: any depth)."""
    lines: list[str] = []
    stack = [_graph_lines(g, "", provenance)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, str):
            lines.append(item)
        else:  # a region to print here
            stack.append(_graph_lines(item[0], item[1], provenance))
    return "\n".join(lines)


def _graph_lines(g: Graph, indent: str, provenance: bool) -> Iterator[str | tuple[Graph, str]]:
    ins = ", ".join(f"%{v.name}: {v.type}" for v in g.inputs)
    head = "region" if g.parent_node is not None else "graph"
    yield f"{indent}{head} {g.name}({ins}) {{"
    if g.signature:
        yield f"{indent}  signature {g.signature.describe()}"
    for sv in g.state:
        init = "computed" if sv.init is None else _fmt_attr(sv.init)
        yield f"{indent}  state %{sv.current.name}: {sv.current.type} = {init} -> {_val(sv.next)}"
    for name, v in g.parameters.items():
        yield f"{indent}  {v.role} %{name}: {v.type} = {_fmt_attr(v.tensor)}"
    for n in g:
        line = format_node(n)
        yield indent + "  " + (line if provenance else line.split("  # ")[0])
        for r in n.regions:
            yield (r, indent + "    ")
    yield f"{indent}  return {', '.join(_val(v) for v in g.outputs)}"
    yield f"{indent}}}"
