"""The ``metadata: {"torchmdf": {...}}`` entries torchmdf writes and reads: one schema each.

A model file is untrusted, so every key the project reads from it is listed here with its
type and checked by validation (:func:`problems`); keys not listed are never read, and only
listed keys reach a lowered graph (:func:`graph_metadata`).  The PyTorch call structures
(``pytorch_in_spec``/``pytorch_out_spec``, torch's pytree ``treespec_dumps`` JSON) are parsed by
:func:`load_treespec`, which admits only tuples, lists, dicts and leaves before torch sees the
text, so a file can never make pytree look up or import a type it names.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["MODEL_KEYS", "NODE_KEYS", "PARAMETER_KEYS", "problems", "graph_metadata", "load_treespec",
           "treespec_problem"]

_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                     "uint16", "uint32", "uint64", "bool", "complex64", "complex128"})
_SPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"})
_MAX_SPEC_DEPTH = 100
_MAX_SPEC_NODES = 1_000_000


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _str_list(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "a list of strings"


def _dtype(v: Any) -> str | None:
    return None if v in _DTYPES else f"one of {', '.join(sorted(_DTYPES))}"


def _role(v: Any) -> str | None:
    return None if v in ("parameter", "buffer") else "'parameter' or 'buffer'"


def _spec(v: Any) -> str | None:
    if not isinstance(v, str):
        return "a string (a pytree spec)"
    return treespec_problem(v)


#: key -> check(value) returning None when valid, else what the value must be
MODEL_KEYS: dict[str, Callable[[Any], str | None]] = {
    "output_ports": _str_list, "output_names": _str_list, "pytorch_in_spec": _spec,
    "pytorch_out_spec": _spec, "pytorch_input_names": _str_list,
}
NODE_KEYS: dict[str, Callable[[Any], str | None]] = {"state": _str, "dtype": _dtype}
PARAMETER_KEYS: dict[str, Callable[[Any], str | None]] = {"name": _str, "role": _role, "dtype": _dtype}


def problems(metadata: Any, keys: dict[str, Callable[[Any], str | None]]) -> list[tuple[str, str]]:
    """``(key, message)`` for each listed key of ``metadata["torchmdf"]`` whose value is wrong."""
    if not isinstance(metadata, dict) or "torchmdf" not in metadata:
        return []
    tm = metadata["torchmdf"]
    if not isinstance(tm, dict):
        return [("torchmdf", "must be a mapping")]
    out = []
    for k, check in keys.items():
        if k in tm:
            want = check(tm[k])
            if want is not None:
                out.append((k, f"must be {want}"))
    return out


def graph_metadata(metadata: Any) -> dict[str, Any]:
    """The model-level entries a lowered graph takes over (listed keys only)."""
    tm = metadata.get("torchmdf") if isinstance(metadata, dict) else None
    if not isinstance(tm, dict):
        return {}
    return {k: tm[k] for k in MODEL_KEYS if k in tm and MODEL_KEYS[k](tm[k]) is None}


def treespec_problem(text: str) -> str | None:
    """None when ``text`` is a pytree spec of tuples, lists, dicts and leaves; else what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return "a pytree spec (JSON)"
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
        return "a pytree spec: [protocol, tree]"
    stack = [(data[1], 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > _MAX_SPEC_DEPTH or count > _MAX_SPEC_NODES:
            return f"a pytree spec at most {_MAX_SPEC_DEPTH} levels deep"
        if not isinstance(node, dict) or set(node) != {"type", "context", "children_spec"}:
            return "a pytree spec (each entry with type, context and children_spec)"
        t = node["type"]
        if t not in _SPEC_TYPES:
            return f"a pytree spec of tuples, lists, dicts and tensors, not {str(t)[:60]!r}"
        children = node["children_spec"]
        if not isinstance(children, list) or (t is None and children):
            return "a pytree spec (children_spec a list; a leaf has none)"
        if t in ("builtins.dict", "collections.OrderedDict"):
            try:
                keys = json.loads(node["context"]) if isinstance(node["context"], str) else None
            except (ValueError, RecursionError):
                keys = None
            if not (isinstance(keys, list) and len(keys) == len(children)
                    and all(isinstance(k, (str, int)) for k in keys)):
                return "a pytree spec (a dict's context: its keys, one per child)"
        elif t is not None and node["context"] not in ("null", None):
            return "a pytree spec (a tuple or list has no context)"
        stack.extend((c, depth + 1) for c in children)
    return None


def load_treespec(text: str, location: str | None = None) -> Any:
    """A ``TreeSpec`` from ``treespec_dumps`` text, checked by :func:`treespec_problem` first."""
    from torch.utils import _pytree as pytree

    from torchmdf.errors import ValidationError

    want = treespec_problem(text) if isinstance(text, str) else "a string"
    if want is not None:
        raise ValidationError(f"torchmdf metadata: the call structure must be {want}", location=location)
    try:
        return pytree.treespec_loads(text)
    except Exception as e:  # noqa: BLE001 - torch's own complaint, located
        raise ValidationError(f"torchmdf metadata: unreadable call structure ({type(e).__name__}: {e})",
                              location=location) from e
