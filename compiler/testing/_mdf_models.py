"""Random MDF models, and mutations of existing MDF files.

:func:`mdf_documents` draws a model in its file form (the dict a JSON file holds): a DAG of
nodes whose input ports have defaults, constant, expression, ``function``, stateful and
time-derivative parameters, output ports over them, edges (some weighted) and scheduling
conditions.  Every value is a vector of one length, so each expression is well formed; the
arithmetic stays within ``+ - *`` and the MDF standard functions, which modeci_mdf and
torchmdf both define.  :func:`mdf_models` gives the same as :class:`torchmdf.mdf.Model`.

:func:`mutated_documents` takes a file's dict and breaks it the ways a hostile or damaged file
does (wrong types, missing and unknown keys, dangling references, hostile expressions and op
names, huge or odd numbers).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

_SMALL = st.floats(-2, 2, allow_nan=False, width=32).map(lambda x: round(x, 3))

#: MDF standard functions drawn for ``function`` parameters, with the arguments besides
#: ``variable0`` they take (values in ranges where both engines agree and nothing overflows).
_FUNCTIONS = {
    "linear": {"slope": _SMALL, "intercept": _SMALL},
    "logistic": {"gain": _SMALL, "bias": _SMALL, "offset": _SMALL},
    "sin": {"scale": _SMALL},
    "cos": {"scale": _SMALL},
    "tanh": {"scale": _SMALL},
}


def _vector(n: int) -> st.SearchStrategy[Any]:
    """``n`` small floats; ``n == 0``: one plain float (a scalar, no list)."""
    return _SMALL if n == 0 else st.lists(_SMALL, min_size=n, max_size=n)


@st.composite
def _expression(draw: Any, names: list[str], depth: int = 2) -> str:
    """``+ - *`` over ``names`` and small constants (parenthesized, so precedence is explicit)."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        if names and draw(st.integers(0, 3)):
            return draw(st.sampled_from(names))
        return repr(draw(_SMALL))
    op = draw(st.sampled_from(["+", "-", "*"]))
    return f"({draw(_expression(names, depth - 1))} {op} {draw(_expression(names, depth - 1))})"


@st.composite
def _node(draw: Any, nid: str, n: int, ports: int, stateful: bool) -> dict:
    names: list[str] = []
    input_ports = {}
    for k in range(ports):
        pid = f"in{k}"
        input_ports[pid] = {"shape": [n] if n else [], "default_value": draw(_vector(n))}
        names.append(pid)
    params: dict[str, Any] = {}
    port_names: list[str] = []
    for k in range(draw(st.integers(0, 4))):
        pid = f"p{k}"
        kind = draw(st.sampled_from(["const", "expr", "function"] + (["stateful", "derivative"] if stateful else [])))
        if kind == "const":
            params[pid] = {"value": draw(_vector(n))}
        elif kind == "expr":
            params[pid] = {"value": draw(_expression(names))}
        elif kind == "function":
            fn = draw(st.sampled_from(sorted(_FUNCTIONS)))
            args: dict[str, Any] = {"variable0": draw(st.sampled_from(names)) if names else draw(_SMALL)}
            args.update({a: draw(s) for a, s in _FUNCTIONS[fn].items()})
            params[pid] = {"function": fn, "args": args}
            port_names.append(pid)  # modeci_mdf has it only after the other parameters ran
            continue
        elif kind == "stateful":
            params[pid] = {"default_initial_value": draw(_vector(n)),
                           "value": f"{pid} + {draw(_expression(names, 1))}"}
        else:
            params[pid] = {"default_initial_value": draw(_vector(n)),
                           "time_derivative": f"(-0.5 * {pid}) + {draw(_expression(names, 1))}"}
        names.append(pid)
    outs = {}
    for k in range(draw(st.integers(1, 2))):
        outs[f"out{k}"] = {"value": draw(_expression(names + port_names, 2)) if names + port_names
                           else repr(draw(_SMALL))}
    body: dict[str, Any] = {"input_ports": input_ports, "parameters": params, "output_ports": outs}
    return {k: v for k, v in body.items() if v}


