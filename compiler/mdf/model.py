"""The MDF v0.4 object model as plain typed classes.

Field lists follow the ModECI MDF v0.4 specification and modeci-mdf 0.4.15's ``modeci_mdf.mdf``
(plus ``notes``, which older MDF versions and the NeuroML examples write where the spec now has
``metadata``).  Collections are ordered lists (``model.graphs``, ``graph.nodes``,
``node.parameters``, ...); in a file they are mappings keyed by id, as modeci_mdf writes them.

Values: a number stays a Python number, a string is an expression (see
:mod:`torchmdf.mdf.expressions`), and a nested list of numbers becomes a ``torch.Tensor``
(int64, float64 or bool, so nothing is lost) and a nested list again when saved (a weight in
an external sidecar is a tensor of its own dtype once loaded, see :mod:`torchmdf.mdf.weights`).

``from_dict`` collects every structural problem (unknown key, entry of the wrong kind, duplicate
key) before raising one :class:`~torchmdf.errors.ValidationError` with ``.problems``; the deeper
checks (types, references, expressions, cycles) are :func:`torchmdf.mdf.validate`.  Objects
compare by identity (as in modeci_mdf); compare ``to_dict()`` for content.

Two forms from modeci_mdf's own writers are read as they were meant:

* a ``nodes`` entry holding ``nodes``/``edges`` is a nested :class:`Graph` (modeci_mdf's PyTorch
  importer writes an ``onnx::Loop`` body that way, see ``examples/PyTorch/ddm.json``);
* files older than v0.4 (PsyNeuLink's v0.1) write shapes as strings (``"(1,)"``), condition
  arguments as ``args``, and ``function: {"onnx::Gemm": {...}}``; these load as the v0.4 fields.
"""

from __future__ import annotations

import warnings
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from torchmdf.errors import UnknownKeyWarning, ValidationError

__all__ = [
    "Model", "Graph", "Node", "InputPort", "OutputPort", "Parameter", "ParameterCondition",
    "Function", "Edge", "Condition", "ConditionSet", "MDF_FORMAT", "format_location",
]

#: The format string written into models built in code.
MDF_FORMAT = "ModECI MDF v0.4"


def _generating_application() -> str:
    try:
        from torchmdf import __version__
    except ImportError:  # pragma: no cover - partial installs
        __version__ = "0"
    return f"Python torchmdf v{__version__}"


# ---------------------------------------------------------------------------------------------
# Locations and problem collection
# ---------------------------------------------------------------------------------------------

def seg(kind: str, ident: Any) -> str:
    """One step of an MDF path: ``node 'A'``."""
    return f"{kind} {ident!r}"


def format_location(prefix: str | None, path: Iterable[str]) -> str | None:
    """``file 'm.json' > model 'm' > graph 'g' > node 'A'`` (None when there is nothing to say)."""
    parts = [prefix] if prefix else []
    parts.extend(path)
    return " > ".join(parts) if parts else None


class DupDict(dict):
    """A mapping read from a file that repeated some keys (the readers make one so the loader
    can report them where they are); ``duplicates`` lists the repeated keys."""

    duplicates: list


class _Ctx:
    """Problems found while building objects from a dict, each with its full location.
    Unknown keys are problems only when ``strict``; otherwise each is kept on its object's
    ``extra`` and listed in ``unknown`` (``(location, key)``) for one warning."""

    __slots__ = ("prefix", "problems", "strict", "unknown")

    def __init__(self, prefix: str | None, strict: bool = False):
        self.prefix = prefix
        self.problems: list[ValidationError] = []
        self.strict = strict
        self.unknown: list[tuple[str | None, str]] = []

    def warn_unknown(self) -> None:
        """One warning naming every unknown key kept (the first few with their place)."""
        if not self.unknown:
            return
        shown = "; ".join(f"{loc}: {k!r}" if loc else repr(k) for loc, k in self.unknown[:5])
        more = f" (and {len(self.unknown) - 5} more)" if len(self.unknown) > 5 else ""
        keys = sorted({k for _, k in self.unknown})
        warnings.warn(UnknownKeyWarning(
            f"{len(self.unknown)} unknown key(s) kept as extra fields (written back on save), "
            f"as modeci_mdf keeps them: {shown}{more}; keys: {', '.join(map(repr, keys[:10]))}"
            " -- load(..., strict=True) refuses them"), stacklevel=4)

    def error(self, path: tuple, message: str, hint: str | None = None) -> None:
        self.problems.append(ValidationError(message, location=format_location(self.prefix, path),
                                             hint=hint))

    def raise_if_any(self) -> None:
        if self.problems:
            raise _combine(self.problems, self.prefix)


def _combine(problems: list[ValidationError], prefix: str | None) -> ValidationError:
    """One error for a list of problems: the problem itself when there is one, else a summary
    listing each (so the message alone says everything)."""
    if len(problems) == 1:
        p = problems[0]
        err = type(p)(p.raw_message, location=p.location, hint=p.hint, problems=[p])
        return err
    lines = [f"{len(problems)} problems:"]
    for p in problems:
        lines.append(f"  - {p}".replace("\n", "\n    "))
    return ValidationError("\n".join(lines), location=prefix, problems=problems)


def _check_keys(ctx: _Ctx, path: tuple, body: dict, allowed: frozenset, shown: str,
                dups: bool = True) -> dict | None:
    """Report repeated keys; unknown keys are an error when ``ctx.strict``, else returned
    (``{key: value}``) to be kept on the object as ``extra``."""
    extra = None
    for k in body:
        if k not in allowed:
            if ctx.strict or not isinstance(k, str):
                ctx.error(path, f"unknown key {k!r}", hint=f"allowed here: {shown}")
            else:
                if extra is None:
                    extra = {}
                extra[k] = body[k]
                ctx.unknown.append((format_location(None, path), k))
    repeated = getattr(body, "duplicates", None) if dups else None
    if repeated:
        ctx.error(path, "key(s) " + ", ".join(repr(k) for k in repeated) + " given more than once")
    return extra


