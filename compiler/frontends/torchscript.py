"""The TorchScript frontend: ``torch.jit.ScriptModule`` (scripted or traced) -> IR.

The forward graph is copied and inlined (``torch._C._jit_pass_inline``), then walked by a small
partial evaluator: every TorchScript value is either a *static* Python value (constants,
shapes, dtypes, lists, module attributes: everything that does not depend on tensor data) or
an IR value (a tensor computed at run time).  Static computations are done right away
(``aten::size``, ``aten::dim``, integer arithmetic, ``prim::If``/``prim::Loop`` on static
conditions are inlined/unrolled, list and tuple plumbing disappears), so the IR holds tensor
ops and control flow on tensor data only.  Shapes and dtypes of IR values come from running each op on fake tensors built from
``example_inputs`` (or from the TorchScript types of a traced graph), which is also what
answers ``x.size(0)``: the IR of a TorchScript model is specialized to the example's shapes,
except for the dims ``dynamic_shapes``/``dynamic_batch`` name.  Those are SymInts of a
``ShapeEnv`` in the fake inputs: ``x.size(0)`` and integer arithmetic on it stay symbolic
(:meth:`_TSLowering.symbolic_scalar_op`), an op that needs a size gets it computed in the graph
(:mod:`torchmdf.frontends._symbolic_shapes`, shared with the export frontend), and a decision
the model takes on one (``prim::If`` on ``x.size(0) > 4``) is refused when the lowering ends
(:meth:`_TSLowering.check_guards`).  Guards the ops' fake kernels take are runtime
assumptions, as torch.export makes them.

Other decisions (kept in line with the export frontend):

* ``aten::`` nodes follow the registry's ATen convention; the overload comes from the node's
  schema.  Attrs equal to the schema default are left out (TorchScript spells every default
  out), integer codes of ``ScalarType``/``Layout``/``MemoryFormat`` arguments become
  ``torch.dtype``/``torch.layout``/``torch.memory_format``.  ``dropout`` with ``train=False``
  is the identity.  Ops with two tensor-list arguments (``aten::lstm``, ``aten::rnn_tanh``...)
  cannot be written in the IR convention: they are decomposed into core ATen by exporting a
  one-op wrapper with ``torch.export`` and inlining its IR.  Ops returning a tensor list
  (``chunk``, ``split``, ``unbind``) become one ``slice``/``select`` per piece.
* In-place ops are made functional: ``x.add_(y)`` becomes ``aten::add.Tensor`` and later uses
  of ``x`` read the new value; a write into a view (``z[:, 0] = 1``) is scattered back into
  its base (``select_scatter``/``slice_scatter``/reshape/transpose/permute).  A buffer written
  in place or by ``prim::SetAttr`` becomes a graph state variable, as in the export frontend.
* Control flow on tensor data becomes regions (see :mod:`torchmdf.ops.control_flow`): a
  ``prim::If`` on a data-dependent condition (``aten::Bool`` of a tensor) is an ``onnx::If``
  whose branches are the two blocks (only the taken one runs); its outputs are the block
  results and every outer value a branch writes (in-place ops, attributes).  A branch that
  only raises is treated as an assert and dropped.  ``prim::Loop`` has ONNX Loop semantics
  (trip count, condition, carried values): a loop whose trip count and condition are static
  is unrolled while they stay static (its body may build lists or index modules with ``i``),
  up to ``_MAX_UNROLL`` iterations; from the iteration where the condition depends on data
  (a ``while`` on a tensor, a ``break``), or when the trip count does (``range(n.item())``),
  or beyond that count, it is an ``onnx::Loop``.  Carried values that stay static through the
  body stay static; the others become loop-carried tensors.  ``torch.is_grad_enabled()`` is
  taken as True, so the fused inference fast paths of
  ``nn.TransformerEncoderLayer``/``nn.MultiheadAttention`` are not chosen (they compute the
  same thing).

Provenance: origin ``"torchscript"``, ``module_path`` from the node's module hierarchy
(``"layer1.0.conv1"``), ``source`` ``"file.py:LINE"`` from its source range.
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import re
from typing import Any, Sequence

import torch
from torch.utils import _pytree as pytree

from ..errors import ConversionError, TorchMDFError, UnsupportedOpError
from ..ir import Graph, InputMutation, Provenance, TensorType, Value, ValueRole
from ..ir._regions import walk_graphs
from ..ops import registry
from ..ops.aten_schema import (
    LAYOUTS,
    OMIT,
    SCALAR_TYPES,
    SchemaMismatchError,
    aten_signature,
    coerce_arg,
    overload_of_schema,
    parse_schema,
    same_value,
    schema_op_name,
)
from ..ops.control_flow import join_types
from ._fx_walk import _TORCH_DIR
from ._symbolic_shapes import NeedsShapeTensor, SymbolicShapes, concrete_sym, expr_of, has_sym, is_symbolic
from .export import batch_dynamic_shapes, lower_exported_program, normalize_attr, type_of, unsupported_hint

ORIGIN = "torchscript"

_DTYPE_CODE = {d: i for i, d in enumerate(SCALAR_TYPES)}
_MAX_UNROLL = 10_000
_INT_MAX = 2**63 - 1  # TorchScript's trip count of a ``while`` loop
_DROPOUTS = frozenset({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"})
_DYN_FROM_TENSOR = frozenset({"Bool", "Int", "Float", "ScalarImplicit", "item", "is_nonzero"})
_DYN_BINARY = {"eq": "aten::eq.Tensor", "ne": "aten::ne.Tensor", "lt": "aten::lt.Tensor",
               "le": "aten::le.Tensor", "gt": "aten::gt.Tensor", "ge": "aten::ge.Tensor",
               "add": "aten::add.Tensor", "sub": "aten::sub.Tensor", "mul": "aten::mul.Tensor",
               "div": "aten::div.Tensor", "__and__": "aten::logical_and", "__or__": "aten::logical_or"}

_NOT_CORE = "not in the core ATen opset nor written by torchmdf"  # registry.file_op_refusal's reason

# integer ops on symbolic sizes, done on the SymInts
_SYM_ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv,
              "div": operator.floordiv, "remainder": operator.mod, "eq": operator.eq, "ne": operator.ne,
              "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}

_TENSOR_SCALAR = {**{b: "Tensor" for b in ("add", "sub", "mul", "div", "rsub", "eq", "ne", "lt", "le", "gt",
                                           "ge", "remainder", "fmod", "maximum", "minimum")},
                  "pow": "Tensor_Tensor"}


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def lower_script_module(sm: torch.jit.ScriptModule, example_inputs: Sequence[Any] | None = None, *,
                        dynamic_shapes: Any = None, dynamic_batch: bool = False) -> Graph:
    """Lower a scripted or traced module's ``forward`` (or a scripted function).  ``example_inputs`` give input shapes
    (needed for scripted modules whose code asks for ``x.dim()``/``x.size()``).  ``dynamic_shapes`` (as
    ``torch.export`` takes it: per input a dict ``{dim: Dim or name}``) or ``dynamic_batch=True`` keep those dims
    symbolic; a model that branches on one, or fixes it, is refused with the guard it needed."""
    if not isinstance(sm, (torch.jit.ScriptModule, torch.jit.RecursiveScriptModule, torch.jit.ScriptFunction)):
        raise ConversionError(f"expected a torch.jit.ScriptModule or ScriptFunction, got {type(sm).__name__}")
    ex = None
    if example_inputs is not None:
        ex = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if dynamic_batch:
        if ex is None:
            raise ConversionError("dynamic_batch needs example inputs")
        dynamic_shapes = batch_dynamic_shapes(ex, {})
    if dynamic_shapes is not None and ex is None:
        raise ConversionError("dynamic_shapes needs example inputs")
    return _TSLowering(sm, ex, dynamic_shapes).run()


def lower_scripted(model: torch.nn.Module, example_inputs: Sequence[Any] | None = None, **dynamic: Any) -> Graph:
    """``torch.jit.script`` ``model`` and lower it (a script failure becomes a located
    :class:`ConversionError` that suggests tracing instead)."""
    try:
        sm = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"torch.jit.script failed for {type(model).__name__}: {first}",
                              hint="use method='trace' (torch.jit.trace) or method='export'") from e
    return lower_script_module(sm, example_inputs, **dynamic)


def lower_traced(model: torch.nn.Module, example_inputs: Sequence[Any] | Any, **dynamic: Any) -> Graph:
    """``torch.jit.trace`` ``model`` on ``example_inputs`` and lower the trace.  Buffers the
    model mutates while being traced are restored afterwards, so the graph's state starts from
    the module's values before the call."""
    if example_inputs is None:
        raise ConversionError(f"tracing {type(model).__name__} needs example_inputs")
    ex = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if isinstance(model, torch.jit.ScriptModule):
        return lower_script_module(model, ex, **dynamic)
    saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    try:
        # traced with autograd on, like the scripted path assumes: no fused inference fast paths
        tm = torch.jit.trace(model, ex, check_trace=False, strict=False)
    except TorchMDFError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"torch.jit.trace failed: {type(e).__name__}: {e}") from e
    finally:
        with torch.no_grad():
            for k, t in model.state_dict(keep_vars=True).items():
                if k in saved and t.shape == saved[k].shape:
                    t.copy_(saved[k])
    g = lower_script_module(tm, ex, **dynamic)
    g.name = re.sub(r"\W", "_", type(model).__name__)
    return g


# ---------------------------------------------------------------------------------------------
# evaluator values
# ---------------------------------------------------------------------------------------------


