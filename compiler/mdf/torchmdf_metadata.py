"""The ``metadata: {"torchmdf": {...}}`` entries torchmdf writes and reads: one typed schema each.

A model file is untrusted, so every key the project reads from it is a field of a schema here
(:class:`ModelMetadata`, :class:`NodeMetadata`, :class:`ParameterMetadata`,
:class:`PortMetadata`) with its check; readers get a parsed, checked object from
``Schema.read(metadata)`` and never touch the raw mapping.  Validation reports the same checks
(:func:`problems`); keys not listed are never read.  The PyTorch call structures
(``pytorch_in_spec``/``pytorch_out_spec``, torch's pytree ``treespec_dumps`` JSON) are parsed by
:func:`load_treespec`, which admits only tuples, lists, dicts and leaves before torch sees the
text, so a file can never make pytree look up or import a type it names.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, ClassVar, TypeVar

__all__ = ["ModelMetadata", "NodeMetadata", "ParameterMetadata", "PortMetadata", "MODEL_KEYS", "NODE_KEYS",
           "PARAMETER_KEYS", "PORT_KEYS", "problems", "graph_metadata", "load_treespec", "treespec_problem"]

_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                     "uint16", "uint32", "uint64", "bool", "complex64", "complex128"})
_SPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"})
_MAX_SPEC_DEPTH = 100
_MAX_SPEC_NODES = 1_000_000
_DIM_NAME = re.compile(r"[\w*+\- /()]+")


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


def _shape(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) <= 64 and all(
        (type(d) is int and d >= 0) or (isinstance(d, str) and 0 < len(d) <= 200 and _DIM_NAME.fullmatch(d))
        for d in v)
    return None if ok else "a list of non-negative ints and dim names"


def _int_shape(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) <= 64 and all(type(d) is int and 0 <= d <= 2**31 for d in v)
    return None if ok else "a list of non-negative ints"


_S = TypeVar("_S", bound="_Schema")


class _Schema:
    """A ``metadata["torchmdf"]`` entry: each dataclass field is one file key, checked."""

    #: file key -> (field name, check(value) returning None when valid, else what it must be)
    FIELDS: ClassVar[dict[str, tuple[str, Callable[[Any], str | None]]]] = {}

    @classmethod
    def checks(cls) -> dict[str, Callable[[Any], str | None]]:
        return {key: check for key, (_, check) in cls.FIELDS.items()}

    @classmethod
    def read(cls: type[_S], metadata: Any, location: str | None = None, *, lenient: bool = False) -> _S:
        """The checked entry of an object's ``metadata``.  A wrong value raises a located
        :class:`~torchmdf.errors.ValidationError`; with ``lenient`` it is left out instead
        (for hints that validation has already reported)."""
        values = {}
        for key, value, want in _entries(metadata, cls.checks()):
            if want is None:
                values[cls.FIELDS[key][0]] = value
            elif not lenient:
                from torchmdf.errors import ValidationError

                what = "torchmdf" if key == "torchmdf" else f"torchmdf.{key}"
                raise ValidationError(f"metadata {what} {want}", location=location)
        return cls(**values)

    def to_metadata(self) -> dict[str, Any]:
        """The entry as written to a file: the keys whose values are set, in schema order."""
        return {key: getattr(self, name) for key, (name, _) in self.FIELDS.items()
                if getattr(self, name) is not None}


def _entries(metadata: Any, keys: dict[str, Callable[[Any], str | None]]):
    """``(key, value, None or "must be ...")`` for each listed key of ``metadata["torchmdf"]``."""
    if not isinstance(metadata, dict) or "torchmdf" not in metadata:
        return
    tm = metadata["torchmdf"]
    if not isinstance(tm, dict):
        yield "torchmdf", tm, "must be a mapping"
        return
    for k, check in keys.items():
        if k in tm:
            want = check(tm[k])
            yield k, tm[k], None if want is None else f"must be {want}"


@dataclasses.dataclass(frozen=True)
class ModelMetadata(_Schema):
    """A model's (or graph's) entry: the outputs torchmdf wrote, in order, and the original
    PyTorch calling convention (see :class:`torchmdf.ir.GraphSignature`)."""

    output_ports: list[str] | None = None  # "node.port" of each graph output
    output_names: list[str] | None = None  # the names a source MDF gave them
    in_spec: str | None = None
    out_spec: str | None = None
    input_names: list[str] | None = None
    captures: list[str] | None = None  # a region: its owner's input ports its last inputs read

    FIELDS: ClassVar = {"output_ports": ("output_ports", _str_list), "output_names": ("output_names", _str_list),
                        "pytorch_in_spec": ("in_spec", _spec), "pytorch_out_spec": ("out_spec", _spec),
                        "pytorch_input_names": ("input_names", _str_list), "captures": ("captures", _str_list)}

    def signature(self) -> Any:
        """The part of a :class:`~torchmdf.ir.GraphSignature` a file carries."""
        from torchmdf.ir import GraphSignature

        return GraphSignature(input_names=None if self.input_names is None else list(self.input_names),
                              in_spec=self.in_spec, out_spec=self.out_spec)


@dataclasses.dataclass(frozen=True)
class NodeMetadata(_Schema):
    """A state node's entry (a mutated buffer written as a node): its name and dtype."""

    state: str | None = None
    dtype: str | None = None

    FIELDS: ClassVar = {"state": ("state", _str), "dtype": ("dtype", _dtype)}


@dataclasses.dataclass(frozen=True)
class ParameterMetadata(_Schema):
    """A weight's entry: its PyTorch name, whether it is a parameter or a buffer, its dtype."""

    name: str | None = None
    role: str | None = None
    dtype: str | None = None
    #: the shape of an empty tensor of a rank other than 1, which a JSON ``[]`` cannot hold
    shape: list[int] | None = None

    FIELDS: ClassVar = {"name": ("name", _str), "role": ("role", _role), "dtype": ("dtype", _dtype),
                        "shape": ("shape", _int_shape)}


@dataclasses.dataclass(frozen=True)
class PortMetadata(_Schema):
    """An input port's entry: its shape with symbolic dims (``["batch", 16]``), which MDF's
    ``shape`` (ints only) cannot hold."""

    shape: list[int | str] | None = None

    FIELDS: ClassVar = {"shape": ("shape", _shape)}


#: key -> check(value) returning None when valid, else what the value must be
MODEL_KEYS: dict[str, Callable[[Any], str | None]] = ModelMetadata.checks()
NODE_KEYS: dict[str, Callable[[Any], str | None]] = NodeMetadata.checks()
PARAMETER_KEYS: dict[str, Callable[[Any], str | None]] = ParameterMetadata.checks()
PORT_KEYS: dict[str, Callable[[Any], str | None]] = PortMetadata.checks()


def problems(metadata: Any, keys: dict[str, Callable[[Any], str | None]]) -> list[tuple[str, str]]:
    """``(key, message)`` for each listed key of ``metadata["torchmdf"]`` whose value is wrong."""
    return [(k, want) for k, _, want in _entries(metadata, keys) if want is not None]


def graph_metadata(*metadata: Any) -> ModelMetadata:
    """The model-level entry a lowered graph takes over: valid keys only, each mapping's (a
    graph's) over the ones before it (its model's)."""
    values: dict[str, Any] = {}
    for md in metadata:
        entry = ModelMetadata.read(md, lenient=True)
        values.update((f.name, getattr(entry, f.name)) for f in dataclasses.fields(entry)
                      if getattr(entry, f.name) is not None)
    return ModelMetadata(**values)


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