def _with_extra(extra: dict | None, obj: Any) -> Any:
    if extra:
        obj.extra = extra
    return obj


def _dups(ctx: _Ctx, path: tuple, d: Any, what: str) -> None:
    dups = getattr(d, "duplicates", None)
    if dups:
        ctx.error(path, f"{what}: key(s) " + ", ".join(repr(k) for k in dups) + " given more than once")


def _keys(*names: str) -> tuple[frozenset, str]:
    return frozenset(names), ", ".join(names)


def _collection(ctx: _Ctx, path: tuple, value: Any, kind: str, key: str,
                build: Callable[[dict, Any, _Ctx, tuple], Any]) -> list:
    """Build a collection written as ``{id: {...}}`` (or a list of ``{id: ..., ...}``)."""
    if value is None:
        return []
    out = []
    if isinstance(value, dict):
        dups = getattr(value, "duplicates", None)
        if dups:
            ctx.error(path, f"{key}: id(s) " + ", ".join(repr(k) for k in dups) + " given more than once")
        for ident, body in value.items():
            p = path + (seg(kind, ident),)
            if body is None:
                body = {}
            if not isinstance(body, dict):
                ctx.error(p, f"expected a mapping of fields, got {_tname(body)}")
                continue
            out.append(build(body, ident, ctx, p))
        return out
    if isinstance(value, list):
        for i, body in enumerate(value):
            if not isinstance(body, dict) or "id" not in body:
                ctx.error(path + (f"{key}[{i}]",), f"a list entry of {key} must be a mapping with an 'id'")
                continue
            out.append(build(body, body["id"], ctx, path + (seg(kind, body["id"]),)))
        return out
    ctx.error(path, f"{key} must be a mapping of id -> {kind}, got {_tname(value)}")
    return []


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _check_id(ctx: _Ctx, path: tuple, body: dict, ident: Any) -> None:
    if "id" in body and body["id"] != ident:
        ctx.error(path, f"'id' {body['id']!r} differs from the key {ident!r} it is written under")


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

_ARRAY_KINDS = frozenset("bif")


def to_value(v: Any) -> Any:
    """A value read from a file: nested lists of numbers become tensors, the rest stays."""
    if type(v) is np.ndarray and v.dtype.kind in _ARRAY_KINDS:  # parsed by mdf.arrays.parse_fast
        return torch.from_numpy(v)
    if type(v) is list:
        try:
            a = np.asarray(v)
        except (ValueError, TypeError, OverflowError, RecursionError):
            return v  # ragged, mixed or too deep: left as written
        if a.dtype.kind in _ARRAY_KINDS and a.dtype != np.float16:
            return torch.from_numpy(a)
    return v


def _values(d: Any) -> Any:
    """Convert the values of a dict read from a file (args, edge parameters)."""
    if isinstance(d, dict):
        out = {k: to_value(v) for k, v in d.items()}
        if isinstance(d, DupDict):
            out = DupDict(out)
            out.duplicates = d.duplicates
        return out
    return d


class _SaveError(Exception):
    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


#: Set by ``Model.to_dict(keep_arrays=True)``: tensors and arrays stay as they are (for the
#: streaming writer in :mod:`torchmdf.mdf.arrays`) instead of becoming nested lists.
_KEEP_ARRAYS: ContextVar[bool] = ContextVar("torchmdf_keep_arrays", default=False)


def to_plain(v: Any, path: tuple = ()) -> Any:
    """A value as JSON/YAML data (tensors and arrays become nested lists)."""
    t = type(v)
    if v is None or t is str or t is int or t is float or t is bool:
        return v
    if isinstance(v, torch.Tensor):
        if not (v.dtype.is_floating_point or v.dtype in _INT_DTYPES):  # complex, uint32...: no
            raise _SaveError(path, f"cannot write a tensor of dtype {v.dtype}")
        if _KEEP_ARRAYS.get():
            return v if v.dim() else v.item()
        return v.detach().cpu().tolist()
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise _SaveError(path, f"cannot write a numpy array of dtype {v.dtype}")
        if _KEEP_ARRAYS.get():
            return v if v.ndim else v.item()
        return v.tolist()
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        return v.item()
    if isinstance(v, (bool, int, float, str)):  # subclasses (IntEnum, numpy-registered...)
        return bool(v) if isinstance(v, bool) else int(v) if isinstance(v, int) else \
            float(v) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return [to_plain(x, path) for x in v]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, (str, int, float, bool)):
                raise _SaveError(path, f"cannot write a mapping key of type {type(k).__name__}")
            out[k] = to_plain(x, path)
        return out
    if isinstance(v, Condition):
        return v.to_dict()
    raise _SaveError(path, f"cannot write a value of type {type(v).__name__}")


_INT_DTYPES = frozenset([torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool])


def _put(d: dict, key: str, value: Any, path: tuple) -> None:
    if value is not None:
        d[key] = to_plain(value, path + (key,))


def _put_common(d: dict, obj: Any, path: tuple) -> None:
    _put_extra(d, obj, path)
    if obj.metadata is not None:
        d["metadata"] = to_plain(obj.metadata, path + ("metadata",))
    if obj.notes is not None:
        d["notes"] = to_plain(obj.notes, path + ("notes",))