def _fill_slots(v: Any, tag: str, values: Any) -> Any:
    """``v`` with every ``(tag, i)`` placeholder, at any depth of lists and tuples, replaced
    by ``values[i]``."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == tag:
        return values[v[1]]
    if isinstance(v, (list, tuple)):
        return type(v)(_fill_slots(x, tag, values) for x in v)
    return v


@dataclasses.dataclass(frozen=True)
class _Obj:
    """A module (or scripted object) reached by ``prim::GetAttr`` from ``self``."""

    path: str
    obj: Any


@dataclasses.dataclass(frozen=True)
class _Dyn:
    """A data-dependent scalar (``aten::Bool``/``Int``/``item`` of a tensor), kept as the
    0-d IR tensor it came from."""

    value: Value


@dataclasses.dataclass(frozen=True)
class _Func:
    name: str


@dataclasses.dataclass(frozen=True)
class _Stale:
    """A value that cannot be used: the result of an op already reported as unsupported
    (``report=False``: using it is not a new problem), or a view read after its base was
    written in place."""

    why: str
    report: bool = False


class _Uninit:
    def __repr__(self) -> str:
        return "<uninitialized>"


_UNINIT = _Uninit()


@dataclasses.dataclass
class _Snapshot:
    """The lowering's mutable state before a region is lowered (to lower it again, or the
    other branch, from the same point)."""

    env: dict[int, Any]
    attr: dict[str, Any]
    inputs: dict[Value, Value]
    lists: dict[int, tuple[list, list]]
    reported: int


def _discard(region: Graph) -> None:
    """Forget a region that will not be attached: its nodes' uses of outer values go."""
    for g in walk_graphs(region):
        g.outputs = []
        for n in g:
            n._drop_uses()


class _Raised(Exception):
    """A ``prim::RaiseException`` was reached on a static path."""


class _Unsupported(Exception):
    def __init__(self, what: str, report: bool = True):
        super().__init__(what)
        self.what = what
        self.report = report


def _is_dynamic(v: Any) -> bool:
    if isinstance(v, (Value, _Dyn)):
        return True
    if isinstance(v, (list, tuple)):
        return any(_is_dynamic(x) for x in v)
    if isinstance(v, dict):
        return any(_is_dynamic(x) for x in v.values())
    return False


def _module_path(n: Any) -> str:
    try:
        h = n.getModuleHierarchy()
    except Exception:  # noqa: BLE001
        return ""
    names = [m for m, _ in re.findall(r"([^.()]+)\(([^()]*)\)", h or "")
             if m not in ("SELF", "UNKNOWN_INSTANCE")]
    return ".".join(names)


def _source(n: Any) -> str | None:
    try:
        text = n.sourceRange()
    except Exception:  # noqa: BLE001
        return None
    frames = re.findall(r'File "([^"]+)", line (\d+)', text)
    frames += re.findall(r"^\s*(\S[^\n(]*?)\((\d+)\): ", text, flags=re.M)
    if not frames:
        return None
    user = [f for f in frames if not f[0].startswith(_TORCH_DIR)]
    path, line = (user or frames)[0]
    return f"{path.rsplit('/', 1)[-1]}:{line}"


# ---------------------------------------------------------------------------------------------
# the lowering
# ---------------------------------------------------------------------------------------------