@st.composite
def mdf_documents(draw: Any, *, max_nodes: int = 4, stateful: bool = True, conditions: bool = True,
                  vectors: bool = True) -> dict:
    """An MDF model in file form (``{model_id: {"format": ..., "graphs": ...}}``); every value
    a vector of one length (1-3), or a scalar when not ``vectors`` (modeci_mdf computes on
    list-valued input ports as Python lists, so its engine needs scalars there)."""
    n = draw(st.integers(1, 3)) if vectors else 0
    count = draw(st.integers(1, max_nodes))
    nodes = {}
    for k in range(count):
        nodes[f"N{k}"] = draw(_node(f"N{k}", n, draw(st.integers(1 if k else 0, 2)), stateful))
    edges = {}
    for k in range(1, count):
        receiver = nodes[f"N{k}"]
        for pid in receiver.get("input_ports", {}):
            if not draw(st.integers(0, 2)):
                continue
            j = draw(st.integers(0, k - 1))
            edge: dict[str, Any] = {"sender": f"N{j}", "receiver": f"N{k}",
                                    "sender_port": draw(st.sampled_from(sorted(nodes[f"N{j}"]["output_ports"]))),
                                    "receiver_port": pid}
            if draw(st.booleans()):
                edge["parameters"] = {"weight": draw(_SMALL)}
            edges[f"e{len(edges)}"] = edge
    graph: dict[str, Any] = {"nodes": nodes}
    if edges:
        graph["edges"] = edges
    if conditions and count > 1 and draw(st.booleans()):
        specific = {}
        for k in range(1, count):
            kind = draw(st.sampled_from(["none", "Always", "EveryNCalls", "AfterNCalls"]))
            if kind == "Always":
                specific[f"N{k}"] = {"type": "Always", "kwargs": {}}
            elif kind != "none":
                specific[f"N{k}"] = {"type": kind, "kwargs": {"dependencies": f"N{draw(st.integers(0, k - 1))}",
                                                              "n": draw(st.integers(1, 3))}}
        if specific:
            graph["conditions"] = {"node_specific": specific}
    return {"fuzz": {"format": "ModECI MDF v0.4", "graphs": {"g": graph}}}


def mdf_models(**kwargs: Any) -> st.SearchStrategy:
    """:func:`mdf_documents` as :class:`torchmdf.mdf.Model` objects."""
    from ..mdf import Model

    return mdf_documents(**kwargs).map(lambda d: Model.from_dict(copy.deepcopy(d)))


# -- mutations -----------------------------------------------------------------------------------

#: Values a hostile or damaged file puts where another value belongs.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 2**63, 1e308, -1e308, float("nan"), float("inf"), "", "x" * 300, [], {}, [[]],
    [1, [2, 3]], {"a": {"b": {}}}, "__import__('os').system('true')", "open('/etc/passwd').read()",
    "().__class__.__bases__[0].__subclasses__()", "lambda: 0", "x.__dict__", "aten::from_file",
    "aten::save", "aten::empty", "onnx::NoSuchOp", "torch.load", "builtins.eval", "os.system",
    "pickle.loads", "9" * 500, "1" + "*9" * 400, "[" * 200 + "]" * 200, "a if b else c" * 50,
    "shape", "../../etc/passwd", "/dev/zero", "\x00", "\ud800",
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into ``doc``."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _hostile(draw: Any) -> Any:
    """One of HOSTILE_VALUES, copied: a later mutation of the document (a ``grow`` or a
    ``delete`` inside it) must not change the shared table (hypothesis saw data generation
    change between examples: found by the long profile)."""
    return copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES)))


@st.composite
def mutated_documents(draw: Any, doc: dict, max_mutations: int = 3) -> dict:
    """``doc`` (a file's dict) with 1..``max_mutations`` mutations: a value replaced by a hostile
    one, a key deleted, an unknown key added, a key renamed, a string reference redirected, a
    list or dict emptied or duplicated."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent_path, key = path[:-1], path[-1] if path else None
        kind = draw(st.sampled_from(["replace", "delete", "add", "rename", "redirect", "grow"]))
        if key is None:
            doc = {"m": _hostile(draw)}
            continue
        parent = _get(doc, parent_path)
        if kind == "replace":
            parent[key] = _hostile(draw)
        elif kind == "delete" and isinstance(parent, dict):
            del parent[key]
        elif kind == "delete" and isinstance(parent, list):
            parent.pop(key)
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["zzz", "value", "function", "args", "time_derivative", "shape",
                                         "conditions", "weight", "reduce", "default_value", "sender"]))] = \
                _hostile(draw)
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["renamed", "", "a.b", "in0", "N0", "__class__"]))] = parent.pop(key)
        elif kind == "redirect" and isinstance(parent[key], str):
            parent[key] = draw(st.sampled_from([parent[key] + "_missing", parent[key] + " + " + parent[key],
                                                parent[key] + "[9]", parent[key] + ".T",
                                                f"{parent[key]}({parent[key]})"]))
        elif kind == "grow":
            v = parent[key]
            if isinstance(v, list):
                parent[key] = v * draw(st.integers(2, 4)) + [v]
            elif isinstance(v, dict) and v:
                k0 = next(iter(v))
                v[f"{k0}_copy"] = copy.deepcopy(v[k0])
    return doc


def document_text(doc: Any) -> str:
    """The JSON text of a (possibly mutated) document; non-finite numbers as JSON allows them."""
    return json.dumps(doc, allow_nan=True)