def _put_extra(d: dict, obj: Any, path: tuple) -> None:
    """Keys this model does not know, kept from the file it was loaded from, written back."""
    extra = getattr(obj, "extra", None)
    if extra:
        if not isinstance(extra, dict):
            raise _SaveError(path, f"extra must be a mapping, not {_tname(extra)}")
        for k, v in extra.items():
            d[k] = to_plain(v, path + (k,))


def _shape(v: Any) -> Any:
    """Shapes as tuples; ``"(1, 2)"`` (PsyNeuLink/modeci_mdf string form) is read too (by
    splitting, not a regular expression: linear in the length).  Anything else is returned as
    is, for validation to report."""
    if type(v) is list:
        return tuple(v)
    if isinstance(v, str) and len(v) <= 10_000:
        t = v.strip()
        if len(t) >= 2 and t[0] in "([" and t[-1] in ")]":
            parts = [x.strip() for x in t[1:-1].split(",")]
            if parts and parts[-1] == "":
                parts.pop()  # "(3,)"
            if all(x.isascii() and x.isdigit() and len(x) <= 18 for x in parts):
                return tuple(int(x) for x in parts)
    return v


def _function_field(ctx: _Ctx, path: tuple, body: dict) -> tuple[Any, Any]:
    """``function`` and ``args``; ``function: {"onnx::Gemm": {...}}`` is the same as
    ``function: "onnx::Gemm", args: {...}``."""
    fn, args = body.get("function"), body.get("args")
    if isinstance(fn, dict):
        if len(fn) != 1:
            ctx.error(path + ("function",), "a function given as a mapping must have exactly one "
                      f"key (the function name), got {len(fn)}")
            return fn, args
        (name, inner), = fn.items()
        if args is not None:
            ctx.error(path, "'args' given both beside and inside 'function'")
        return name, ({} if inner is None else inner)
    return fn, args


# ---------------------------------------------------------------------------------------------
# The file form, declared: each field's codec says how it is read and written
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Codec:
    """How one field is read from a file body (``read(ctx, path, body, key, out)`` sets
    ``out[key]``, reporting problems on ``ctx``) and written (``write(d, key, value, path)``)."""

    read: Callable[[_Ctx, tuple, dict, str, dict], None]
    write: Callable[[dict, str, Any, tuple], None]