class _TSLowering(SymbolicShapes):
    origin = ORIGIN
    unsupported_error = _Unsupported

    def __init__(self, sm: Any, example_inputs: tuple | None, dynamic_shapes: Any = None):
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        self.sm = sm
        self.examples = example_inputs
        self.dynamic_shapes = dynamic_shapes
        self.graph = Graph(re.sub(r"\W", "_", getattr(sm, "original_name", None) or getattr(sm, "name", None)
                                  or "main"))
        self.root = self.graph  # inputs, parameters and state live here; self.graph is where nodes go
        # symbolic dims (dynamic_shapes): one SymInt per dim name, carried as a static value
        self.shape_env = ShapeEnv() if dynamic_shapes is not None else None
        self.fake_mode = FakeTensorMode(allow_non_fake_inputs=True, shape_env=self.shape_env)
        self.symbols: dict[str, Any] = {}  # dim name -> SymInt
        self.sym_names: dict[str, str] = {}
        self.sym_source: dict[str, tuple[Value, int]] = {}
        self._sym_cache: dict[Any, Value] = {}
        self._shape_cache: dict[Value, Value] = {}
        self.fake: dict[Value, Any] = {}
        self.env: dict[int, Any] = {}
        self.unsupported: list[tuple[str, str | None]] = []
        is_fn = isinstance(sm, torch.jit.ScriptFunction)
        self.params = {} if is_fn else dict(_named(sm.named_parameters))
        self.buffers = {} if is_fn else dict(_named(sm.named_buffers))
        self.by_id: dict[int, str] = {}
        for k, v in list(self.params.items()) + list(self.buffers.items()):
            self.by_id.setdefault(id(v), k)
        self.attr_value: dict[str, Value] = {}  # path -> current IR value of a tensor attribute
        self.value_attr: dict[Value, str] = {}  # IR value -> attribute path it is the value of
        self.state: dict[str, Any] = {}  # path -> StateVar
        self.mutated_paths: set[str] = set()
        self.view_parent: dict[Value, tuple[Value, Any]] = {}
        self.input_values: list[Value] = []
        self.input_current: dict[Value, Value] = {}

    # -- helpers -------------------------------------------------------------------------------
    def report(self, what: str, prov: Provenance | None) -> None:
        entry = (what, str(prov) if prov is not None and str(prov) else None)
        if entry not in self.unsupported:
            self.unsupported.append(entry)

    def get(self, v: Any) -> Any:
        val = self.env[v.unique()]
        if isinstance(val, _Stale):
            raise _Unsupported(val.why, report=val.report)
        return val

    def set(self, v: Any, val: Any) -> None:
        self.env[v.unique()] = val

    def typed(self, v: Value, fake: Any) -> Value:
        if isinstance(fake, torch.Tensor):
            self.fake[v] = fake
            v.type = type_of(fake, self.dim)
        return v

    def constant(self, x: Any) -> Value:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        v = self.graph.add_constant(t)
        return self.typed(v, self.fake_mode.from_tensor(t, static_shapes=True))

    def as_tensor_value(self, x: Any) -> Value | None:
        if x is None or isinstance(x, Value):
            return x
        if isinstance(x, _Stale):
            raise _Unsupported(x.why, report=x.report)
        if isinstance(x, _Dyn):
            return x.value
        if isinstance(x, (torch.Tensor, bool, int, float)):
            return self.constant(x)
        if isinstance(x, torch.SymInt):
            return self.sym_value(x)
        raise _Unsupported(f"a {type(x).__name__} where a tensor is expected")

    def sym_value(self, x: Any) -> Value:
        """A symbolic size as a 0-d int64 IR tensor (computed from the inputs' shapes)."""
        v = self.sym_to_ir(expr_of(x), Provenance(origin=ORIGIN, module_path=""))
        if v not in self.fake:
            with self.faking():
                self.fake[v] = torch.empty((), dtype=torch.int64)
        return v

    def to_fake(self, x: Any) -> Any:
        if isinstance(x, Value):
            f = self.fake.get(x)
            if f is None:
                raise _Unsupported("a tensor of unknown shape (pass example_inputs)")
            return f
        if isinstance(x, _Dyn):
            raise _Unsupported("a data-dependent scalar used as an argument")
        if isinstance(x, list):
            return [self.to_fake(y) for y in x]
        if isinstance(x, tuple):
            return tuple(self.to_fake(y) for y in x)
        return x

    def create(self, op: str, inputs: list[Value | None], attrs: dict[str, Any], prov: Provenance,
               fake: Any = None, num_outputs: int = 1) -> list[Value]:
        n = self.graph.create_node(op, inputs, attrs, num_outputs=num_outputs, provenance=prov)
        fakes = fake if isinstance(fake, (tuple, list)) else (fake,)
        for o, f in zip(n.outputs, fakes):
            self.typed(o, f)
        return n.outputs

    def call_fake(self, ov: Any, args: list, kwargs: dict) -> Any:
        fargs = [self.to_fake(a) for a in args]
        fkwargs = {k: self.to_fake(v) for k, v in kwargs.items()}
        with self.faking():
            return ov(*fargs, **fkwargs)

    @contextlib.contextmanager
    def faking(self) -> Any:
        """Fake mode, for running an op's fake kernel.  Guards a kernel takes on symbolic sizes
        (a convolution's memory format, a reshape's view-or-copy, broadcasting against 1) are
        its runtime assumptions, as torch.export makes them runtime asserts; what the model
        itself decides on a size (``prim::If``, loops) is checked by :meth:`check_guards`."""
        with self.fake_mode:
            if self.shape_env is None:
                yield
            else:
                with self.shape_env.suppress_guards():
                    yield

    # -- setup ---------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.graph
        fn = self.sm if isinstance(self.sm, torch.jit.ScriptFunction) else self.sm.forward
        ts = fn.graph.copy()
        torch._C._jit_pass_inline(ts)
        ts_inputs = list(ts.inputs())
        if fn is self.sm:  # a scripted function: no ``self`` argument
            ts_inputs.insert(0, None)
        else:
            self.set(ts_inputs[0], _Obj("", self.sm))
            self.prescan(ts.block(), {ts_inputs[0].unique(): ""})

        input_names: list[str] = []
        try:
            sargs = list(fn.schema.arguments)[1 if fn is not self.sm else 0:]
        except Exception:  # noqa: BLE001
            sargs = []
        for i, inp in enumerate(ts_inputs[1:]):
            name = re.sub(r"\.\d+$", "", inp.debugName()) or f"input_{i}"
            if self.examples is not None and i >= len(self.examples):
                # an argument the examples leave out takes its default
                if i < len(sargs) and sargs[i].has_default_value():
                    self.set(inp, sargs[i].default_value)
                    continue
                raise ConversionError(f"no example input for argument {name!r}")
            ex = self.examples[i] if self.examples is not None else None
            spec = self.spec_of(i, sargs[i].name if i < len(sargs) else name)
            self.set(inp, self.bind_input(name, inp, ex, input_names, spec))

        try:
            outs = self.block(ts.block())
        except _Raised as r:
            raise ConversionError(f"the model raises for these inputs: {r}") from None
        result = outs[0] if len(outs) == 1 else tuple(outs)

        leaves, out_spec = pytree.tree_flatten(result)
        prov = Provenance(origin=ORIGIN, module_path="")
        g.outputs = []
        const_outs: list[tuple[int, Any]] = []
        scalar_outs: list[int] = []
        for i, leaf in enumerate(leaves):
            if leaf is None or isinstance(leaf, (bool, int, float, str)):
                const_outs.append((i, leaf))  # not a tensor: kept out of the graph
                continue
            if isinstance(leaf, _Dyn):
                scalar_outs.append(i)
            try:
                g.outputs.append(self.as_tensor_value(leaf))
            except _Unsupported as u:
                if u.report:
                    self.report(f"output: {u.what}", prov)
        sig = g.signature
        sig.scalar_outputs = scalar_outs  # leaves that are Python scalars computed from tensor data (0-d here)
        sig.constant_outputs = const_outs  # [(output leaf index, value), ...], as in the export frontend
        for v in self.input_values:
            cur = self.input_current.get(v)
            if cur is not None and cur is not v:
                sig.input_mutations.append(InputMutation(v.name, len(g.outputs)))
                g.outputs.append(cur)
        for path, sv in self.state.items():
            sv.next = self.attr_value.get(path, sv.current)
        # parameters and buffers forward never reads (num_batches_tracked in eval mode, the
        # second name of a tied weight) are kept too, so the names cover the state_dict
        for path, t in list(self.params.items()) + list(self.buffers.items()):
            if path not in self.attr_value and path not in g.parameters:
                g.add_parameter(path, t, role=ValueRole.PARAMETER if path in self.params else ValueRole.BUFFER)
        sig.mutated_buffers = sorted(self.state)

        sig.input_names = input_names
        ex_struct = tuple(self.examples) if self.examples is not None else tuple(
            object() for _ in ts_inputs[1:])
        sig.in_spec = pytree.treespec_dumps(pytree.tree_flatten((ex_struct, {}))[1])
        sig.out_spec = pytree.treespec_dumps(out_spec)

        for n in g.walk():
            if registry.lookup(n.op) is None:
                self.report(n.op, n.provenance)
        if self.shape_env is not None:
            self.check_guards()
        if self.unsupported:
            raise UnsupportedOpError(self.unsupported, hint=unsupported_hint() + "; TorchScript "
                                     "control flow on tensor data is lowered when its blocks are "
                                     "tensor code (they may not change lists)")
        return g

    def check_guards(self) -> None:
        """Refuse a conversion that only holds for some values of a dynamic dim: the model
        branched on it or fixed it (TorchScript has no way to say so; torch.export would
        report the same as a constraint violation)."""
        env = self.shape_env
        ours = {str(expr_of(s)) for s in self.symbols.values()}
        fixed = [f"{self.sym_names.get(str(k), k)} = {v}" for k, v in env.replacements.items()
                 if str(k) in ours and v.is_number]
        needs = [str(self.dim_text(gd.expr)) for gd in env.guards
                 if {str(x) for x in gd.expr.free_symbols} & ours]
        needs = [x for x in dict.fromkeys(needs) if x not in ("True",)]
        if fixed or needs:
            what = "; ".join(fixed + needs)
            raise ConversionError(f"the model does not keep its dynamic dims dynamic: it needs {what}",
                                  hint="give the dims a range that implies it (torch.export.Dim(name, min=..., "
                                  "max=...)), or make them static (leave them out of dynamic_shapes)")

    def dim_text(self, expr: Any) -> Any:
        """``expr`` with the user's dim names."""
        import sympy

        return expr.xreplace({x: sympy.Symbol(self.sym_names[str(x)], integer=True)
                              for x in expr.free_symbols if str(x) in self.sym_names})

    def spec_of(self, i: int, arg_name: str) -> Any:
        """The ``dynamic_shapes`` entry of forward argument ``i`` (a tuple/list by position,
        a dict by argument name, as torch.export takes it)."""
        spec = self.dynamic_shapes
        if spec is None:
            return None
        if isinstance(spec, dict):
            return spec.get(arg_name)
        if isinstance(spec, (tuple, list)):
            return spec[i] if i < len(spec) else None
        raise ConversionError(f"dynamic_shapes must be a tuple, list or dict, not {type(spec).__name__}")

    def fake_input(self, name: str, ex: torch.Tensor, spec: Any) -> Any:
        """The fake tensor of an input: dims named in ``spec`` are SymInts (one per name)."""
        if spec is None:
            return self.fake_mode.from_tensor(ex, static_shapes=True)
        from torch._dynamo.source import ConstantSource
        from torch.fx.experimental.symbolic_shapes import DimDynamic

        dims = dict(enumerate(spec)) if isinstance(spec, (list, tuple)) else spec
        if not isinstance(dims, dict):
            raise ConversionError(f"dynamic_shapes for input {name!r}: {spec!r}",
                                  hint="give a dict {dim: torch.export.Dim(...) or name} per tensor input")
        sizes: list[Any] = list(ex.shape)
        for d, dim in dims.items():
            if dim is None:
                continue
            if not isinstance(d, int) or not -ex.dim() <= d < ex.dim():
                raise ConversionError(f"dynamic_shapes for input {name!r}: no dim {d!r} in shape {tuple(ex.shape)}")
            d %= ex.dim()
            label = dim if isinstance(dim, str) else getattr(dim, "__name__", None)
            if not isinstance(label, str) or not label.isidentifier():
                label = f"{name}_dim{d}"  # Dim.AUTO/Dim.DYNAMIC: a name of its own
            if ex.shape[d] < 2:
                raise ConversionError(f"dynamic dim {label!r} of input {name!r} has size {ex.shape[d]} in the example",
                                      hint="give an example with a size of at least 2 (sizes 0 and 1 are specialized)")
            sym = self.symbols.get(label)
            if sym is None:
                assert self.shape_env is not None
                src = ConstantSource(label)
                expr = self.shape_env.create_symbol(int(ex.shape[d]), source=src, dynamic_dim=DimDynamic.DYNAMIC)
                lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)  # a Dim's range
                lo = 2 if not isinstance(lo, int) else max(lo, 2)
                hi = hi if isinstance(hi, int) else None
                if not lo <= ex.shape[d] <= (hi if hi is not None else ex.shape[d]):
                    raise ConversionError(f"dynamic dim {label!r} of input {name!r} has size {ex.shape[d]} in the "
                                          f"example, outside its range [{lo}, {hi if hi is not None else 'inf'}]")
                if lo > 2 or hi is not None:
                    from torch.utils._sympy.numbers import int_oo

                    self.shape_env.constrain_symbol_range(expr, lo, hi if hi is not None else int_oo)
                sym = self.symbols[label] = self.shape_env.create_symintnode(expr, hint=int(ex.shape[d]), source=src)
                self.sym_names[str(expr)] = label
            elif sym.node.hint != ex.shape[d]:
                raise ConversionError(f"dynamic dim {label!r} is {sym.node.hint} in one example input and "
                                      f"{ex.shape[d]} in input {name!r}")
            sizes[d] = sym
        with self.faking():
            return torch.empty_strided(sizes, _contiguous_strides(sizes), dtype=ex.dtype)

    def bind_input(self, name: str, inp: Any, ex: Any, names: list[str], spec: Any = None) -> Any:
        """A graph input (or a static value) for one forward argument."""
        if isinstance(ex, torch.Tensor):
            fake = self.fake_input(name, ex, spec)
            v = self.graph.add_input(name, type_of(fake, self.dim))
            self.typed(v, fake)
            for d, size in enumerate(fake.shape):
                if is_symbolic(size) and expr_of(size).is_Symbol:
                    self.sym_source.setdefault(str(expr_of(size)), (v, d))
            names.append(v.name)
            self.input_values.append(v)
            return v
        if isinstance(ex, (tuple, list)):
            subs = spec if isinstance(spec, (tuple, list)) and len(spec) == len(ex) else [None] * len(ex)
            items = [self.bind_input(f"{name}_{j}", None, e, names, sp) for j, (e, sp) in enumerate(zip(ex, subs))]
            return tuple(items) if isinstance(ex, tuple) else items
        if ex is not None:  # a number, a string...: specialized, not a graph input
            self.graph.signature.constant_inputs[name] = repr(ex)
            return ex
        if self.examples is not None or inp is None:  # an explicit None
            return None
        # no example: the TorchScript type (complete for traced graphs)
        t = inp.type() if inp is not None else None
        if isinstance(t, torch._C.TensorType):
            sizes = t.sizes()
            st = t.dtype()
            v = self.graph.add_input(name, TensorType(st, tuple(sizes) if sizes is not None else None))
            if sizes is not None and st is not None:
                self.typed(v, self.fake_mode.from_tensor(torch.empty(sizes, dtype=st), static_shapes=True))
            names.append(v.name)
            self.input_values.append(v)
            return v
        raise ConversionError(f"input {name!r} of type {t} needs an example input")

    def prescan(self, block: Any, paths: dict[int, str]) -> None:
        """Find tensor attributes written in place or by ``prim::SetAttr``: they become state."""
        for n in block.nodes():
            k = n.kind()
            if k == "prim::GetAttr" and n.input().unique() in paths:
                base = paths[n.input().unique()]
                paths[n.output().unique()] = f"{base}.{n.s('name')}" if base else n.s("name")
            elif k == "prim::SetAttr" and n.inputsSize() == 2 and n.inputsAt(0).unique() in paths:
                base = paths[n.inputsAt(0).unique()]
                self.mutated_paths.add(f"{base}.{n.s('name')}" if base else n.s("name"))
            elif n.inputsSize() and _mutates_first(n):
                root = n.inputsAt(0)
                while root.node().kind() != "prim::GetAttr" and _is_view_node(root.node()):
                    root = root.node().inputsAt(0)
                if root.unique() in paths:
                    self.mutated_paths.add(paths[root.unique()])
            for b in n.blocks():
                self.prescan(b, paths)

    # -- blocks and nodes ------------------------------------------------------------------------
    def block(self, block: Any) -> list[Any]:
        for n in block.nodes():
            prov = Provenance(origin=ORIGIN, module_path=_module_path(n), source=_source(n))
            try:
                outs = self.node(n, prov)
            except _Raised:
                raise
            except _Unsupported as u:
                if u.report:
                    self.report(u.what, prov)
                outs = [_Stale(f"result of unsupported {n.kind()}") for _ in n.outputs()]
            except TorchMDFError:
                raise
            except Exception as e:  # noqa: BLE001 - report with the node's location
                self.report(f"{n.kind()}: {type(e).__name__}: {str(e).splitlines()[0][:200]}", prov)
                outs = [_Stale(f"result of failed {n.kind()}") for _ in n.outputs()]
            for o, val in zip(n.outputs(), outs):
                self.set(o, val)
        return [self.env[v.unique()] for v in block.returnNode().inputs()]

    def node(self, n: Any, prov: Provenance) -> list[Any]:
        k = n.kind()
        ins = list(n.inputs())
        if k == "prim::Constant":
            out = n.output()
            if out.type().kind() == "FunctionType":
                return [_Func(n.s("name") if n.hasAttribute("name") else "function")]
            return [out.toIValue()]
        if k == "prim::GetAttr":
            return [self.get_attr(self.get(ins[0]), n.s("name"), prov)]
        if k == "prim::SetAttr":
            return self.set_attr(self.get(ins[0]), n.s("name"), self.get(ins[1]))
        if k == "prim::ListConstruct":
            return [[self.get(v) for v in ins]]
        if k == "prim::TupleConstruct":
            return [tuple(self.get(v) for v in ins)]
        if k == "prim::DictConstruct":
            vals = [self.get(v) for v in ins]
            return [dict(zip(vals[0::2], vals[1::2]))]
        if k in ("prim::ListUnpack", "prim::TupleUnpack"):
            seq = self.get(ins[0])
            if not isinstance(seq, (list, tuple)) or len(seq) != n.outputsSize():
                raise _Unsupported(f"{k} of a {type(seq).__name__}")
            return list(seq)
        if k == "prim::TupleIndex":
            return [self.get(ins[0])[self.static(ins[1], k)]]
        if k == "prim::If":
            return self.if_node(n, prov)
        if k == "prim::Loop":
            return self.loop(n, prov)
        if k == "prim::RaiseException":
            msg = self.get(ins[0]) if ins else ""
            raise _Raised(str(msg))
        if k == "prim::Uninitialized":
            return [_UNINIT]
        if k in ("prim::unchecked_cast", "prim::data", "aten::detach", "prim::profile"):
            return [self.get(ins[0])]
        if k == "prim::NumToTensor":
            x = self.get(ins[0])
            if isinstance(x, _Dyn):
                return [x.value]
            if is_symbolic(x):  # a size as a 0-d tensor (a trace's x.size(0)): stays symbolic
                return [x]
            return [torch.ops.prim.NumToTensor.Scalar(x)]
        if k == "prim::isinstance":
            t = ins[0].type()
            return [any(t.isSubtypeOf(c) for c in n.tys("types"))]
        if k == "prim::type" and ins and isinstance(self.get(ins[0]), torch.device):
            return [self.get(ins[0]).type]
        if k in ("prim::dtype", "prim::device", "prim::layout", "prim::requires_grad", "prim::shape",
                 "prim::type", "prim::grad") or (k.startswith("prim::is_") and len(ins) == 1):
            return [self.tensor_property(k, self.get(ins[0]))]
        if k in ("aten::is_grad_enabled",):
            return [True]
        if k.startswith("aten::is_autocast") or k == "aten::is_inference_mode_enabled":
            return [False]
        if k == "prim::CallFunction" or k == "prim::CallMethod":
            raise _Unsupported(f"{k} left after inlining")
        handled, res = self.list_op(n, k)
        if handled:
            return res
        return self.op(n, prov)

    def static(self, v: Any, what: str) -> Any:
        x = self.get(v)
        if _is_dynamic(x):
            raise _Unsupported(f"{what}: data-dependent value where a constant is needed")
        return x

    # -- attributes ----------------------------------------------------------------------------
    def get_attr(self, obj: Any, name: str, prov: Provenance) -> Any:
        if not isinstance(obj, _Obj):
            raise _Unsupported(f"prim::GetAttr {name!r} on a {type(obj).__name__}")
        path = f"{obj.path}.{name}" if obj.path else name
        if path in self.attr_value:
            return self.attr_value[path]
        val = getattr(obj.obj, name)
        if isinstance(val, torch.Tensor):
            return self.tensor_attr(path, val)
        if isinstance(val, (list, tuple)) and val and all(isinstance(t, torch.Tensor) for t in val):
            items = [self.tensor_attr(self.by_id.get(id(t), f"{path}.{i}"), t) for i, t in enumerate(val)]
            return items if isinstance(val, list) else tuple(items)
        if isinstance(val, torch.nn.Module) or isinstance(val, torch._C.ScriptObject):
            return _Obj(path, val)
        return val

    def tensor_attr(self, path: str, t: torch.Tensor) -> Value:
        if path in self.attr_value:
            return self.attr_value[path]
        g = self.root
        if path in self.mutated_paths:
            sv = g.add_state(path, t.detach().clone(), TensorType.of(t))
            self.state[path] = sv
            v = sv.current
        else:
            role = ValueRole.PARAMETER if path in self.params else ValueRole.BUFFER if path in self.buffers \
                else ValueRole.CONSTANT
            v = g.add_parameter(path, t, role=role)
        self.typed(v, self.fake_mode.from_tensor(t.detach(), static_shapes=True))
        self.attr_value[path] = v
        self.value_attr[v] = path
        return v

    def set_attr(self, obj: Any, name: str, val: Any) -> list[Any]:
        if not isinstance(obj, _Obj):
            raise _Unsupported(f"prim::SetAttr {name!r} on a {type(obj).__name__}")
        path = f"{obj.path}.{name}" if obj.path else name
        if path not in self.state:
            cur = getattr(obj.obj, name)
            if not isinstance(cur, torch.Tensor):
                raise _Unsupported(f"prim::SetAttr of the non-tensor attribute {path!r}")
            self.tensor_attr(path, cur)
        new = self.as_tensor_value(val)
        self.attr_value[path] = new
        self.value_attr[new] = path
        return []

    def tensor_property(self, k: str, x: Any) -> Any:
        if isinstance(x, Value):
            f = self.fake.get(x)
        elif isinstance(x, torch.Tensor):
            f = x
        else:
            raise _Unsupported(f"{k} of a {type(x).__name__}")
        if k == "prim::requires_grad":  # only parameters do: computed values are not tracked
            if isinstance(x, Value):
                p = self.params.get(self.value_attr.get(x, ""))
                return bool(p is not None and p.requires_grad)
            return bool(x.requires_grad)
        if k == "prim::grad":
            return None
        if k.startswith("prim::is_"):
            return False
        if f is None:
            raise _Unsupported(f"{k} of a tensor of unknown type (pass example_inputs)")
        if k == "prim::dtype":
            return _DTYPE_CODE[f.dtype]
        if k == "prim::device":
            return torch.device("cpu") if f.device.type == "meta" else f.device
        if k == "prim::layout":
            return LAYOUTS.index(f.layout)
        if k == "prim::shape":
            return list(f.shape)
        if k == "prim::type":
            return "cpu"
        raise _Unsupported(k)

    # -- lists, tuples, strings ----------------------------------------------------------------
    def list_op(self, n: Any, k: str) -> tuple[bool, list[Any]]:
        """Generic (``t``-typed) list/str/dict builtins, evaluated on the Python values."""
        base = k.split("::", 1)[1]
        ins = [self.get(v) for v in n.inputs()]
        if k.startswith("aten::") and base in ("__getitem__", "len", "append", "list", "format", "warn",
                                                  "__is__", "__isnot__", "__contains__", "_set_item",
                                                  "keys", "values", "extend", "slice", "__not__", "str",
                                                  "add", "eq", "ne", "insert", "pop", "reverse"):
            if base in ("__is__", "__isnot__"):
                a, b = ins
                same = (a is None and b is None) if (a is None or b is None) else (
                    a is b or (not _is_dynamic([a, b]) and same_value(a, b)))
                return True, [same if base == "__is__" else not same]
            if base == "warn":
                return True, []
            if base == "format":
                fmt, *args = ins
                return True, [str(fmt).format(*("<tensor>" if _is_dynamic(a) else a for a in args))]
            seq = ins[0] if ins else None
            if isinstance(seq, (list, tuple, dict, str)):
                if base == "__getitem__":
                    return True, [seq[ins[1]]]
                if base == "len":
                    return True, [len(seq)]
                if base == "append":
                    seq.append(ins[1])
                    return True, [seq]
                if base == "extend":
                    seq.extend(ins[1])
                    return True, []
                if base == "insert":
                    seq.insert(ins[1], ins[2])
                    return True, []
                if base == "pop":
                    return True, [seq.pop(ins[1] if len(ins) > 1 else -1)]
                if base == "reverse":
                    seq.reverse()
                    return True, []
                if base == "list":
                    return True, [list(seq)]
                if base == "keys":
                    return True, [list(seq.keys())]
                if base == "values":
                    return True, [list(seq.values())]
                if base == "__contains__":
                    return True, [ins[1] in seq]
                if base == "_set_item":
                    seq[ins[1]] = ins[2]
                    return True, []
                if base == "slice" and isinstance(seq, (list, str)):
                    start, end, step = (ins + [None, None, 1])[1:4]
                    return True, [seq[start:end:step]]
                if base in ("add",) and isinstance(ins[1], type(seq)) and not isinstance(seq, dict):
                    return True, [seq + ins[1]]
                if base in ("eq", "ne") and isinstance(ins[1], (list, tuple, str)) and not _is_dynamic(ins):
                    return True, [(list(seq) == list(ins[1])) == (base == "eq")]
                if base == "str":
                    return True, [str(seq)]
            if base == "__not__" and isinstance(seq, bool):
                return True, [not seq]
            if base == "str" and not _is_dynamic(ins):
                return True, [str(seq)]
        if k.startswith("prim::") and base in ("min", "max") and not _is_dynamic(ins):
            vals = ins[0] if len(ins) == 1 else ins
            if any(is_symbolic(x) for x in vals):
                pick = torch.sym_min if base == "min" else torch.sym_max
                out = vals[0]
                for x in vals[1:]:
                    out = pick(out, x)
                return True, [out]
            return True, [min(vals) if base == "min" else max(vals)]
        return False, []

    # -- control flow --------------------------------------------------------------------------
    def if_node(self, n: Any, prov: Provenance) -> list[Any]:
        cond = self.get(n.inputsAt(0))
        then_b, else_b = list(n.blocks())
        if isinstance(cond, _Dyn) or isinstance(cond, Value):
            return self.dynamic_if(n, self.as_tensor_value(cond), then_b, else_b, prov)
        if isinstance(cond, (torch.Tensor, torch.SymBool)):
            cond = bool(cond)  # on a symbolic size: a guard, checked when the lowering ends
        if not isinstance(cond, bool):
            raise _Unsupported(f"prim::If on a {type(cond).__name__}")
        try:
            return self.block(then_b if cond else else_b)
        except _Raised as r:
            raise ConversionError(f"the model raises for these inputs: {r}", location=str(prov)) from None

    def snapshot(self) -> _Snapshot:
        lists = {id(v): (v, list(v)) for v in self.env.values() if isinstance(v, list)}
        return _Snapshot(dict(self.env), dict(self.attr_value), dict(self.input_current), lists,
                         len(self.unsupported))

    def restore(self, snap: _Snapshot, keep_reports: bool = False) -> None:
        """Back to ``snap``; tensor attributes first read since then stay known (they are
        parameters of the root graph), and so do the problems reported if ``keep_reports``."""
        read = {p: v for p, v in self.attr_value.items()
                if p not in snap.attr and isinstance(v, Value) and v.graph is self.root}
        self.env, self.input_current = dict(snap.env), dict(snap.inputs)
        self.attr_value = {**snap.attr, **read}
        for lst, items in snap.lists.values():
            lst[:] = items
        if not keep_reports:
            del self.unsupported[snap.reported:]

    def changed_slots(self, snap: _Snapshot) -> dict[tuple[str, Any], Any]:
        """The outer mutable slots (TorchScript values written in place, tensor attributes,
        mutated inputs) a block changed, with their new values; a changed list is refused."""
        out: dict[tuple[str, Any], Any] = {}
        for key, old in snap.env.items():
            new = self.env.get(key, old)
            if new is not old:
                out[("env", key)] = new
        for path, new in self.attr_value.items():
            old = snap.attr.get(path)
            if new is not old and not (old is None and isinstance(new, Value) and new.graph is self.root):
                out[("attr", path)] = new
        for key, new in self.input_current.items():
            if new is not snap.inputs.get(key):
                out[("input", key)] = new
        for lst, items in snap.lists.values():
            if len(lst) != len(items) or any(a is not b for a, b in zip(lst, items)):
                raise _Unsupported("control flow on tensor data that changes a list")
        return out

    def slot_value(self, snap: _Snapshot, slot: tuple[str, Any]) -> Any:
        kind, key = slot
        src = snap.env if kind == "env" else snap.attr if kind == "attr" else snap.inputs
        return src.get(key, _UNINIT)

    def set_slot(self, slot: tuple[str, Any], val: Any) -> None:
        kind, key = slot
        if kind == "env":
            self.env[key] = val
        elif kind == "attr":
            self.attr_value[key] = val
            if isinstance(val, Value):
                self.value_attr[val] = key
        else:
            self.input_current[key] = val

    def in_region(self, region: Graph, fn: Any) -> Any:
        """Lower into ``region``; symbolic sizes computed there stay there."""
        saved = self.graph, self._sym_cache, self._shape_cache
        self.graph, self._sym_cache, self._shape_cache = region, dict(self._sym_cache), dict(self._shape_cache)
        try:
            return fn()
        finally:
            self.graph, self._sym_cache, self._shape_cache = saved

    def dynamic_if(self, n: Any, pred: Value, then_b: Any, else_b: Any, prov: Provenance) -> list[Any]:
        """An ``onnx::If`` whose regions are the two blocks: only the taken branch runs.  The
        If's outputs are the block results that differ (or are tensors) and the outer slots
        a branch writes.  A branch that only raises is an assert: the other one is inlined."""
        snap = self.snapshot()
        outer = self.graph
        lowered = []
        for b, name in ((then_b, "then_branch"), (else_b, "else_branch")):
            self.restore(snap, keep_reports=True)
            region = outer.new_region(name)
            try:
                outs = self.in_region(region, lambda b=b: self.block(b))
                lowered.append((region, outs, self.changed_slots(snap)))
            except _Raised:
                _discard(region)
                lowered.append(None)
        self.restore(snap, keep_reports=True)
        ok = [r for r in lowered if r is not None]
        if not ok:
            raise ConversionError("both branches of a data-dependent if raise", location=str(prov))
        if len(ok) == 1:  # an assert: lower the branch that does not raise here
            for r in ok:
                _discard(r[0])
            return self.block(then_b if lowered[0] is not None else else_b)
        (t_reg, t_out, t_slots), (f_reg, f_out, f_slots) = ok
        slots = list(dict.fromkeys([*t_slots, *f_slots]))
        pairs = [(a, b) for a, b in zip(t_out, f_out)]
        pairs += [(t_slots.get(s, self.slot_value(snap, s)), f_slots.get(s, self.slot_value(snap, s)))
                  for s in slots]
        t_res: list[Value] = []
        f_res: list[Value] = []
        kinds: list[bool] = []  # per If output: whether it is a data-dependent scalar

        def merge(a: Any, b: Any, what: str) -> Any:
            if a is b:
                return a
            if isinstance(a, (Value, _Dyn)) or isinstance(b, (Value, _Dyn)):
                if a is _UNINIT or b is _UNINIT:
                    raise _Unsupported(f"data-dependent if that sets {what} in one branch only")
                t_res.append(self.in_region(t_reg, lambda: self.as_tensor_value(a)))
                f_res.append(self.in_region(f_reg, lambda: self.as_tensor_value(b)))
                kinds.append(isinstance(a, _Dyn) and isinstance(b, _Dyn))
                return ("__if_output__", len(t_res) - 1)
            if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
                return type(a)(merge(x, y, what) for x, y in zip(a, b))
            if not _is_dynamic([a, b]) and same_value(a, b):
                return a
            raise _Unsupported(f"data-dependent if whose branches give different {what} ({a!r} vs {b!r})")

        merged = [merge(a, b, "results" if i < len(t_out) else "values")
                  for i, (a, b) in enumerate(pairs)]
        if not t_res:
            _discard(t_reg)
            _discard(f_reg)
            return merged[:len(t_out)]
        t_reg.outputs, f_reg.outputs = t_res, f_res
        node = outer.create_node("onnx::If", [pred], num_outputs=len(t_res), provenance=prov,
                                 regions=[t_reg, f_reg])
        for o, a, b in zip(node.outputs, t_res, f_res):
            o.type = join_types(a.type, b.type, o.name)
            fa, fb = self.fake.get(a), self.fake.get(b)
            if fa is not None and fb is not None and fa.shape == fb.shape and fa.dtype == fb.dtype:
                self.fake[o] = fa
        results = [_Dyn(o) if dyn else o for o, dyn in zip(node.outputs, kinds)]

        merged = [_fill_slots(v, "__if_output__", results) for v in merged]
        for s, v in zip(slots, merged[len(t_out):]):
            self.set_slot(s, v)
        return merged[:len(t_out)]

    def loop(self, n: Any, prov: Provenance) -> list[Any]:
        """``prim::Loop`` (ONNX Loop semantics).  A loop whose trip count and condition are
        static is unrolled while they stay static (static bodies build lists, index modules,
        read ``i`` as a Python int); from the iteration where the condition depends on data, or
        when the trip count does, or beyond ``_MAX_UNROLL`` iterations, it is an ``onnx::Loop``."""
        ins = list(n.inputs())
        trips = self.get(ins[0])
        cond = self.get(ins[1])
        carried = [self.get(v) for v in ins[2:]]
        body = list(n.blocks())[0]
        params = list(body.inputs())
        i = 0
        if not _is_dynamic(trips) and trips > _MAX_UNROLL and trips < _INT_MAX:
            return self.region_loop(n, trips, cond, carried, 0, prov)
        while not _is_dynamic([trips, cond]) and cond and i < trips:
            if i >= _MAX_UNROLL:
                return self.region_loop(n, trips - i if trips < _INT_MAX else trips, cond, carried, i, prov)
            self.set(params[0], i)
            for p, c in zip(params[1:], carried):
                self.set(p, c)
            outs = self.block(body)
            cond, carried = outs[0], outs[1:]
            i += 1
        if not _is_dynamic([trips, cond]):
            return carried
        if not _is_dynamic(trips) and trips < _INT_MAX:
            trips -= i
        return self.region_loop(n, trips, cond, carried, i, prov)

    def region_loop(self, n: Any, trips: Any, cond: Any, carried: list[Any], start: int,
                    prov: Provenance) -> list[Any]:
        """An ``onnx::Loop`` for the rest of a ``prim::Loop`` from iteration ``start``.  Carried
        values that stay static through the body stay static; the others (and outer slots the
        body writes) become loop-carried tensors, found by lowering the body again until the
        set does not grow."""
        body = list(n.blocks())[0]
        params = list(body.inputs())
        outer = self.graph
        snap = self.snapshot()
        dynamic = [_is_dynamic(c) for c in carried]
        slots: list[tuple[str, Any]] = []
        for _attempt in range(len(carried) + 8):
            self.restore(snap)
            region = outer.new_region("body")
            it = region.add_input("iteration_num", TensorType(torch.int64, ()))
            self.fake[it] = self._fake_of(it.type)
            region.add_input("cond_in", TensorType(torch.bool, ()))
            ins: list[Value] = []
            for j, c in enumerate(carried):
                if dynamic[j]:
                    init = self.as_tensor_value(c)
                    arg = self.typed(region.add_input(init.name, init.type), self.fake.get(init))
                    ins.append(init)
                    self.set(params[1 + j], arg if isinstance(c, (Value, torch.Tensor)) else _Dyn(arg))
                else:
                    self.set(params[1 + j], c)
            for s in slots:
                init = self.as_tensor_value(self.slot_value(snap, s))
                ins.append(init)
                self.set_slot(s, self.typed(region.add_input(init.name, init.type), self.fake.get(init)))

            def lower_body() -> list[Any]:
                index = _Dyn(it)
                if start:
                    index = _Dyn(self.create("aten::add.Tensor", [it, self.constant(start)], {}, prov,
                                             self._fake_call(torch.ops.aten.add.Tensor, it, it))[0])
                self.set(params[0], index)
                try:
                    return self.block(body)
                except _Raised as r:
                    raise ConversionError(f"a loop body raises: {r}", location=str(prov)) from None

            outs = self.in_region(region, lower_body)
            try:
                new_slots = [s for s in self.changed_slots(snap) if s not in slots]
            except _Unsupported:
                _discard(region)
                self.restore(snap, keep_reports=True)
                raise
            grow = [j for j, c in enumerate(carried) if not dynamic[j] and not (
                outs[1 + j] is c or (not _is_dynamic([outs[1 + j], c]) and same_value(outs[1 + j], c)))]
            if grow or new_slots:
                _discard(region)
                for j in grow:
                    dynamic[j] = True
                slots += new_slots
                continue
            break
        else:  # pragma: no cover - the set of carried values only grows
            raise _Unsupported("prim::Loop whose carried values do not settle")
        slot_outs = [self.slot_now(s) for s in slots]
        cond_out = outs[0]
        static_cond = not _is_dynamic(cond) and bool(cond) and not _is_dynamic(cond_out) and bool(cond_out)
        if not _is_dynamic(cond_out) and not bool(cond_out) and not _is_dynamic(cond):
            trips = 1 if _is_dynamic(trips) or trips >= 1 else 0  # a body that always stops: at most one pass
        res = [self.in_region(region, lambda: self.as_tensor_value(cond_out if _is_dynamic(cond_out)
                                                                   else bool(cond_out)))]
        res += [self.in_region(region, lambda o=outs[1 + j]: self.as_tensor_value(o))
                for j in range(len(carried)) if dynamic[j]]
        res += [self.in_region(region, lambda o=o: self.as_tensor_value(o)) for o in slot_outs]
        self.restore(snap, keep_reports=True)
        region.outputs = res
        m = None if not _is_dynamic(trips) and trips >= _INT_MAX else self.as_tensor_value(
            trips if _is_dynamic(trips) else torch.tensor(trips, dtype=torch.int64))
        c0 = None if static_cond else self.as_tensor_value(cond if _is_dynamic(cond) else bool(cond))
        node = outer.create_node("onnx::Loop", [m, c0, *ins], num_outputs=len(ins), provenance=prov,
                                 regions=[region])
        for o, init, r in zip(node.outputs, ins, res[1:]):
            o.type = join_types(init.type, r.type, o.name)
            f = self.fake.get(init)
            if f is not None and o.type == init.type:
                self.fake[o] = f
        k = 0
        results = []
        for j, c in enumerate(carried):
            if dynamic[j]:
                o = node.outputs[k]
                results.append(o if isinstance(c, (Value, torch.Tensor)) else _Dyn(o))
                k += 1
            else:
                results.append(c)
        for s in slots:
            self.set_slot(s, node.outputs[k])
            k += 1
        return results

    def slot_now(self, slot: tuple[str, Any]) -> Any:
        kind, key = slot
        return (self.env if kind == "env" else self.attr_value if kind == "attr" else self.input_current)[key]

    # -- ops -----------------------------------------------------------------------------------
    def op(self, n: Any, prov: Provenance) -> list[Any]:
        k = n.kind()
        schema_str = n.schema()
        ov = overload_of_schema(schema_str) if schema_str and schema_str != "(no schema)" else None
        if ov is None:
            raise _Unsupported(f"{k} (no operator schema)")
        schema = ov._schema
        sig = aten_signature(ov)
        values = [self.get(v) for v in n.inputs()]
        if len(values) != len(schema.arguments):
            raise _Unsupported(f"{k}: {len(values)} inputs for schema {schema}")
        values = [coerce_arg(t, v) for t, v in zip(sig.type_names, values)]
        base = schema.name.split("::", 1)[1]

        symbolic = self.shape_env is not None and _has_symbolic(values)
        if symbolic:
            sym = self.symbolic_scalar_op(k, base, values)
            if sym is not None:
                return sym
            # a size where a tensor or scalar goes: computed in the IR
            values = [self.sym_value(v) if is_symbolic(v) and t.startswith("Tensor") else
                      _Dyn(self.sym_value(v)) if is_symbolic(v) and t in ("Scalar", "Scalar?") else v
                      for t, v in zip(sig.type_names, values)]
            symbolic = _has_symbolic(values)
        elif self.shape_env is not None and base in ("size", "sym_size", "numel", "sym_numel"):
            sym = self.symbolic_scalar_op(k, base, values)
            if sym is not None:
                return sym
        if not _is_dynamic(values) and not symbolic and not n.isNondeterministic():
            args, kwargs = sig.call_args(values)
            out = ov(*args, **kwargs)
            return list(out) if len(schema.returns) > 1 else [out] if schema.returns else []

        if base in _DROPOUTS and values[-1] is False:
            return [values[0]]
        dyn_scalar = self.dyn_scalar_op(base, values, schema, prov)
        if dyn_scalar is not None:
            return dyn_scalar
        if _mutates_first_schema(schema):
            return self.inplace(ov, schema, values, prov)
        if _mutates_other(schema) or (base in ("batch_norm", "instance_norm") and values[5] is True
                                      and any(isinstance(v, Value) for v in values[3:5])):
            # a write TorchScript hides in the op (running statistics): functionalized by export
            return self.decompose(ov, schema, values, prov)
        if not all(_is_tensor_type(r.type) for r in schema.returns):
            # a non-tensor result from tensors: a shape query (static) or data-dependent
            args, kwargs = sig.call_args(values)
            try:
                out = self.call_fake(ov, args, kwargs)
            except _Unsupported:
                raise
            except Exception as e:  # noqa: BLE001
                raise _Unsupported(f"{k}: data-dependent result ({type(e).__name__})") from None
            return list(out) if len(schema.returns) > 1 else [out]
        if sum(1 for a in schema.arguments if isinstance(a.type, torch.ListType) and
               "Tensor" in str(a.type.getElementType())) > 1:
            return self.decompose(ov, schema, values, prov)
        if registry.file_op_refusal(schema_op_name(schema)) == _NOT_CORE and not sig.returns_list:
            # a composite op no canonicalization knows (``aten::diff``): its core ATen form,
            # which an MDF file may name
            return self.decompose(ov, schema, values, prov)
        return self.emit(ov, schema, values, prov)

    def symbolic_scalar_op(self, k: str, base: str, values: list[Any]) -> list[Any] | None:
        """Shape queries of tensors with symbolic dims, and integer arithmetic on symbolic
        sizes, done on the SymInts (torch's own scalar ops would fix them to their example
        values).  None: not such an op."""
        x = values[0] if values else None
        if base in ("size", "sym_size", "numel", "sym_numel") and isinstance(x, Value):
            f = self.fake.get(x)
            if f is None or not any(is_symbolic(d) for d in f.shape):
                return None
            if base in ("numel", "sym_numel"):
                return [f.numel()]
            return [f.shape[values[1]]] if len(values) > 1 else [list(f.shape)]
        if not any(is_symbolic(v) for v in values):
            return None
        if base in ("Int", "ScalarImplicit", "IntImplicit", "detach", "clone") and isinstance(x, torch.SymInt):
            return [x]
        if any(isinstance(v, (Value, _Dyn)) for v in values):
            return None  # a tensor op on a size: the size is computed in the IR (as_tensor_value)
        # a trace keeps Python ints it met as 0-d tensor constants (``num_heads``)
        values = [int(v) if isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point()
                  and not v.is_complex() and v.dtype != torch.bool else v for v in values]
        op = _SYM_ARITH.get(base)
        if op is not None and len(values) >= 2 and all(isinstance(v, (int, torch.SymInt)) for v in values[:2]):
            if base in ("add", "sub") and len(values) == 3 and values[2] not in (1, None):
                return None
            # floor and trunc agree on sizes (not negative) over a positive divisor
            if base == "div" and len(values) == 3 and (values[2] == "floor" or (
                    values[2] == "trunc" and isinstance(values[1], int) and values[1] > 0)):
                return [values[0] // values[1]]
            if base == "div" and len(values) != 3:
                return None  # true division: a float
            return [op(values[0], values[1])]
        if base == "neg" and isinstance(x, torch.SymInt):
            return [-x]
        return None

    def dyn_scalar_op(self, base: str, values: list[Any], schema: Any, prov: Provenance) -> list[Any] | None:
        """Scalar ops on data-dependent scalars become 0-d tensor ops."""
        if base in _DYN_FROM_TENSOR and len(values) == 1 and isinstance(values[0], (Value, _Dyn)):
            v = values[0].value if isinstance(values[0], _Dyn) else values[0]
            if base in ("Bool", "is_nonzero"):
                f = self.fake.get(v)
                if f is None or f.dtype != torch.bool:
                    v = self.create("aten::ne.Scalar", [v], {"other": 0}, prov,
                                    self._fake_call(torch.ops.aten.ne.Scalar, v, 0))[0]
            return [_Dyn(v)]
        if not any(isinstance(x, _Dyn) for x in values):
            return None
        if base == "__not__" and len(values) == 1:
            v = values[0].value
            return [_Dyn(self.create("aten::logical_not", [v], {}, prov,
                                     self._fake_call(torch.ops.aten.logical_not.default, v))[0])]
        op = _DYN_BINARY.get(base)
        if op is not None and len(values) == 2 and all(isinstance(x, (_Dyn, bool, int, float)) for x in values):
            a, b = (self.as_tensor_value(x) for x in values)
            ov = registry.resolve_aten(op)
            return [_Dyn(self.create(op, [a, b], {}, prov, self._fake_call(ov, a, b))[0])]
        if base == "floordiv" and len(values) == 2:
            a, b = (self.as_tensor_value(x) for x in values)
            ov = torch.ops.aten.div.Tensor_mode
            return [_Dyn(self.create("aten::div.Tensor_mode", [a, b], {"rounding_mode": "floor"}, prov,
                                     self._fake_call(ov, a, b, rounding_mode="floor"))[0])]
        if base in _TENSOR_SCALAR and isinstance(values[0], Value) and isinstance(values[1], _Dyn):
            # tensor <op> data-dependent scalar: the op's tensor-tensor overload
            ov = registry.resolve_aten(f"aten::{base}.{_TENSOR_SCALAR[base]}")
            if ov is not None and len(ov._schema.arguments) == len(values):
                return self.emit(ov, ov._schema, [values[0], values[1].value, *values[2:]], prov)
        raise _Unsupported(f"aten::{base} on a data-dependent scalar")

    def _fake_call(self, ov: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.call_fake(ov, list(args), kwargs)
        except Exception:  # noqa: BLE001 - types stay unknown
            return None

    def emit(self, ov: Any, schema: Any, values: list[Any], prov: Provenance) -> list[Any]:
        """One IR node for an ATen op (or several for an op returning a tensor list)."""
        sig = aten_signature(ov)
        name = schema_op_name(schema)

        bound = sig.bind_all(values)
        shape_entries: list[Any] | None = None

        def attr(arg: str, v: Any) -> Any:
            nonlocal shape_entries
            if _is_dynamic(v):
                raise _Unsupported(f"{name}: data-dependent value in argument '{arg}'")
            if not _has_symbolic(v):
                return normalize_attr(v)
            c = [concrete_sym(x) if is_symbolic(x) else x for x in v] if isinstance(v, (list, tuple)) \
                else concrete_sym(v)
            if not has_sym(c):
                return normalize_attr(c)
            src = self.fake.get(bound.get("self")) if isinstance(bound.get("self"), Value) else None
            in_shape = [expr_of(d) for d in src.shape] if src is not None else None
            try:
                return self.symbolic_attr(c, name, arg, in_shape, bound.get("dim", 0))
            except NeedsShapeTensor as nst:
                shape_entries = nst.exprs
                return OMIT

        if name.startswith("aten::arange") and any(is_symbolic(bound.get(a)) for a in ("start", "end", "step")):
            return [self.symbolic_arange(bound, prov)]
        try:
            inputs, attrs = sig.split(bound, self.as_tensor_value, attr, omit_defaults=True)
        except SchemaMismatchError as e:
            raise _Unsupported(e.raw_message) from None
        args, kwargs = sig.call_args(values)
        try:
            fake = self.call_fake(ov, args, kwargs)
        except _Unsupported:
            fake = None
        except Exception:  # noqa: BLE001 - no fake kernel: the type stays unknown
            fake = None
        if shape_entries is not None:
            name, inputs, attrs = self.shape_tensor_op(
                name, shape_entries, inputs, attrs, fake.dtype if isinstance(fake, torch.Tensor) else None, prov,
                {k: bound.get(k) for k in ("start", "end", "dim", "step")})
        rets = schema.returns
        if sig.returns_list:
            return [self.expand_list(name, bound, inputs[0], fake, prov)]
        outs = self.create(name, inputs, attrs, prov, fake, num_outputs=len(rets))
        if len(rets) == 1 and rets[0].alias_info is not None and not rets[0].alias_info.is_write \
                and inputs and inputs[0] is not None:
            self.view_parent[outs[0]] = (inputs[0], outs[0].producer)
        return list(outs)

    def symbolic_arange(self, bound: dict[str, Any], prov: Provenance) -> Value:
        """``arange`` with a symbolic bound: ``onnx::Range`` on 0-d tensors (then a cast)."""
        ends = [self.as_tensor_value(bound.get(k) if bound.get(k) is not None else d)
                for k, d in (("start", 0), ("end", None), ("step", 1))]
        with self.faking():
            fake = torch.arange(*(bound.get(k) if bound.get(k) is not None else d
                                  for k, d in (("start", 0), ("end", None), ("step", 1))))
        out = self.create("onnx::Range", ends, {}, prov, fake)[0]
        dtype = bound.get("dtype")
        dtype = SCALAR_TYPES[dtype] if isinstance(dtype, int) else dtype
        if isinstance(dtype, torch.dtype) and dtype != torch.int64:
            with self.faking():
                cast = fake.to(dtype)
            out = self.create("aten::_to_copy", [out], {"dtype": dtype}, prov, cast)[0]
        return out

    def expand_list(self, name: str, args: dict[str, Any], x: Value | None, fake: Any,
                    prov: Provenance) -> list[Value]:
        base = name.split("::", 1)[1].split(".", 1)[0]
        dim = args.get("dim", 0)
        if x is None or not isinstance(fake, (list, tuple)) or not isinstance(dim, int):
            raise _Unsupported(f"{name} (returns a tensor list)")
        outs: list[Value] = []
        if base in ("unbind",):
            for i, f in enumerate(fake):
                outs += self.create("aten::select.int", [x], {"dim": dim, "index": i}, prov, f)
            return outs
        if base in ("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split",
                    "unsafe_chunk", "unsafe_split_with_sizes"):
            start = 0
            for f in fake:
                end = start + int(f.shape[dim])
                outs += self.create("aten::slice.Tensor", [x], {"dim": dim, "start": start, "end": end}, prov, f)
                start = end
            return outs
        raise _Unsupported(f"{name} (returns a tensor list)")

    def decompose(self, ov: Any, schema: Any, values: list[Any], prov: Provenance) -> list[Any]:
        """An op the IR convention cannot spell (two tensor lists), or a composite op no rule
        knows: export a one-op wrapper to core ATen (dynamic dims stay dynamic, as
        ``torch.export.Dim``s of the same names and ranges) and inline its IR here."""
        leaves: list[Value] = []

        def collect(v: Any) -> Any:
            if isinstance(v, (Value, _Dyn)):
                leaves.append(self.as_tensor_value(v))
                return ("__tensor__", len(leaves) - 1)
            if isinstance(v, (list, tuple)):
                return type(v)(collect(x) for x in v)
            return v

        structure = [collect(v) for v in values]
        examples, dynamic, fakes = [], [], []
        for v in leaves:
            f = self.fake.get(v)
            if f is None:
                raise _Unsupported(f"{schema_op_name(schema)} on a tensor of unknown shape")
            fakes.append(f)
            examples.append(torch.zeros([d.node.hint if is_symbolic(d) else int(d) for d in f.shape], dtype=f.dtype))
            dynamic.append({i: self.export_dim(d, schema) for i, d in enumerate(f.shape) if is_symbolic(d)} or None)
        wrapper = _OneOp(ov, structure)
        try:
            ep = torch.export.export(wrapper, tuple(examples), strict=False,
                                     dynamic_shapes=(tuple(dynamic),) if any(dynamic) else None)  # *tensors
            sub = lower_exported_program(ep)
        except UnsupportedOpError as e:
            raise _Unsupported(f"{schema_op_name(schema)} (decomposition: {e.raw_message})") from None
        except Exception as e:  # noqa: BLE001
            what = "specializes a dynamic dim" if any(dynamic) and "onstraint" in type(e).__name__ else \
                f"could not decompose: {type(e).__name__}"
            raise _Unsupported(f"{schema_op_name(schema)} ({what})") from None
        vmap: dict[Value, Value] = dict(zip(sub.inputs, leaves))
        for p in sub.parameters.values():
            vmap[p] = self.constant(p.tensor)
        for node in sub:
            ins = [None if i is None else vmap[i] for i in node.inputs]
            new = self.graph.create_node(node.op, ins, dict(node.attrs), num_outputs=len(node.outputs),
                                         provenance=prov)
            for o_old, o_new in zip(node.outputs, new.outputs):
                o_new.type = o_old.type
                if o_old.type.is_static and o_old.type.dtype is not None:
                    self.fake[o_new] = self._fake_of(o_old.type)
                vmap[o_old] = o_new
        mutations = sub.signature.input_mutations
        for m in mutations:
            idx = next(i for i, v in enumerate(sub.inputs) if v.name == m.input)
            self.write(leaves[idx], vmap[sub.outputs[m.output]], prov)
        outs = [vmap[o] for o in sub.outputs[:len(sub.outputs) - len(mutations)]]
        if not schema.returns:
            return []
        if any(dynamic):  # the results' fakes in this lowering's symbols
            args, kwargs = aten_signature(ov).call_args(values)
            try:
                res = self.call_fake(ov, args, kwargs)
            except Exception:  # noqa: BLE001
                res = None
            for o, f in zip(outs, res if isinstance(res, (tuple, list)) else (res,)):
                if isinstance(f, torch.Tensor):
                    self.fake[o] = f
        return outs if len(schema.returns) > 1 else [outs[0]]

    def export_dim(self, d: Any, schema: Any) -> Any:
        """The ``torch.export.Dim`` standing for a symbolic dim of this lowering (same name
        and range), to decompose an op with it."""
        e = expr_of(d)
        if not e.is_Symbol or str(e) not in self.sym_names:
            raise _Unsupported(f"{schema_op_name(schema)} on a derived dynamic dim ({self.dim(d)})")
        from torch.utils._sympy.numbers import int_oo

        vr = self.shape_env.var_to_range.get(e)
        lo = int(vr.lower) if vr is not None and vr.lower.is_Integer else 2
        hi = int(vr.upper) if vr is not None and vr.upper.is_Integer and vr.upper != int_oo else None
        return torch.export.Dim(self.sym_names[str(e)], min=lo, **({"max": hi} if hi is not None else {}))

    def _fake_of(self, t: TensorType) -> Any:
        with self.faking():
            return torch.empty(t.shape, dtype=t.dtype)

    # -- in-place ops --------------------------------------------------------------------------
    def inplace(self, ov: Any, schema: Any, values: list[Any], prov: Provenance) -> list[Any]:
        """``x.op_(...)`` -> ``op(x, ...)``; the new value replaces ``x`` (and its base, for a
        view) everywhere later in the graph."""
        target = values[0]
        if not isinstance(target, Value):
            raise _Unsupported(f"{schema.name}_ on a {type(target).__name__}")
        base = schema.name.split("::", 1)[1]
        fname = base[:-1] if base.endswith("_") else base
        try:
            fov = getattr(getattr(torch.ops.aten, fname), schema.overload_name or "default")
        except (AttributeError, RuntimeError):
            raise _Unsupported(f"{schema_op_name(schema)} (no functional form)") from None
        if len(fov._schema.arguments) != len(schema.arguments):
            raise _Unsupported(f"{schema_op_name(schema)} (functional form has another signature)")
        new = self.emit(fov, fov._schema, values, prov)[0]
        ft, fn = self.fake.get(target), self.fake.get(new)
        if ft is not None and fn is not None and fn.dtype != ft.dtype:
            new = self.create("aten::_to_copy", [new], {"dtype": ft.dtype}, prov,
                              self._fake_call(torch.ops.aten._to_copy.default, new, dtype=ft.dtype))[0]
        self.write(target, new, prov)
        return [new]

    def write(self, target: Value, new: Value, prov: Provenance) -> None:
        """Make ``new`` the value of ``target``; through views, scatter back into the base."""
        replace: dict[Value, Value] = {target: new}
        cur, cur_new = target, new
        while cur in self.view_parent:
            parent, node = self.view_parent[cur]
            cur_new = self.unview(node, parent, cur_new, prov)
            replace[parent] = cur_new
            cur = parent
        root, root_new = cur, cur_new
        # other views of the root are now stale
        stale = {v for v in self.view_parent if v not in replace and self._root(v) is root}
        for key, val in list(self.env.items()):
            if isinstance(val, Value):
                if val in replace:
                    self.env[key] = replace[val]
                elif val in stale:
                    self.env[key] = _Stale("a view read after an in-place write to its base", report=True)
            elif isinstance(val, list):  # lists are mutable references in TorchScript
                for i, x in enumerate(val):
                    if isinstance(x, Value) and x in replace:
                        val[i] = replace[x]
        path = self.value_attr.get(root)
        if path is not None:
            if path not in self.state:
                root = self.make_state(path, root)
            self.attr_value[path] = root_new
            self.value_attr[root_new] = path
        if root in self.input_values or root in self.input_current.values():
            orig = next((k for k, v in self.input_current.items() if v is root), root)
            self.input_current[orig] = root_new
        if new is not target and target in self.view_parent:
            # the written view keeps being a view of the new base
            self.view_parent[new] = (replace[self.view_parent[target][0]], self.view_parent[target][1])

    def make_state(self, path: str, param: Value) -> Value:
        """Turn a tensor attribute found to be written (by an op that hides the write from
        its schema) into a state variable; returns its current value."""
        g = self.root
        sv = g.add_state(f"{path}__state", param.tensor.clone(), param.type)
        param.replace_all_uses_with(sv.current)
        for key, val in list(self.env.items()):
            if val is param:
                self.env[key] = sv.current
        g.remove_parameter(param)
        g._names.discard(sv.current.name)
        sv.current.name = sv.name = g.unique_name(path)
        self.fake[sv.current] = self.fake.get(param)
        self.state[path] = sv
        self.value_attr[sv.current] = path
        self.attr_value[path] = sv.current
        return sv.current

    def _root(self, v: Value) -> Value:
        while v in self.view_parent:
            v = self.view_parent[v][0]
        return v

    def unview(self, node: Any, parent: Value, new_view: Value, prov: Provenance) -> Value:
        """The new value of ``parent`` after its view (made by ``node``) became ``new_view``."""
        op, a = node.op, node.attrs
        fp = self.fake.get(parent)

        def mk(name: str, ins: list[Value], attrs: dict[str, Any]) -> Value:
            ov = registry.resolve_aten(name)
            fake = None
            if ov is not None:
                sig = aten_signature(ov)
                args, kwargs = sig.build_call([self.fake.get(i) for i in ins], attrs)
                try:
                    with self.faking():
                        fake = ov(*args, **kwargs)
                except Exception:  # noqa: BLE001
                    fake = None
            return self.create(name, ins, attrs, prov, fake)[0]

        if op == "aten::select.int":
            return mk("aten::select_scatter", [parent, new_view], {"dim": a.get("dim"), "index": a.get("index")})
        if op == "aten::slice.Tensor":
            return mk("aten::slice_scatter", [parent, new_view], dict(a))
        if op in ("aten::view", "aten::reshape", "aten::_unsafe_view", "aten::unsqueeze", "aten::squeeze",
                  "aten::squeeze.dim", "aten::squeeze.dims", "aten::flatten.using_ints", "aten::unflatten.int",
                  "aten::view_as", "aten::reshape_as") and fp is not None:
            return mk("aten::reshape", [new_view], {"shape": list(fp.shape)})
        if op == "aten::transpose.int":
            return mk("aten::transpose.int", [new_view], {"dim0": a.get("dim0", 0), "dim1": a.get("dim1", 1)})
        if op == "aten::t":
            return mk("aten::t", [new_view], {})
        if op == "aten::permute":
            dims = list(a["dims"])
            inv = [0] * len(dims)
            for i, d in enumerate(dims):
                inv[d % len(dims)] = i
            return mk("aten::permute", [new_view], {"dims": inv})
        if op in ("aten::alias", "aten::contiguous", "aten::detach", "aten::view_as_real"):
            return new_view
        if op == "aten::diagonal":
            return mk("aten::diagonal_scatter", [parent, new_view], dict(a))
        raise _Unsupported(f"in-place write through a view made by {op}")


class _OneOp(torch.nn.Module):
    """Calls one op with tensors put back into its argument structure (for decomposition)."""

    def __init__(self, ov: Any, structure: list[Any]):
        super().__init__()
        self.ov = ov
        self.structure = structure

    def forward(self, *tensors: torch.Tensor) -> Any:
        args, kwargs = aten_signature(self.ov).call_args([_fill_slots(v, "__tensor__", tensors)
                                                          for v in self.structure])
        return self.ov(*args, **kwargs)


def _has_symbolic(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return any(_has_symbolic(x) for x in v)
    return is_symbolic(v)


def _contiguous_strides(sizes: list[Any]) -> list[Any]:
    strides: list[Any] = []
    acc: Any = 1
    for size in reversed(sizes):
        strides.append(acc)
        acc = acc * size
    return strides[::-1]


def _named(fn: Any) -> list[tuple[str, torch.Tensor]]:
    """Every name of every parameter/buffer, tied ones included."""
    try:
        return list(fn(remove_duplicate=False))
    except TypeError:
        return list(fn())


def _is_tensor_type(t: Any) -> bool:
    """Tensor, Tensor?, Tensor[] (what an op returns to the IR)."""
    if isinstance(t, (torch.ListType, torch.OptionalType)):
        t = t.getElementType()
    return isinstance(t, torch.TensorType)


def _mutates_first_schema(schema: Any) -> bool:
    args = schema.arguments
    return bool(args) and args[0].alias_info is not None and args[0].alias_info.is_write


def _mutates_other(schema: Any) -> bool:
    return any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments[1:])


def _mutates_first(n: Any) -> bool:
    s = n.schema() if n.kind().startswith("aten::") else "(no schema)"
    if s == "(no schema)":
        return False
    schema = parse_schema(s)
    return schema is not None and _mutates_first_schema(schema)


def _is_view_node(n: Any) -> bool:
    if not n.kind().startswith("aten::"):
        return False
    s = n.schema()
    if s == "(no schema)":
        return False
    sch = parse_schema(s)
    if sch is None:
        return False
    rets = sch.returns
    return len(rets) == 1 and rets[0].alias_info is not None and not rets[0].alias_info.is_write


__all__ = ["lower_script_module", "lower_scripted", "lower_traced"]
