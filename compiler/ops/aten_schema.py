"""The one matcher between ATen schemas and calls.

Every frontend meets the same question: a call of an ATen overload (an fx node's args and
kwargs, a TorchScript node's inputs, an IR node's inputs and attrs) against the overload's
schema.  :class:`AtenSignature` answers it once per overload (cached): which arguments are
tensors (IR inputs, ``Tensor[]``/``Tensor?[]`` flattened) and which are attributes, how a call
binds to argument names, which attrs equal their defaults, and how to build the call back.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import torch

from ..errors import ConversionError

#: Argument kinds: a tensor input, an optional tensor input, a tensor list (``Tensor[]`` or
#: ``Tensor?[]``, flattened into the inputs), anything else (an attribute).
TENSOR, OPTIONAL_TENSOR, TENSOR_LIST, ATTR = "tensor", "tensor?", "tensors", "attr"
_SINGLE_TENSOR = (TENSOR, OPTIONAL_TENSOR)

#: Integer codes of ``ScalarType``/``Layout``/``MemoryFormat`` arguments (TorchScript passes
#: them, and schemas write their defaults, as ints).
SCALAR_TYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                torch.float32, torch.float64, torch.complex32, torch.complex64, torch.complex128,
                torch.bool, torch.qint8, torch.quint8, torch.qint32, torch.bfloat16)
LAYOUTS = (torch.strided, torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr,
           torch.sparse_bsc)
MEMORY_FORMATS = (torch.contiguous_format, torch.preserve_format, torch.channels_last,
                  torch.channels_last_3d)

#: Returned by an ``attr`` callback of :meth:`AtenSignature.split`: leave this attribute out.
OMIT = object()


class SchemaMismatchError(ConversionError):
    """A call does not fit the schema of the overload it names."""


def coerce_arg(type_str: str, v: Any) -> Any:
    """An int code where the schema wants a dtype, layout or memory format, as the torch object."""
    if isinstance(v, int) and not isinstance(v, bool):
        if "ScalarType" in type_str and 0 <= v < len(SCALAR_TYPES):
            return SCALAR_TYPES[v]
        if "Layout" in type_str and 0 <= v < len(LAYOUTS):
            return LAYOUTS[v]
        if "MemoryFormat" in type_str and 0 <= v < len(MEMORY_FORMATS):
            return MEMORY_FORMATS[v]
    return v


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (lists and tuples elementwise): ``1 != 1.0 != True`` here."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def arg_kind(arg: Any) -> str:
    """Classify a schema argument: :data:`TENSOR`, :data:`OPTIONAL_TENSOR`, :data:`TENSOR_LIST`
    (``Tensor[]`` / ``Tensor?[]``) or :data:`ATTR`."""
    t = arg.type
    if isinstance(t, torch._C.TensorType):
        return TENSOR
    if isinstance(t, torch._C.OptionalType) and isinstance(t.getElementType(), torch._C.TensorType):
        return OPTIONAL_TENSOR
    if isinstance(t, torch._C.ListType):
        el = t.getElementType()
        if isinstance(el, torch._C.OptionalType):
            el = el.getElementType()
        if isinstance(el, torch._C.TensorType):
            return TENSOR_LIST
    return ATTR


def schema_op_name(schema: Any) -> str:
    """IR op name of a schema: ``aten::add.Tensor``, ``aten::relu`` (default overload)."""
    return f"{schema.name}.{schema.overload_name}" if schema.overload_name else schema.name


def op_name_of(overload: Any) -> str:
    """IR op name of an ``OpOverload``: ``aten::add.Tensor``, ``aten::relu`` (default)."""
    return schema_op_name(overload._schema)


@dataclasses.dataclass(frozen=True)
class AtenSignature:
    """How an ATen overload's arguments split into IR inputs and attributes."""

    overload: Any
    arg_names: tuple[str, ...]
    kinds: tuple[str, ...]  # "tensor", "tensor?", "tensors", "attr"
    kwarg_only: tuple[bool, ...]
    defaults: tuple[Any, ...]
    has_default: tuple[bool, ...]
    num_returns: int
    mutable: bool
    type_names: tuple[str, ...] = ()
    """``str`` of each argument's schema type (``"int[]"``, ``"Scalar"``...)."""
    coerced_defaults: tuple[Any, ...] = ()
    """``defaults`` with int codes of dtypes, layouts and memory formats as torch objects."""
    returns_list: bool = False
    """The overload returns one list (``split``, ``unbind``): the frontends expand it."""

    @property
    def tensor_arg_names(self) -> list[str]:
        return [n for n, k in zip(self.arg_names, self.kinds) if k != ATTR]

    @functools.cached_property
    def _num_single_tensors(self) -> int:
        return sum(1 for k in self.kinds if k in _SINGLE_TENSOR)

    @functools.cached_property
    def _num_positional(self) -> int:
        return sum(1 for k in self.kwarg_only if not k)

    def mismatch(self, what: str, location: str | None = None) -> SchemaMismatchError:
        """A located error: the call does not fit (``what``)."""
        return SchemaMismatchError(f"{op_name_of(self.overload)}: {what}", location=location,
                                   hint=f"the schema is {self.overload._schema}")

    # -- calls -> argument names -----------------------------------------------------------------
    def bind(self, args: Sequence[Any], kwargs: dict[str, Any], *,
             location: str | None = None) -> dict[str, Any]:
        """The arguments passed, by schema name (defaults are not filled in).  A call with too
        many positional arguments, an unknown keyword or a required argument missing is a
        located :class:`SchemaMismatchError`."""
        out: dict[str, Any] = {}
        n = len(args)
        for i, (name, kwo, has_def) in enumerate(zip(self.arg_names, self.kwarg_only, self.has_default)):
            if i < n and not kwo:
                out[name] = args[i]
            elif name in kwargs:
                out[name] = kwargs[name]
            elif not has_def:
                raise self.mismatch(f"missing argument '{name}'", location)
        if n > self._num_positional:
            raise self.mismatch(f"{n} positional arguments (at most {self._num_positional})", location)
        if len(out) - min(n, self._num_positional) != len(kwargs):
            bad = sorted(k for k in kwargs if k not in out or out[k] is not kwargs[k])
            raise self.mismatch(f"unexpected keyword argument(s) {bad}", location)
        return out

    def bind_all(self, values: Sequence[Any], *, location: str | None = None) -> dict[str, Any]:
        """Every argument's value in schema order (a TorchScript node's inputs), by name."""
        if len(values) != len(self.arg_names):
            raise self.mismatch(f"{len(values)} inputs (the schema has {len(self.arg_names)})", location)
        return dict(zip(self.arg_names, values))

    def match(self, args: Sequence[Any], kwargs: dict[str, Any],
              tensor_types: tuple[type, ...]) -> tuple[int, dict[str, Any]] | None:
        """Does a Python-level call (``torch.add(x, 2)``) fit this overload?  ``(cost, bound
        args)``, cost 0 for an exact fit (a number where a tensor is wanted costs 2, so Scalar
        overloads win), or None.  ``tensor_types`` are the types that count as tensors."""
        bound: dict[str, Any] = {}
        pos = list(args)
        cost = 0
        for name, kind, kwo, has_def, t in zip(self.arg_names, self.kinds, self.kwarg_only,
                                               self.has_default, self.type_names):
            if pos and not kwo:
                val = pos.pop(0)
            elif name in kwargs:
                val = kwargs[name]
            elif has_def:
                continue
            else:
                return None
            is_t = isinstance(val, tensor_types)
            if kind in _SINGLE_TENSOR:
                if val is None and kind == OPTIONAL_TENSOR:
                    pass
                elif not is_t:
                    if isinstance(val, (int, float, bool)):
                        cost += 2
                    else:
                        return None
            elif kind == TENSOR_LIST:
                if not isinstance(val, (list, tuple)) or not all(
                        isinstance(x, tensor_types) or x is None for x in val):
                    return None
            else:
                if is_t:
                    return None
                if isinstance(val, (list, tuple)) and any(isinstance(x, tensor_types) for x in val):
                    return None
                if t in ("int", "SymInt") and not isinstance(val, int):
                    return None
                if t.startswith(("int[", "SymInt[", "List[int]")) and not isinstance(val, (list, tuple, int)):
                    return None
                if t in ("float", "Scalar") and not isinstance(val, (int, float, bool)):
                    return None
                if t == "str" and not isinstance(val, str):
                    return None
            bound[name] = val
        if pos or any(k not in self.arg_names for k in kwargs):
            return None
        return cost, bound

    # -- argument names -> IR ----------------------------------------------------------------------
    def split(self, bound: dict[str, Any], tensor: Callable[[Any], Any],
              attr: Callable[[str, Any], Any], *, omit_defaults: bool = False,
              location: str | None = None) -> tuple[list[Any], dict[str, Any]]:
        """IR inputs and attrs of a bound call.  Tensor arguments become inputs in schema order
        through ``tensor(value)`` (a tensor list: one input per element); every other argument
        becomes the attr ``attr(name, value)`` unless that returns :data:`OMIT`.
        ``omit_defaults``: leave out attrs equal to their schema default."""
        inputs: list[Any] = []
        attrs: dict[str, Any] = {}
        for i, (name, kind) in enumerate(zip(self.arg_names, self.kinds)):
            if name not in bound:
                continue
            v = bound[name]
            if kind in _SINGLE_TENSOR:
                inputs.append(tensor(v))
            elif kind == TENSOR_LIST:
                if not isinstance(v, (list, tuple)):
                    raise self.mismatch(f"argument '{name}' is not a list", location)
                inputs.extend(tensor(x) for x in v)
            else:
                if omit_defaults and self.has_default[i] and same_value(
                        self.coerced_defaults[i], coerce_arg(self.type_names[i], v)):
                    continue
                a = attr(name, v)
                if a is not OMIT:
                    attrs[name] = a
        return inputs, attrs

    def build_call(self, inputs: Sequence[Any], attrs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional args and kwargs for calling the overload with IR inputs and attrs."""
        list_len = len(inputs) - self._num_single_tensors
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        pos = 0
        positional_ok = True
        for name, kind, kwo, has_def in zip(self.arg_names, self.kinds, self.kwarg_only, self.has_default):
            if kind in _SINGLE_TENSOR:
                val = inputs[pos] if pos < len(inputs) else None
                pos += 1
            elif kind == TENSOR_LIST:
                val = list(inputs[pos:pos + list_len])
                pos += list_len
            elif name in attrs:
                val = attrs[name]
                if isinstance(val, tuple):
                    val = list(val)
            elif not has_def:  # an optional argument without a default (``int? divisor_override``),
                val = None     # passed as None, which a file does not write
            else:
                positional_ok = False
                continue
            if kwo or not positional_ok:
                kwargs[name] = val
            else:
                args.append(val)
        return args, kwargs

    def call_args(self, values: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional args and kwargs from every argument's value in schema order."""
        args, kwargs = [], {}
        for name, kwo, v in zip(self.arg_names, self.kwarg_only, values):
            if kwo:
                kwargs[name] = v
            else:
                args.append(v)
        return args, kwargs


_SIGNATURES: dict[Any, AtenSignature] = {}


def aten_signature(overload: Any) -> AtenSignature:
    """The signature of an ``OpOverload`` (built once per overload)."""
    sig = _SIGNATURES.get(overload)
    if sig is None:
        sig = _SIGNATURES[overload] = _build_signature(overload)
    return sig


def _build_signature(overload: Any) -> AtenSignature:
    schema = overload._schema
    names_, kinds, kwo, defaults, has_def, types = [], [], [], [], [], []
    for a in schema.arguments:
        names_.append(a.name)
        kinds.append(arg_kind(a))
        kwo.append(bool(a.kwarg_only))
        has_def.append(a.has_default_value())
        defaults.append(a.default_value if a.has_default_value() else None)
        types.append(str(getattr(a, "real_type", a.type)))  # "ScalarType", not the "int" it travels as
    mutable = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
    return AtenSignature(overload, tuple(names_), tuple(kinds), tuple(kwo), tuple(defaults), tuple(has_def),
                         len(schema.returns), mutable, tuple(types),
                         tuple(coerce_arg(t, d) for t, d in zip(types, defaults)),
                         len(schema.returns) == 1 and isinstance(schema.returns[0].type, torch.ListType))


_CANDIDATES: dict[str, tuple[tuple[str, AtenSignature], ...]] = {}


def match_overload(name: str, args: Sequence[Any], kwargs: dict[str, Any],
                   tensor_types: tuple[type, ...]) -> tuple[str, AtenSignature, dict[str, Any]] | None:
    """The functional ``torch.ops.aten.<name>`` overload a Python-level call fits best:
    ``(overload name, signature, bound args)``, or None when none fits (or no such op).
    Ties go to the ``default`` overload; see :meth:`AtenSignature.match`."""
    candidates = _CANDIDATES.get(name)
    if candidates is None:
        candidates = _CANDIDATES[name] = _functional_overloads(name)
    best = None
    for ov_name, sig in candidates:
        m = sig.match(args, kwargs, tensor_types)
        if m is not None:
            key = (m[0], ov_name != "default")
            if best is None or key < best[0]:
                best = (key, ov_name, sig, m[1])
    return None if best is None else best[1:]


def _functional_overloads(name: str) -> tuple[tuple[str, AtenSignature], ...]:
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return ()
    out = []
    for ov_name in packet.overloads():
        try:
            sig = aten_signature(getattr(packet, ov_name))
        except Exception:  # noqa: BLE001 - an exotic schema: not a candidate
            continue
        if not sig.mutable and "out" not in sig.arg_names:
            out.append((ov_name, sig))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def parse_schema(schema_str: str) -> Any:
    """``torch._C.parse_schema``, cached; None when the string is not a schema."""
    try:
        return torch._C.parse_schema(schema_str)
    except Exception:  # noqa: BLE001
        return None


@functools.lru_cache(maxsize=4096)
def overload_of_schema(schema_str: str) -> Any:
    """The ``OpOverload`` a schema string names (a TorchScript node's ``schema()``), or None."""
    s = parse_schema(schema_str)
    if s is None:
        return None
    ns, _, base = s.name.partition("::")
    try:
        return getattr(getattr(getattr(torch.ops, ns), base), s.overload_name or "default")
    except (AttributeError, RuntimeError):
        return None


__all__ = [
    "AtenSignature", "aten_signature", "arg_kind", "match_overload", "SchemaMismatchError", "OMIT",
    "TENSOR", "OPTIONAL_TENSOR", "TENSOR_LIST", "ATTR", "coerce_arg", "same_value", "op_name_of",
    "schema_op_name", "parse_schema", "overload_of_schema", "SCALAR_TYPES", "LAYOUTS", "MEMORY_FORMATS",
]