def _reader(convert: Callable[[Any], Any]) -> Callable[[_Ctx, tuple, dict, str, dict], None]:
    def read(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
        out[key] = convert(body.get(key))
    return read


def _read_mapping(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    _dups(ctx, path, body.get(key), key)
    out[key] = _values(body.get(key))


def _read_required(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    if key not in body:
        ctx.error(path, f"missing {key!r}")
    out[key] = body.get(key)


def _read_function(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    fn, args = _function_field(ctx, path, body)
    _dups(ctx, path, args, "args")
    out["function"], out["args"] = fn, _values(args)


def _read_nothing(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    """A field another codec reads (``args`` with ``function``; ``id`` from the key)."""


def _write_id(d: dict, key: str, value: Any, path: tuple) -> None:
    d[key] = to_plain(value, path)


def _collection_codec(kind: str, build: Callable[[], Callable[..., Any]]) -> _Codec:
    """``{id: {...}}`` of objects built by ``build()`` (looked up late: classes refer to later ones)."""
    def read(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
        out[key] = _collection(ctx, path, body.get(key), kind, key, build())

    def write(d: dict, key: str, items: Any, path: tuple) -> None:
        if items:
            d[key] = _dump_collection(items, kind, path)
    return _Codec(read, write)


def _write_condition_list(d: dict, key: str, conds: Any, path: tuple) -> None:
    if conds:
        d[key] = [c.to_dict(path + (seg("condition", c.id),)) if isinstance(c, ParameterCondition)
                  else to_plain(c, path) for c in conds]


def _read_condition_set(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    cond = body.get(key)
    out[key] = None
    if isinstance(cond, dict):
        out[key] = ConditionSet._build(cond, None, ctx, path + (key,))
    elif cond is not None:
        ctx.error(path, f"{key} must be a mapping, got {_tname(cond)}")


def _write_condition_set(d: dict, key: str, cs: Any, path: tuple) -> None:
    if cs is not None:
        if not isinstance(cs, ConditionSet):
            raise _SaveError(path + (key,), f"{key} must be a ConditionSet")
        d[key] = cs.to_dict(path + (key,))


def _read_condition_map(ctx: _Ctx, path: tuple, body: dict, key: str, out: dict) -> None:
    """``{node id or time scale: condition}``."""
    v = body.get(key)
    out[key] = None
    if v is None:
        return
    if not isinstance(v, dict):
        ctx.error(path, f"{key} must be a mapping, got {_tname(v)}")
        return
    _dups(ctx, path, v, key)
    conds = {}
    for k, c in v.items():
        p = path + (f"{key} {k!r}",)
        if not isinstance(c, dict):
            ctx.error(p, f"expected a condition mapping, got {_tname(c)}")
            continue
        conds[k] = Condition._build(c, None, ctx, p)
    out[key] = conds


def _write_condition_map(d: dict, key: str, conds: Any, path: tuple) -> None:
    if conds is None:
        return
    if not isinstance(conds, dict):
        raise _SaveError(path + (key,), f"{key} must be a mapping, not {_tname(conds)}")
    d[key] = {k: c.to_dict(path + (f"{key} {k!r}",)) if isinstance(c, Condition)
              else to_plain(c, path + (f"{key} {k!r}",)) for k, c in conds.items()}


_PLAIN = _Codec(_reader(lambda v: v), _put)
_VALUE = _Codec(_reader(to_value), _put)
_SHAPE = _Codec(_reader(_shape), _put)
_MAPPING = _Codec(_read_mapping, _put)


def _put_metadata(d: dict, key: str, value: Any, path: tuple) -> None:
    if value is not None and not isinstance(value, dict):
        raise _SaveError(path + (key,), f"{key} must be a mapping, not {_tname(value)}")
    _put(d, key, value, path)


#: ``metadata``: a mapping, as modelspec requires (a file's is checked by validate; a write refuses another)
_METADATA = _Codec(_reader(lambda v: v), _put_metadata)
_REQUIRED = _Codec(_read_required, _put)
_FUNCTION = _Codec(_read_function, _put)
_ARGS = _Codec(_read_nothing, _put)
_ID = _Codec(_read_nothing, _write_id)
_CONDITION_LIST = _Codec(lambda ctx, path, body, key, out: out.__setitem__(key, _collection(
    ctx, path, body.get(key), "condition", key, ParameterCondition._build)), _write_condition_list)
_CONDITION_SET = _Codec(_read_condition_set, _write_condition_set)
_CONDITION_MAP = _Codec(_read_condition_map, _write_condition_map)


def _f(codec: _Codec, default: Any = None, *, required: bool = False,
       factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field that a file holds under its name, read and written by ``codec``."""
    md = {"mdf": codec}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(metadata=md) if required else field(default=default, metadata=md)


def _list_field(kind: str, build: Callable[[], Callable[..., Any]]) -> Any:
    """A collection of objects, written as ``{id: {...}}``."""
    return _f(_collection_codec(kind, build), factory=list)


@dataclass(frozen=True, slots=True)
class _FileForm:
    """A class's file form: its keys in the order they are read and written (``"extra"``:
    the unknown keys kept from a file), the keys a file may hold, and how to list them."""

    order: tuple[tuple[str, _Codec | None], ...]
    allowed: frozenset
    shown: str


_FORMS: dict[type, _FileForm] = {}


def _file_form(cls: type) -> _FileForm:
    form = _FORMS.get(cls)
    if form is None:
        from dataclasses import fields

        codecs = {f.name: f.metadata["mdf"] for f in fields(cls) if "mdf" in f.metadata}
        keys = [k for k in codecs if k != "id"]
        order = getattr(cls, "_ORDER", None) or (
            "extra", *[k for k in ("metadata", "notes") if k in codecs],
            *[k for k in keys if k not in ("metadata", "notes")])
        shown = (["id"] if any(f.name == "id" for f in fields(cls)) else []) + keys
        form = _FORMS[cls] = _FileForm(tuple((k, codecs.get(k)) for k in order), frozenset(shown),
                                       ", ".join(shown))
    return form


class _FileObject:
    """The generic file form of the classes below: ``to_dict`` and ``from_dict`` follow the
    codecs declared on the fields (:func:`_f`), so a class is its field list."""

    __slots__ = ()
    _KIND = ""

    def to_dict(self, _path: tuple = ()) -> dict:
        d: dict = {}
        for key, codec in _file_form(type(self)).order:
            if codec is None:
                _put_extra(d, self, _path)
            else:
                codec.write(d, key, getattr(self, key), _path)
        return d

    @classmethod
    def _build(cls, body: dict, ident: Any, ctx: _Ctx, path: tuple) -> Any:
        form = _file_form(cls)
        extra = _check_keys(ctx, path, body, form.allowed, form.shown)
        out: dict = {}
        if "id" in form.allowed:
            _check_id(ctx, path, body, ident)
            out["id"] = ident
        for key, codec in form.order:
            if codec is not None:
                codec.read(ctx, path, body, key, out)
        return _with_extra(extra, cls(**out))

    def to_json(self) -> str:
        """The object's file form as JSON text, ``{id: {...}}`` for an object with an id
        (modelspec's ``to_json``, which the reference has on every class); a value that cannot
        be written is a ValidationError."""
        import json

        ident = getattr(self, "id", None)
        path = (seg(self._KIND, ident),)
        try:
            body = self.to_dict(path)
        except _SaveError as e:
            raise ValidationError(e.message, location=format_location(None, e.path)) from None
        return json.dumps(body if ident is None else {ident: body}, indent=4)

    @classmethod
    def from_dict(cls, d: dict, *, id: str | None = None, location: str | None = None,
                  strict: bool = False) -> Any:
        """Build the object from its file form (``{field: value}``); one ValidationError lists
        every structural problem (see :meth:`Model.from_dict`)."""
        return _from_dict(cls, d, id, location, cls._KIND, strict)


# ---------------------------------------------------------------------------------------------
# The classes
# ---------------------------------------------------------------------------------------------

@dataclass(slots=True, eq=False)
class InputPort(_FileObject):
    """Where a Node receives a value (from an edge, or ``default_value``, or the caller)."""

    id: str
    shape: tuple[int, ...] | None = _f(_SHAPE)
    type: str | None = _f(_PLAIN)
    default_value: Any = _f(_VALUE)
    reduce: str | None = _f(_PLAIN)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "input port"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)  # (1,), [1] or "(1,)" as modeci_mdf's scripts write it


@dataclass(slots=True, eq=False)
class OutputPort(_FileObject):
    """A value a Node exports: an expression over its ports, parameters and functions."""

    id: str
    value: str | None = _f(_PLAIN)
    shape: tuple[int, ...] | None = _f(_SHAPE)
    type: str | None = _f(_PLAIN)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "output port"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)  # (1,), [1] or "(1,)" as modeci_mdf's scripts write it


@dataclass(slots=True, eq=False)
class ParameterCondition(_FileObject):
    """When ``test`` holds, the parameter takes ``value`` (evaluated after the parameter)."""

    id: str = _f(_ID, required=True)
    test: Any = _f(_VALUE)
    value: Any = _f(_VALUE)

    extra: dict | None = field(default=None, repr=False)

    _KIND = "condition"
    _ORDER = ("id", "test", "value", "extra")  # written as a list entry: its id first


@dataclass(slots=True, eq=False)
class Parameter(_FileObject):
    """A named value of a Node: a constant or expression ``value`` (self-reference makes it
    stateful), a ``function`` with ``args``, or ``default_initial_value`` + ``time_derivative``;
    ``conditions`` override it when their test holds."""

    id: str
    value: Any = _f(_VALUE)
    default_initial_value: Any = _f(_VALUE)
    time_derivative: str | None = _f(_PLAIN)
    function: str | None = _f(_FUNCTION)
    args: dict[str, Any] | None = _f(_ARGS)
    conditions: list[ParameterCondition] = _f(_CONDITION_LIST, factory=list)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "parameter"

    def summary(self) -> str:
        """A one-line description (modeci_mdf's ``Parameter.summary``)."""
        parts = [f"{k}={getattr(self, k)!r}" for k in ("value", "default_initial_value", "time_derivative",
                                                      "function", "args") if getattr(self, k) is not None]
        parts += [f"condition {c.id}: if {c.test!r} then {c.value!r}" for c in self.conditions]
        return f"Parameter {self.id} (" + ", ".join(parts) + ")"

    def is_stateful(self) -> bool:
        """Stateful as modeci_mdf defines it: a time derivative, an initial value, or a value
        expression that refers to the parameter itself."""
        if self.time_derivative is not None or self.default_initial_value is not None:
            return True
        if isinstance(self.value, str):
            from .expressions import free_names, parse_expression

            try:
                return self.id in free_names(parse_expression(self.value))
            except ValidationError:
                return False
        return False


@dataclass(slots=True, eq=False)
class Function(_FileObject):
    """A value computed by a named ``function`` with ``args``, or by a ``value`` expression
    over ``args`` and the node's other values."""

    id: str
    function: str | None = _f(_FUNCTION)
    args: dict[str, Any] | None = _f(_ARGS)
    value: Any = _f(_VALUE)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "function"


@dataclass(slots=True, eq=False)
class Node(_FileObject):
    """A unit of evaluation: input ports -> functions and parameters -> output ports."""

    id: str
    input_ports: list[InputPort] = _list_field("input port", lambda: InputPort._build)
    functions: list[Function] = _list_field("function", lambda: Function._build)
    parameters: list[Parameter] = _list_field("parameter", lambda: Parameter._build)
    output_ports: list[OutputPort] = _list_field("output port", lambda: OutputPort._build)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "node"

    def get_input_port(self, id: str) -> InputPort | None:
        return next((p for p in self.input_ports if p.id == id), None)

    def get_output_port(self, id: str) -> OutputPort | None:
        return next((p for p in self.output_ports if p.id == id), None)

    def get_parameter(self, id: str) -> Parameter | None:
        return next((p for p in self.parameters if p.id == id), None)

    def get_function(self, id: str) -> Function | None:
        return next((f for f in self.functions if f.id == id), None)

    def names(self) -> list[str]:
        """The ids an expression in this node can refer to: input ports, parameters, functions."""
        return ([p.id for p in self.input_ports] + [p.id for p in self.parameters]
                + [f.id for f in self.functions])


@dataclass(slots=True, eq=False)
class Edge(_FileObject):
    """Carries the value of ``sender``'s ``sender_port`` to ``receiver``'s ``receiver_port``;
    ``parameters["weight"]``, when present, multiplies it element-wise (modeci_mdf:
    ``weight * value``)."""

    id: str
    sender: str = _f(_REQUIRED, required=True)
    receiver: str = _f(_REQUIRED, required=True)
    sender_port: str = _f(_REQUIRED, required=True)
    receiver_port: str = _f(_REQUIRED, required=True)
    parameters: dict[str, Any] | None = _f(_MAPPING)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "edge"

    @property
    def weight(self) -> Any:
        """The edge's weight, or None when it has none (modeci_mdf then passes the value as is)."""
        return None if not isinstance(self.parameters, dict) else self.parameters.get("weight")


_COND_KEYS = frozenset(["type", "kwargs", "args", "metadata", "notes"])


@dataclass(slots=True, eq=False, init=False)
class Condition:
    """A graph_scheduler condition: ``type`` (``"EveryNCalls"``...) and its ``kwargs``
    (node ids as strings, nested Conditions).  ``Condition("EveryNCalls", dependencies="A",
    n=2)`` works as in modeci_mdf."""

    type: str
    kwargs: dict[str, Any]
    metadata: dict | None
    notes: str | None
    extra: dict | None

    _KEYS = _keys("type", "kwargs", "metadata", "notes")

    def __init__(self, type: str | None = None, kwargs: dict | None = None, *,
                 metadata: dict | None = None, notes: str | None = None, **more: Any):
        self.type = type  # type: ignore[assignment]
        self.kwargs = dict(kwargs) if kwargs is not None else {}
        self.kwargs.update(more)
        # as in modeci_mdf scripts: Node (or Graph) objects name their node, graph_scheduler's
        # TimeScale enums their scale ("TimeScale.PASS")
        self.kwargs = {k: _plain_condition_arg(v) for k, v in self.kwargs.items()}
        self.metadata = metadata
        self.notes = notes
        self.extra = None

    def __repr__(self) -> str:
        return f"Condition({self.type!r}, {self.kwargs!r})"

    def to_dict(self, _path: tuple = ()) -> dict:
        d: dict = {"type": to_plain(self.type, _path)}
        _put_common(d, self, _path)
        kw = self.kwargs if isinstance(self.kwargs, dict) else {}
        d["kwargs"] = {k: to_plain(v, _path + (f"kwargs {k!r}",)) for k, v in kw.items()}
        return d

    @classmethod
    def _build(cls, body: dict, ident: Any, ctx: _Ctx, path: tuple) -> Condition:
        extra = _check_keys(ctx, path, body, _COND_KEYS, "type, kwargs, metadata, notes", dups=False)
        if "kwargs" in body and "args" in body:
            ctx.error(path, "both 'kwargs' and 'args' (the pre-v0.4 name of 'kwargs') given")
        if "type" not in body:
            ctx.error(path, "a condition needs a 'type'")
        kwargs = body.get("kwargs", body.get("args"))
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            ctx.error(path, f"'kwargs' must be a mapping, got {_tname(kwargs)}")
            kwargs = {}
        _dups(ctx, path, body, "condition")
        _dups(ctx, path, kwargs, "kwargs")
        conv = {k: _condition_arg(v, ctx, path + (f"kwargs {k!r}",)) for k, v in kwargs.items()}
        return _with_extra(extra, cls(body.get("type"), conv, metadata=body.get("metadata"), notes=body.get("notes")))

    @classmethod
    def from_dict(cls, d: dict, *, location: str | None = None) -> Condition:
        ctx = _Ctx(location)
        if not isinstance(d, dict):
            ctx.error((), f"expected a mapping, got {_tname(d)}")
            ctx.raise_if_any()
        c = cls._build(d, None, ctx, ())
        ctx.raise_if_any()
        return c


def _enum_name(v: Any) -> str | None:
    """``TimeScale.PASS`` (an Enum member of graph_scheduler or PsyNeuLink) -> ``"PASS"``."""
    import enum

    return v.name if isinstance(v, enum.Enum) and type(v).__name__ == "TimeScale" else None


def _plain_condition_arg(v: Any) -> Any:
    if isinstance(v, (Node, Graph)):
        return v.id
    name = _enum_name(v)
    if name is not None:
        return f"TimeScale.{name}"
    if type(v) in (list, tuple) and any(isinstance(x, (Node, Graph)) or _enum_name(x) for x in v):
        return [_plain_condition_arg(x) for x in v]
    return v


def _time_scale_key(k: Any) -> Any:
    """A termination key: ``TimeScale.ENVIRONMENT_STATE_UPDATE`` -> ``"environment_state_update"``."""
    name = _enum_name(k)
    return name.lower() if name is not None else k


def _looks_like_condition(v: Any) -> bool:
    return isinstance(v, dict) and "type" in v and all(k in _COND_KEYS for k in v)


def _condition_arg(v: Any, ctx: _Ctx, path: tuple) -> Any:
    """A condition argument: nested conditions become Conditions, the rest stays as written."""
    if _looks_like_condition(v):
        return Condition._build(v, None, ctx, path)
    if type(v) is list:
        return [Condition._build(x, None, ctx, path + (f"[{i}]",)) if _looks_like_condition(x) else x
                for i, x in enumerate(v)]
    return v


@dataclass(slots=True, eq=False)
class ConditionSet(_FileObject):
    """A graph's scheduling: per-node run conditions and per-time-scale termination."""

    node_specific: dict[str, Condition] | None = _f(_CONDITION_MAP)
    termination: dict[str, Condition] | None = _f(_CONDITION_MAP)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # modeci_mdf scripts key termination by graph_scheduler's TimeScale and node_specific
        # by Node objects; the file form uses their names
        if isinstance(self.termination, dict):
            self.termination = {_time_scale_key(k): c for k, c in self.termination.items()}
        if isinstance(self.node_specific, dict):
            self.node_specific = {(k.id if isinstance(k, (Node, Graph)) else k): c
                                  for k, c in self.node_specific.items()}

    @classmethod
    def from_dict(cls, d: dict, *, location: str | None = None) -> ConditionSet:
        ctx = _Ctx(location)
        if not isinstance(d, dict):
            ctx.error((), f"expected a mapping, got {_tname(d)}")
            ctx.raise_if_any()
        c = cls._build(d, None, ctx, ())
        ctx.raise_if_any()
        return c


def _distinct_objects(items: list) -> list:
    """``items`` with each object (by identity) once, in first-seen order."""
    seen: set[int] = set()
    return [x for x in items if not (id(x) in seen or seen.add(id(x)))]


_WARNED_REPEATS: set[tuple[str, str]] = set()
"""(graph id, node id) already warned about by :meth:`Graph.distinct_nodes`."""


@dataclass(slots=True, eq=False)
class Graph(_FileObject):
    """Nodes connected by edges, with optional global ``parameters`` and scheduling
    ``conditions``.  ``nodes`` may hold nested Graphs (see the module docstring)."""

    id: str
    nodes: list[Node | Graph] = _list_field("node", lambda: _build_node_or_graph)
    edges: list[Edge] = _list_field("edge", lambda: Edge._build)
    parameters: dict[str, Any] | None = _f(_MAPPING)
    conditions: ConditionSet | None = _f(_CONDITION_SET)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "graph"
    _ORDER = ("extra", "metadata", "notes", "parameters", "conditions", "nodes", "edges")

    def get_node(self, id: str) -> Node | Graph | None:
        return next((n for n in self.nodes if n.id == id), None)

    def distinct_nodes(self) -> list[Node | Graph]:
        """``nodes`` with each object once.  A script that appends the same node twice (the
        reference's ``generate_iaf.py``) builds one node, as the file form, a mapping by id,
        holds it; a warning says so.  Two *different* nodes of one id stay an error."""
        out = _distinct_objects(self.nodes)
        if len(out) != len(self.nodes):
            counts = Counter(id(n) for n in self.nodes)
            for n in (n for n in out if counts[id(n)] > 1):
                key = (str(self.id), str(getattr(n, "id", "")))
                if key not in _WARNED_REPEATS:  # once per graph and node id (copies of a graph included)
                    _WARNED_REPEATS.add(key)
                    warnings.warn(f"graph '{self.id}': node '{getattr(n, 'id', '?')}' is listed twice (the same "
                                  "object); it is one node, as in the file form", UserWarning, stacklevel=2)
        return out

    def get_edge(self, id: str) -> Edge | None:
        return next((e for e in self.edges if e.id == id), None)

    def get_endpoint(self, id: str) -> Node | Graph | None:
        """What an edge's sender/receiver names: the node with that id, or the nested graph
        ``LoopSubgraph<id>`` that modeci_mdf's PyTorch importer writes for an ``onnx::Loop``."""
        n = self.get_node(id)
        if n is None:
            n = next((g for g in self.nodes if isinstance(g, Graph) and g.id == f"LoopSubgraph{id}"), None)
        return n

    @property
    def inputs(self) -> list[tuple[str, str]]:
        """``(node id, port id)`` of every input port no edge feeds (modeci_mdf's
        ``Graph.inputs``); :meth:`free_input_ports` gives the objects."""
        return [(n.id, p.id) for n, p in self.free_input_ports()]

    def free_input_ports(self) -> list[tuple[Node, InputPort]]:
        """The (node, input port) pairs no edge feeds, in file order: the graph's inputs."""
        fed = {(e.receiver, e.receiver_port) for e in self.edges}
        return [(n, p) for n in self.nodes if isinstance(n, Node) for p in n.input_ports
                if (n.id, p.id) not in fed]


#: Deepest nesting of graphs in graphs a file may have (modeci_mdf writes one level).
MAX_GRAPH_NESTING = 32


def _build_node_or_graph(body: dict, ident: Any, ctx: _Ctx, path: tuple) -> Node | Graph:
    if "nodes" in body or "edges" in body:
        gpath = path[:-1] + (seg("graph", ident),)
        depth = sum(1 for p in gpath if isinstance(p, str) and p.startswith("graph "))
        if depth > MAX_GRAPH_NESTING:
            ctx.error(gpath, f"graphs are nested more than {MAX_GRAPH_NESTING} levels deep")
            return Graph(ident)
        return Graph._build(body, ident, ctx, gpath)
    return Node._build(body, ident, ctx, path)


@dataclass(slots=True, eq=False)
class Model(_FileObject):
    """The top level: graphs plus file-level information.  ``source`` is the file it was
    loaded from (used in error locations; never written)."""

    id: str
    graphs: list[Graph] = _list_field("graph", lambda: Graph._build)
    format: str | None = _f(_PLAIN, MDF_FORMAT)
    generating_application: str | None = _f(_PLAIN, factory=_generating_application)
    onnx_opset_version: int | str | None = _f(_PLAIN)
    metadata: dict | None = _f(_METADATA)
    notes: str | None = _f(_PLAIN)
    source: str | None = field(default=None, repr=False)
    extra: dict | None = field(default=None, repr=False)

    _KIND = "model"
    _ORDER = ("format", "generating_application", "onnx_opset_version", "extra", "metadata", "notes", "graphs")

    def get_graph(self, id: str) -> Graph | None:
        return next((g for g in self.graphs if g.id == id), None)

    @property
    def location(self) -> str | None:
        """The prefix of every error location for this model (its file), or None."""
        return f"file '{self.source}'" if self.source else None

    def to_dict(self, *, keep_arrays: bool = False) -> dict:
        """The file form ``{model id: {...}}``; raises ValidationError for a value that cannot
        be written (an arbitrary object, a complex tensor).  ``keep_arrays``: tensors and numpy
        arrays stay as they are (the streaming writer formats them) instead of nested lists."""
        path = (seg("model", self.id),)
        token = _KEEP_ARRAYS.set(keep_arrays)
        try:
            body = _FileObject.to_dict(self, path)
            if not isinstance(self.id, (str, int, float, bool)):
                raise _SaveError(path, f"the model id must be a string, not {_tname(self.id)}")
        except _SaveError as e:
            raise ValidationError(e.message, location=format_location(self.location, e.path)) from None
        except RecursionError:
            raise ValidationError("a value is nested too deeply to write",
                                  location=format_location(self.location, path)) from None
        finally:
            _KEEP_ARRAYS.reset(token)
        return {self.id: body}

    # -- modeci_mdf / modelspec conveniences, so scripts written for the reference run ---------
    def to_json(self) -> str:
        """The model as JSON text (modeci_mdf's ``Model.to_json``)."""
        from .io import dumps

        return dumps(self, "json")

    def to_yaml(self) -> str:
        """The model as YAML text (modeci_mdf's ``Model.to_yaml``)."""
        from .io import dumps

        return dumps(self, "yaml")

    def to_json_file(self, filename: str | None = None, include_metadata: bool = True) -> str:
        """Write the model as JSON to ``filename`` (default ``<id>.json``) and return the name,
        as modeci_mdf does (``include_metadata`` is accepted and ignored: metadata is kept)."""
        from .io import save

        filename = f"{self.id}.json" if filename is None else filename
        save(self, filename, format="json")
        return filename

    def to_yaml_file(self, filename: str | None = None, include_metadata: bool = True) -> str:
        """Write the model as YAML to ``filename`` (default ``<id>.yaml``) and return the name."""
        from .io import save

        filename = f"{self.id}.yaml" if filename is None else filename
        save(self, filename, format="yaml")
        return filename

    def to_bson(self) -> bytes:
        """The model as BSON (modelspec's ``to_bson``; needs the ``bson`` module of pymongo)."""
        try:
            import bson
        except ImportError as e:
            raise ValidationError("writing BSON needs the 'bson' module (pip install pymongo)",
                                  location=self.location) from e
        return bson.encode(self.to_dict())

    def to_bson_file(self, filename: str | None = None, include_metadata: bool = True) -> str:
        """Write the model as BSON to ``filename`` (default ``<id>.bson``) and return the name;
        :func:`torchmdf.mdf.load` reads it back."""
        from .io import atomic_write_bytes

        filename = f"{self.id}.bson" if filename is None else filename
        atomic_write_bytes(filename, self.to_bson())
        return filename

    def to_graph_image(self, engine: str = "dot", output_format: str = "png", view_on_render: bool = False,
                       level: int = 2, filename_root: str | None = None, only_warn_on_fail: bool = False,
                       is_horizontal: bool = False, solid_color: bool = False) -> str | None:
        """Draw the model to ``<filename_root or id>.<output_format>`` (modeci_mdf's
        ``Model.to_graph_image``; ``engine``, ``view_on_render``, ``is_horizontal`` and
        ``solid_color`` are accepted and ignored).  Returns the file written, or None when it
        failed and ``only_warn_on_fail`` is set."""
        from torchmdf.errors import TorchMDFError
        from torchmdf.mdf.picture import draw

        path = f"{filename_root or self.id}.{output_format}"
        try:
            return str(draw(self, path, level=level))
        except TorchMDFError as e:
            if not only_warn_on_fail:
                raise
            warnings.warn(f"could not draw the model: {e}", stacklevel=2)
            return None

    @classmethod
    def from_json(cls, text: str) -> Model:
        """A model from JSON text (modelspec's ``from_json``); unknown keys kept with a warning."""
        from .io import loads

        return loads(text, "json")

    @classmethod
    def from_yaml(cls, text: str) -> Model:
        """A model from YAML text (modelspec's ``from_yaml``)."""
        from .io import loads

        return loads(text, "yaml")

    @classmethod
    def from_file(cls, filename: str) -> Model:
        """A model from a ``.json``/``.yaml``/``.yml`` file (modelspec's ``from_file``)."""
        from .io import load

        return load(filename)

    from_json_file = from_file
    from_yaml_file = from_file

    @classmethod
    def from_dict(cls, d: dict, *, location: str | None = None, source: str | None = None,
                  strict: bool = False) -> Model:
        """Build a Model from its file form ``{model id: {...}}`` (or a body with an ``id``).

        ``location`` prefixes every error location (``"file 'm.json'"``); ``source`` records
        the file name (and sets ``location`` when that is not given).  Raises one
        ValidationError listing every structural problem.  A key MDF does not define is kept
        on its object's ``extra`` (and written back by ``to_dict``) with one
        :class:`~torchmdf.errors.UnknownKeyWarning`, as modeci_mdf loads such files (older
        exporters write ``name`` on edges, for one); ``strict=True`` makes it an error."""
        if location is None and source is not None:
            location = f"file '{source}'"
        ctx = _Ctx(location, strict)
        if not isinstance(d, dict):
            what = "a list" if isinstance(d, list) else "nothing (the file is empty)" if d is None \
                else f"a {_tname(d)}"
            ctx.error((), f"expected a mapping {{model id: {{...}}}} at the top level, got {what}")
            ctx.raise_if_any()
        if "id" in d or "graphs" in d:
            ident = d.get("id")
            if ident is None:
                ctx.error((), "the model has no 'id'")
            model = cls._build(d, ident, ctx, (seg("model", ident),))
        else:
            if len(d) != 1:
                ctx.error((), f"expected exactly one model {{model id: {{...}}}} at the top level, "
                          f"got {len(d)} keys" + (f": {', '.join(map(repr, list(d)[:5]))}" if d else ""))
                ctx.raise_if_any()
            (ident, body), = d.items()
            path = (seg("model", ident),)
            if body is None:
                body = {}
            if not isinstance(body, dict):
                ctx.error(path, f"expected a mapping of model fields, got {_tname(body)}")
                ctx.raise_if_any()
            model = cls._build(body, ident, ctx, path)
        ctx.raise_if_any()
        ctx.warn_unknown()
        model.source = source
        return model


def _dump_collection(items: list, kind: str, path: tuple) -> dict:
    out: dict = {}
    if kind == "node" and isinstance(items, list):  # the same node listed twice is one (Graph.distinct_nodes)
        items = _distinct_objects(items)
    for item in items:
        ident = getattr(item, "id", None)
        k = kind if not isinstance(item, Graph) or kind == "graph" else "graph"
        p = path + (seg(k, ident),)
        if not hasattr(item, "to_dict") or isinstance(item, type):
            raise _SaveError(p, f"expected a {kind}, got {_tname(item)}")
        if not isinstance(ident, (str, int, float, bool)):
            raise _SaveError(p, f"the id must be a string, not {_tname(ident)}")
        if ident in out:
            raise _SaveError(p, f"two {kind}s with the id {ident!r}")
        out[ident] = item.to_dict(p)
    return out


def _from_dict(cls, d: Any, ident: Any, location: str | None, kind: str, strict: bool = False):
    ctx = _Ctx(location, strict)
    if not isinstance(d, dict):
        ctx.error((), f"expected a mapping of {kind} fields, got {_tname(d)}")
        ctx.raise_if_any()
    if ident is None:
        ident = d.get("id")
    obj = cls._build(d, ident, ctx, (seg(kind, ident),))
    ctx.raise_if_any()
    ctx.warn_unknown()
    return obj


#: The object model's classes, as ``torchmdf.mdf`` exports them.
CLASSES = (Model, Graph, Node, InputPort, OutputPort, Parameter, ParameterCondition, Function, Edge, Condition,
           ConditionSet)
