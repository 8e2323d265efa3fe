"""The op registry: the single place that knows an op.

Each :class:`OpDef` holds everything about one op (``domain::name``): its torch implementation
(used by the FX backend, constant folding and shape inference on meta tensors), its attribute
schema, its shape/dtype function, its FX lowering, its ONNX opset range, its dtype promotion,
whether it is pure, its MDF spelling and argument names, and how to canonicalize it.  Every
consumer (``infer_shapes``, ``fold_constants``, ``canonicalize``, the FX, ONNX and MDF
backends) reads the entry and nothing else.

An op is defined once, with :func:`register` (or :func:`define`, or the :func:`op`
decorator); a family of definitions kept in another module adds its part to the entries with
:func:`attach` (or the :func:`shape_function` / :func:`fx_lowering` decorators).  ``aten::``
ops need no hand-written entry: any overload of ``torch.ops.aten`` is resolved on first use
from its TorchScript schema (tensor arguments become IR inputs, everything else attributes),
so the ATen fallback always runs and round-trips; what was attached to its name is added then.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch

from ..errors import UnsupportedOpError
from .aten_schema import TENSOR_LIST, AtenSignature, aten_signature

if TYPE_CHECKING:  # the types of the hooks' arguments (no import of passes or backends here)
    from ..ir import Node, TensorType

ShapeFn = Callable[["Sequence[TensorType | None]", "dict[str, Any]", "Node | None"], "list[TensorType] | None"]
"""``shape_fn(input_types, attrs, node) -> list[TensorType] | None`` (None: cannot tell)."""

FxLowering = Callable[[Any, "Node", Sequence[Any]], Any]
"""``fx_lower(builder, node, args)``: ``builder`` is the FX backend's ``FxBuilder``, ``args[i]``
the FX value of input ``i`` (emitted on first access) or None.  Returns an FX node (a list of
them for several outputs, None for an output nobody reads), or None to fall back to
``fx_target``, then to ``impl``."""

TYPE_PROMOTIONS = ("default", "int_to_float", "always_bool")
"""How an elementwise op's result dtype follows its inputs' (torch's ``ELEMENTWISE_TYPE_PROMOTION_KIND``):
``default`` torch's promotion, ``int_to_float`` integers and bools give the default float dtype,
``always_bool`` the result is bool."""

REQUIRED: Any = inspect.Parameter.empty
"""The default of an attribute that must be given."""


@dataclasses.dataclass(frozen=True)
class Attr:
    """One attribute of an op: its name, its type (``"int"``, ``"float"``, ``"str"``,
    ``"ints"``, ``"tensor"``... or None when any value goes) and its default."""

    name: str
    type: str | None = None
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclasses.dataclass
class OpDef:
    """Everything torchmdf knows about one op."""

    name: str
    impl: Callable[..., Any]
    """``impl(*tensor_inputs, **attrs)`` -> tensor, or tuple of tensors for several outputs."""
    num_outputs: int | Callable[[dict[str, Any], int], int] = 1
    """A number, or ``f(attrs, num_inputs)`` for ops whose output count varies (Split)."""
    input_names: Sequence[str] | None = None
    """MDF argument names of the tensor inputs, in order (``variadic``: one name, repeated)."""
    attr_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The defaults of the optional attributes (kept in step with ``attrs``)."""
    mdf_name: str | None = None
    """How MDF writes the function (``"linear"``, ``"onnx::Gemm"``); default: ``name``."""
    onnx_name: str | None = None
    """The ONNX op type (``"Gemm"``) for ``onnx::`` ops."""
    variadic: bool = False
    canonicalize: Callable[..., Any] | None = None
    """``rule(node, rewriter) -> list[Value] | None``: rewrite into preferred (ONNX) ops."""
    shape_fn: ShapeFn | None = None
    """Fast shape and dtype inference (:data:`ShapeFn`); meta tensors run ``impl`` otherwise.
    A function of two arguments ``f(input_types, attrs)`` is accepted and adapted."""
    fx_target: Callable[..., Any] | None = None
    """A torch callable the FX backend calls directly (``fx_args`` maps IR args to its args)."""
    fx_args: Callable[..., Any] | None = None
    pure: bool = True
    """False for ops with side effects or randomness (never folded or deduplicated)."""
    regions: Any = None
    """For ops whose nodes own regions (If, Loop): their ``RegionSemantics`` (control_flow.py)."""
    doc: str = ""
    attrs: Sequence[Attr] | None = None
    """The attribute schema; None: derived from ``attr_defaults``, else from the ATen schema
    (``aten::`` ops) or from ``impl``'s keyword parameters after the tensor inputs."""
    fx_lower: FxLowering | None = None
    """How the FX backend writes the op as torch calls (:data:`FxLowering`)."""
    min_opset: int | None = None
    """The lowest ONNX opset that has this op as the impl computes it (None: any)."""
    max_opset: int | None = None
    """The highest ONNX opset that still has it (None: no limit)."""
    type_promotion: str | None = None
    """How the result dtype follows the inputs' (one of :data:`TYPE_PROMOTIONS`), for
    elementwise ops whose shape function reads it."""
    static_value: Callable[[Node], torch.Tensor | None] | None = None
    """``f(node)``: the output's value when what the input types fix decides it (a shape query
    on a static shape), else None; constant folding uses it on non-constant inputs."""

    def __post_init__(self) -> None:
        if self.attrs is not None:
            self.attrs = tuple(self.attrs)
            if not self.attr_defaults:
                self.attr_defaults = {a.name: a.default for a in self.attrs if not a.required}
        self.shape_fn = _three_argument_shape_fn(self.shape_fn)

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "shape_fn":
            value = _three_argument_shape_fn(value)
        object.__setattr__(self, key, value)

    @property
    def domain(self) -> str:
        return self.name.split("::", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("::", 1)[1]

    @property
    def mdf_function(self) -> str:
        return self.mdf_name or self.name

    @property
    def attr_schema(self) -> tuple[Attr, ...]:
        """The attributes the op takes (see ``attrs``); computed once."""
        if self.attrs is None:
            self.attrs = _derived_attrs(self)
            if not self.attr_defaults:
                self.attr_defaults = {a.name: a.default for a in self.attrs if not a.required}
        return tuple(self.attrs)

    def attr_default(self, name: str) -> Any:
        """The default of attribute ``name`` (None when it has none)."""
        self.attr_schema  # noqa: B018 - fills attr_defaults where it is derived
        return self.attr_defaults.get(name)

    @property
    def num_required_inputs(self) -> int:
        """How many leading inputs ``impl`` needs (the later ones default to None: optional)."""
        n = len(self.input_names or ())
        try:
            params = [p for p in inspect.signature(self.impl).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):  # a builtin: all of them
            return n
        if self.variadic or not params:
            return n
        return min(n, sum(1 for p in params[:n] if p.default is inspect.Parameter.empty))

    def outputs_for(self, attrs: dict[str, Any], num_inputs: int) -> int:
        n = self.num_outputs
        return n(attrs, num_inputs) if callable(n) else n

    def onnx_schema(self):
        """The ONNX ``OpSchema`` of this op, or None."""
        if not self.onnx_name:
            return None
        import onnx.defs

        try:
            return onnx.defs.get_schema(self.onnx_name)
        except Exception:  # noqa: BLE001 - onnx raises a plain SchemaError
            return None

    def run(self, inputs: Sequence[Any], attrs: dict[str, Any]) -> tuple[Any, ...]:
        """Evaluate with torch; always returns a tuple of outputs."""
        out = self.impl(*inputs, **attrs)
        if isinstance(out, (tuple, list)) and self.outputs_for(attrs, len(inputs)) != 1:
            return tuple(out)
        return (out,)


def _three_argument_shape_fn(fn: Callable[..., Any] | None) -> ShapeFn | None:
    """``fn`` as a :data:`ShapeFn`: one of two arguments ``(types, attrs)`` is wrapped once,
    here, so that every caller calls ``fn(types, attrs, node)``."""
    if fn is None or getattr(fn, "_torchmdf_shape_fn", False):
        return fn
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin: assume the full signature
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if params and len(positional) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        two = fn

        def fn(types, attrs, node=None):
            return two(types, attrs)

        fn.__wrapped__ = two  # type: ignore[attr-defined]
        fn.__doc__ = two.__doc__
    try:
        fn._torchmdf_shape_fn = True  # type: ignore[union-attr]
    except (AttributeError, TypeError):  # a bound method or builtin: it is checked again next time
        pass
    return fn


def _type_name(annotation: Any, default: Any) -> str | None:
    if isinstance(annotation, str) and annotation not in ("", "Any"):
        return annotation.split("|", 1)[0].strip()
    if isinstance(annotation, type) and annotation is not inspect.Parameter.empty:
        return annotation.__name__
    if default is not None and default is not REQUIRED:
        return type(default).__name__
    return None


def _derived_attrs(d: OpDef) -> tuple[Attr, ...]:
    """The attribute schema read from ``attr_defaults``, the ATen schema or ``impl``."""
    if d.attr_defaults:
        return tuple(Attr(k, _type_name(None, v), v) for k, v in d.attr_defaults.items())
    if d.name.startswith("aten::") and isinstance(d.fx_target, torch._ops.OpOverload):
        sig = aten_signature(d.fx_target)
        return tuple(Attr(n, None, v if has else REQUIRED)
                     for n, k, v, has in zip(sig.arg_names, sig.kinds, sig.defaults, sig.has_default) if k == "attr")
    if d.input_names is None:
        return ()
    try:
        params = list(inspect.signature(d.impl).parameters.values())
    except (TypeError, ValueError):  # a builtin: no attributes to read
        return ()
    skip = 0 if d.variadic else len(d.input_names)
    out = []
    for p in params:
        if p.kind == p.VAR_POSITIONAL or p.kind == p.VAR_KEYWORD:
            skip = 0
            continue
        if p.kind != p.KEYWORD_ONLY and skip:
            skip -= 1
            continue
        out.append(Attr(p.name, _type_name(p.annotation, p.default), p.default))
    return tuple(out)


_REGISTRY: dict[str, OpDef] = {}
_ATTACHED: dict[str, dict[str, Any]] = {}
"""Fields attached by name (:func:`attach`): given to an entry made later (a lazily resolved
``aten::`` op, a re-registration) where it leaves them unset."""
_LOCK = threading.Lock()
_FIELDS = frozenset(f.name for f in dataclasses.fields(OpDef))


def _fill_attached(opdef: OpDef) -> OpDef:
    for key, value in _ATTACHED.get(opdef.name, {}).items():
        if getattr(opdef, key) is None:
            setattr(opdef, key, value)
    return opdef


def register(opdef: OpDef, *, replace: bool = False) -> OpDef:
    """Add an op.  Registering a name twice is an error unless ``replace``."""
    if "::" not in opdef.name:
        raise ValueError(f"op name {opdef.name!r} must be 'domain::name'")
    with _LOCK:
        if opdef.name in _REGISTRY and not replace:
            raise ValueError(f"op {opdef.name} is already registered")
        _REGISTRY[opdef.name] = _fill_attached(opdef)
    return opdef


def define(name: str, impl: Callable[..., Any], *, replace: bool = False, **fields: Any) -> OpDef:
    """``register(OpDef(name, impl, **fields))``: one call that defines an op."""
    return register(OpDef(name=name, impl=impl, **fields), replace=replace)


def attach(name: str, *, keep_existing: bool = False, **fields: Any) -> None:
    """Set fields of op ``name``'s entry (``shape_fn=``, ``fx_lower=``, ``canonicalize=``...):
    now where the entry exists, and on any entry made later under that name (a lazily
    resolved ``aten::`` op, a re-registration) that leaves them unset.  ``keep_existing``:
    only where nothing was set or attached yet (how built-in tables give their defaults, so
    that they never override what a user registered)."""
    unknown = set(fields) - _FIELDS
    if unknown:
        raise TypeError(f"OpDef has no field(s) {', '.join(sorted(unknown))}")
    with _LOCK:
        pending = _ATTACHED.setdefault(name, {})
        d = _REGISTRY.get(name)
        for key, value in fields.items():
            if keep_existing and key in pending:
                continue
            pending[key] = value
            if d is not None and not (keep_existing and getattr(d, key) is not None):
                setattr(d, key, value)


def _attacher(field: str, names: Sequence[str], keep_existing: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for n in names:
            attach(n, keep_existing=keep_existing, **{field: fn})
        return fn

    return deco


def shape_function(*names: str, keep_existing: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(types, attrs, node)`` is the ``shape_fn`` of the ops ``names``."""
    return _attacher("shape_fn", names, keep_existing)


def fx_lowering(*names: str, keep_existing: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(builder, node, args)`` is the ``fx_lower`` of the ops ``names``."""
    return _attacher("fx_lower", names, keep_existing)


def op(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@op("onnx::Relu", onnx_name="Relu")`` registers the function as impl."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        register(OpDef(name=name, impl=fn, doc=(fn.__doc__ or "").strip(), **kwargs))
        return fn

    return deco


#: Modules that attach the built-in shape functions and FX lowerings to the entries (each
#: next to the machinery it needs).  They are imported on the first lookup, so an entry is
#: complete whichever part of torchmdf asks first.
DEFINITION_MODULES = ("torchmdf.passes.infer_shapes", "torchmdf.backends.fx")
_definitions_loaded = False


def _load_definitions() -> None:
    global _definitions_loaded
    _definitions_loaded = True  # first: the modules themselves look ops up while importing
    import importlib

    for m in DEFINITION_MODULES:
        importlib.import_module(m)


def lookup(name: str) -> OpDef | None:
    """The op's definition, or None.  ``aten::`` names resolve from torch's schemas."""
    if not _definitions_loaded:
        _load_definitions()
    d = _REGISTRY.get(name)
    if d is not None:
        return d
    if name.startswith("aten::"):
        d = _aten_opdef(name)
        if d is not None:
            with _LOCK:
                d = _REGISTRY.setdefault(name, _fill_attached(d))
        return d
    return None


def get(name: str, location: Any = None) -> OpDef:
    d = lookup(name)
    if d is None:
        raise UnsupportedOpError([(name, location)], hint="register it with torchmdf.ops.register()")
    return d


def require_all(items: Iterable[tuple[str, Any]]) -> None:
    """Raise one :class:`UnsupportedOpError` listing every op name not in the registry."""
    missing = [(n, loc) for n, loc in items if lookup(n) is None]
    if missing:
        raise UnsupportedOpError(
            missing, hint="register the missing ops with torchmdf.ops.register(), or lower them "
            "to supported ops in a pass before conversion")


def names(domain: str | None = None) -> list[str]:
    """Registered op names (ATen overloads only once they have been used)."""
    return sorted(n for n in _REGISTRY if domain is None or n.startswith(domain + "::"))


# ---------------------------------------------------------------------------------------------
# ATen: generic entries from torch schemas
# ---------------------------------------------------------------------------------------------


def resolve_aten(name: str) -> Any | None:
    """``"aten::add.Tensor"`` -> ``torch.ops.aten.add.Tensor`` (``.default`` when no overload)."""
    qual = name.split("::", 1)[1]
    base, _, overload = qual.partition(".")
    try:
        packet = getattr(torch.ops.aten, base)
        return getattr(packet, overload or "default")
    except (AttributeError, RuntimeError):
        return None


def _aten_opdef(name: str) -> OpDef | None:
    ov = resolve_aten(name)
    if ov is None:
        return None
    try:
        sig = aten_signature(ov)
    except Exception:  # noqa: BLE001 - exotic schema: treat as unsupported
        return None

    def impl(*inputs: Any, **attrs: Any) -> Any:
        args, kwargs = sig.build_call(inputs, attrs)
        return ov(*args, **kwargs)

    nret = sig.num_returns
    tensor_names = sig.tensor_arg_names
    return OpDef(
        name=name,
        impl=impl,
        num_outputs=max(nret, 1) if nret != 0 else 0,
        input_names=tensor_names,
        variadic=TENSOR_LIST in sig.kinds,
        mdf_name=name,
        fx_target=ov,
        canonicalize=_CANONICALIZATIONS.get(name),
        pure=not sig.mutable and not _is_random(name),
        doc=str(ov._schema),
    )


_CANONICALIZATIONS: dict[str, Callable[..., Any]] = {}


def register_canonicalization(name: str, rule: Callable[..., Any]) -> None:
    """Attach ``rule(node, rewriter) -> list[Value] | None`` as ``OpDef.canonicalize`` of
    ``name``: now for an entry that exists, on first lookup for a lazily resolved aten op."""
    with _LOCK:
        _CANONICALIZATIONS[name] = rule  # also what a file may name (file_op_refusal)
    attach(name, canonicalize=rule)


_RANDOM = ("rand", "randn", "randint", "dropout", "bernoulli", "normal", "uniform", "multinomial",
           "native_dropout", "randperm", "empty")


def _is_random(name: str) -> bool:
    base = name.split("::", 1)[1].split(".", 1)[0].rstrip("_")
    return base in _RANDOM or base.startswith("rand")


# ---------------------------------------------------------------------------------------------
# What a model file may call
# ---------------------------------------------------------------------------------------------

#: ATen ops a file may never name, whatever their schema says: file I/O, raw storage and
#: strides (they read memory out of bounds or crash), uninitialized memory (it leaks old heap
#: contents), resizing.
_FILE_DENIED_BASES = frozenset({
    "from_file", "as_strided", "as_strided_scatter", "as_strided_copy", "_reshape_alias",
    "_reshape_alias_copy", "set_", "set", "source_Storage", "empty", "empty_like", "empty_strided",
    "new_empty", "new_empty_strided", "empty_permuted", "_empty_affine_quantized",
    "_empty_per_channel_affine_quantized", "resize", "resize_as", "_resize_output", "sym_storage_offset",
    "_nested_tensor_from_mask", "_unsafe_index_put", "lift_fresh", "_assert_async", "save", "load",
})

#: String arguments a file may set: enumerations, never file names or devices.
_FILE_STRING_ARGS = frozenset({"approximate", "reduce", "rounding_mode", "padding_mode", "mode", "side",
                               "indexing", "equation", "interpolation", "reduction"})

#: Arguments a file may not set (the module's device and layout decide them).
FILE_FORBIDDEN_ATTRS = frozenset({"device", "pin_memory", "layout", "non_blocking", "generator"})

#: ATen ops the project writes that are not in torch's core ATen set (the frontends keep them
#: where ONNX has no form): allowed when they pass the same checks.
_PROJECT_ATEN = ("aten::prelu", "aten::pad", "aten::linear", "aten::div.Tensor_mode", "aten::floor_divide",
                 "aten::remainder.Tensor", "aten::ne.Tensor", "aten::log10", "aten::log2", "aten::log1p",
                 "aten::expm1", "aten::trunc", "aten::round", "aten::div.Tensor", "aten::gelu",
                 "aten::silu", "aten::hardswish", "aten::hardsigmoid", "aten::group_norm",
                 "aten::native_group_norm", "aten::layer_norm", "aten::scaled_dot_product_attention",
                 "aten::gru.input", "aten::lstm.input", "aten::rnn_tanh.input", "aten::rnn_relu.input", "aten::upsample_nearest2d.vec",
                 "aten::upsample_bilinear2d.vec", "aten::flatten.using_ints", "aten::contiguous",
                 "aten::alias", "aten::lift_fresh_copy", "aten::_unsafe_view", "aten::einsum",
                 "aten::type_as", "aten::t", "aten::numpy_T", "aten::channel_shuffle", "aten::pixel_shuffle")


#: ATen ops the export frontend keeps whole (not decomposed) because they canonicalize straight
#: to ONNX; the ones without an ONNX form for some arguments stay ``aten::`` in written files.
EXPORT_KEPT_OPS: tuple[str, ...] = (
    "linear", "matmul", "scaled_dot_product_attention", "layer_norm", "group_norm", "silu", "prelu",
    "softmax.int", "log_softmax.int", "hardswish", "hardsigmoid", "hardtanh", "relu6", "leaky_relu",
    "elu", "celu", "selu", "softplus", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
    "conv_transpose2d.input", "conv_transpose3d.input", "flatten.using_ints", "unflatten.int",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "embedding", "dropout", "feature_dropout", "alpha_dropout",
)


def file_op_refusal(name: str) -> str | None:
    """Why a model file may not name the op ``name``, or None when it may.

    A file may name: ops registered in the registry (ONNX, MDF, and anything a user
    registers), and ``aten::`` overloads that are in torch's core ATen opset or written by the
    project itself (``_PROJECT_ATEN``, and every op with a canonicalization rule), provided
    they are functional (no argument written, no ``out=``, not in-place), deterministic, do
    not touch storage, strides, files or uninitialized memory, and take strings only as
    enumerations.  The decision is pure schema inspection, cached per name."""
    hit = _REFUSALS.get(name)
    if hit is not None or name in _REFUSALS:
        return hit
    _REFUSALS[name] = reason = _file_op_refusal(name)
    return reason


_REFUSALS: dict[str, str | None] = {}


def _file_op_refusal(name: str) -> str | None:
    if not isinstance(name, str) or "::" not in name:
        return "not an op name"
    if not name.startswith("aten::"):
        return None if _REGISTRY.get(name) is not None else "no such op in the registry"
    qual = name[6:]
    base, _, overload = qual.partition(".")
    if base in _FILE_DENIED_BASES or base.rstrip("_") in _FILE_DENIED_BASES or "storage" in base \
            or "strided" in base or base.startswith("_unsafe") and base != "_unsafe_view":
        return "it reads or writes memory, storage or files directly"
    if base.endswith("_") or overload.startswith("out") or overload.endswith("_out") or "out" in overload.split("_"):
        return "it is an in-place or out= variant"
    ov = resolve_aten(name)
    if ov is None:
        return "no such ATen op"
    ours = name in _PROJECT_ATEN or name in _CANONICALIZATIONS or qual in EXPORT_KEPT_OPS
    if not ours and torch.Tag.core not in getattr(ov, "tags", ()):
        return "not in the core ATen opset nor written by torchmdf"
    if _is_random(name) or (not ours and torch.Tag.nondeterministic_seeded in getattr(ov, "tags", ())):
        return "it is random (not a pure function of its inputs)"  # (RNNs: dropout only in training)
    schema = ov._schema
    for a in schema.arguments:
        if a.alias_info is not None and a.alias_info.is_write:
            return f"it writes its argument '{a.name}'"
        t = a.type
        if isinstance(t, torch._C.OptionalType):
            t = t.getElementType()
        kind = getattr(t, "kind", lambda: "")()
        if kind in ("StorageType", "GeneratorType", "StreamType", "AnyType", "CapsuleType"):
            return f"it takes a {kind[:-4].lower()} argument '{a.name}'"
        if kind == "StringType" and a.name not in _FILE_STRING_ARGS:
            return f"it takes a string argument '{a.name}'"
    return None


def lookup_for_file(name: str, location: Any = None) -> OpDef:
    """The op a model file names, if a file may name it (:func:`file_op_refusal`); else a
    located :class:`UnsupportedOpError` that says why."""
    reason = file_op_refusal(name)
    if reason is None:
        d = lookup(name)
        if d is not None:
            return d
        reason = "no such op"
    raise UnsupportedOpError([(name, location)], message=f"a model file may not call {name}: {reason}",
                             hint="model files may name the MDF standard functions, ONNX ops, registered "
                             "ops and pure, memory-safe core ATen ops (see torchmdf.ops.file_op_refusal)")


def file_allowed_aten_ops() -> list[str]:
    """Every ``aten::`` overload a model file may name (enumerates torch's ATen ops)."""
    out = []
    for base in dir(torch.ops.aten):
        try:
            packet = getattr(torch.ops.aten, base)
            overloads = packet.overloads()
        except Exception:  # noqa: BLE001 - not an op packet
            continue
        for o in overloads:
            name = f"aten::{base}" + ("" if o == "default" else f".{o}")
            if file_op_refusal(name) is None:
                out.append(name)
    return sorted(out)


__all__ = [
    "OpDef", "Attr", "REQUIRED", "TYPE_PROMOTIONS", "register", "define", "attach", "shape_function",
    "fx_lowering", "op", "lookup", "get", "require_all", "names", "AtenSignature",
    "aten_signature", "resolve_aten", "register_canonicalization", "file_op_refusal", "lookup_for_file",
    "file_allowed_aten_ops", "FILE_FORBIDDEN_ATTRS",
]
