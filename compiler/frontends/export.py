"""The ``torch.export`` frontend: ``nn.Module`` / ``ExportedProgram`` -> IR.

``torch.export`` gives a functional ATen graph with parameters, buffers and constants lifted
to placeholders; after ``run_decompositions()`` (the default table: the core ATen opset) each
``call_function`` on an ``OpOverload`` becomes one IR node following the ATen convention of
:mod:`torchmdf.ops.registry` (op ``aten::<name>[.<overload>]``, tensor arguments as inputs in
schema order, every other argument that was passed as an attr under its schema name).

Design decisions (documented here because the other frontends and the backends rely on them):

* **Symbolic shapes.**  Graph inputs get the symbol names of their dynamic dims: the user's
  ``Dim`` name where torch kept it (``"batch"``), else ``str`` of the symbol (``"s0"``); derived
  dims are printed expressions (``"batch*7"``).  SymInt arithmetic (``sym_size``,
  ``operator.mul``...) never becomes IR nodes: each SymInt is carried as its sympy expression
  and resolved where it is used.  In a shape list (``view``/``reshape``/``expand``), one
  symbolic entry becomes ``-1`` (for ``expand`` only where it equals the input's own dim), a
  slice end equal to the input's size becomes "to the end"; several symbolic entries in a
  reshape are computed in the IR (``_shape_as_tensor`` -> ``select`` -> arithmetic ->
  ``stack``) and fed to ``aten::_reshape_from_tensor``.  A SymInt where an op wants a tensor
  is computed the same way.  Any other symbolic argument is reported as unsupported (export
  with that dim static instead).  So the IR stays shape-polymorphic in the dims that were
  exported as dynamic.
* **Buffers and state.**  Parameters, buffers and lifted constants become named graph
  parameters (roles "parameter", "buffer", "constant", names are fully qualified:
  ``"layer1.0.bn1.running_mean"``).  A buffer the model mutates (``buffers_to_mutate``, e.g.
  BatchNorm statistics in training mode, a counter) becomes a *state variable* instead:
  ``current`` is the buffer's value on entry, ``next`` its value after the call, ``init`` the
  module's tensor, so the graph is the pure function ``(inputs, state) -> (outputs, state')``.
  Mutated user inputs become extra graph outputs after the user outputs, recorded in
  ``graph.signature.input_mutations``.
* **Multi-output ops** (``native_layer_norm``, ``max_pool2d_with_indices``...) are one node with
  several outputs; ``operator.getitem`` maps to the right output value.  Ops returning a tensor
  *list* (``split_with_sizes``, ``unbind``) are expanded into one ``slice``/``select`` node per
  piece, so every IR value is a tensor.
* **Control flow** becomes regions (:mod:`torchmdf.ops.control_flow`): ``torch.cond`` an
  ``onnx::If`` (a predicate torch already knows is inlined as the branch it picks),
  ``torch.while_loop`` a ``torchmdf::While`` (carried values are region inputs),
  ``scan`` and ``map`` an ``onnx::Loop`` over dim 0 of ``xs`` (slice ``i`` taken with
  ``onnx::Gather``, the trip count a constant or computed from the shapes) whose extra results
  are scan outputs.  A subgraph's operands and additional inputs are read directly from the
  enclosing scope; region inputs get the types of export's placeholders.  Nesting works the
  same at any depth.  ``wrap_with_set_grad_enabled`` is inlined.  Runtime assertion nodes are dropped.  Data-dependent Python control flow makes
  ``torch.export`` fail: that failure is reported, together with every op the registry cannot
  resolve, as one :class:`~torchmdf.errors.UnsupportedOpError` (found with ``draft_export``).

The original calling convention is kept in ``graph.signature`` (a
:class:`~torchmdf.ir.GraphSignature`): ``in_spec`` and ``out_spec`` (``treespec_dumps``
strings of the user inputs' and outputs' pytrees), ``input_names`` and the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import re
import warnings
from typing import Any, Callable, Sequence

import torch
import torch.fx

from ..errors import ConversionError, TorchMDFError, UnsupportedOpError
from ..ir import Graph, InputMutation, Provenance, TensorType, Value, ValueRole
from ..ir._signature import dumps_spec
from ..ir.meta_keys import PERSISTENT
from ..ops import registry
from ..ops.aten_schema import OMIT, aten_signature, op_name_of
from ._fx_walk import _TORCH_DIR, FxGraphWalker, Unsupported, source_of
from ._symbolic_shapes import (
    NeedsShapeTensor,
    SymbolicShapes,
    concrete_sym,
    has_sym,
)
from ._symbolic_shapes import expr_of as _expr

ORIGIN = "torch.export"

# Nodes that only assert at run time (the IR is checked by its own verifier and shape pass).
_DROPPED = frozenset({
    "_assert_tensor_metadata", "_assert_scalar", "_assert_async", "sym_constrain_range",
    "sym_constrain_range_for_size", "_check_is_size", "_print",
})
# Ops whose result is a Python/Sym scalar computed from shapes: carried symbolically.
_SHAPE_QUERIES = frozenset({"sym_size", "sym_numel", "sym_stride", "sym_storage_offset"})


# ---------------------------------------------------------------------------------------------
# helpers shared with the TorchScript frontend
# ---------------------------------------------------------------------------------------------


def normalize_attr(v: Any) -> Any:
    """An attr value in IR form: tuples/immutable lists become plain lists, recursively."""
    if isinstance(v, (list, tuple)):
        return [normalize_attr(x) for x in v]
    return v


def type_of(val: Any, dim_name: Callable[[Any], Any] = lambda d: d) -> TensorType:
    """TensorType of a (fake) tensor; symbolic sizes go through ``dim_name``."""
    if isinstance(val, torch.Tensor):
        return TensorType(val.dtype, tuple(dim_name(d) for d in val.shape))
    if isinstance(val, bool):
        return TensorType(torch.bool, ())
    if isinstance(val, int):
        return TensorType(torch.int64, ())
    if isinstance(val, float):
        return TensorType(torch.float32, ())
    return TensorType()


def unsupported_hint() -> str:
    return ("register the missing ops with torchmdf.ops.register() (an 'aten::' op needs no entry), "
            "or rewrite the code that produces them")


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def lower_module(model: torch.nn.Module, example_inputs: Sequence[Any] | Any = (), *,
                 dynamic_shapes: Any = None, strict: bool = False, decompose: bool | str = "onnx",
                 example_kwargs: dict[str, Any] | None = None, dynamic_batch: bool = False) -> Graph:
    """Export ``model`` with ``torch.export`` (non-strict by default) and lower it.

    ``dynamic_batch=True``: dim 0 of every tensor input is one dynamic dim named ``"batch"``
    (the short form of ``dynamic_shapes``).

    An export failure (data-dependent control flow, an untraceable construct) becomes one
    :class:`UnsupportedOpError` naming the construct and its source line, plus every op the
    registry cannot resolve elsewhere in the model.
    """
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    kwargs = dict(example_kwargs or {})
    if dynamic_batch:
        dynamic_shapes = batch_dynamic_shapes(args, kwargs)
    try:
        ep = torch.export.export(model, args, kwargs or None, dynamic_shapes=dynamic_shapes, strict=strict)
    except TorchMDFError:
        raise
    except Exception as e:  # noqa: BLE001 - every export failure is reported the same way
        raise _export_failure(model, args, kwargs, dynamic_shapes, strict, e) from e
    g = lower_exported_program(ep, decompose=decompose)
    g.name = _sanitize_name(type(model).__name__)
    return g


# Ops kept whole by the ONNX-preferred decomposition: each has an exact canonicalization rule
# (:mod:`torchmdf.ops.aten_to_onnx`) to one or a few ONNX ops, is functional, and is what the
# user wrote (``nn.Linear``, ``F.scaled_dot_product_attention``...).  Everything else
# decomposes with torch.export's default (core ATen) table, as torch.onnx's exporter does with
# the ops its own registry translates.
KEPT_OPS: tuple[str, ...] = registry.EXPORT_KEPT_OPS  # one list: the file allow-list reads it too
_TABLE: Any = None


def decomposition_table() -> Any:
    """torch.export's default decomposition table without :data:`KEPT_OPS` (built once)."""
    global _TABLE
    if _TABLE is None:
        table = torch.export.default_decompositions()
        for name in KEPT_OPS:
            base, _, overload = name.partition(".")
            packet = getattr(torch.ops.aten, base, None)
            ov = getattr(packet, overload or "default", None) if packet is not None else None
            if ov is not None and ov in table:
                table.pop(ov)
        _TABLE = table
    return _TABLE


def batch_dynamic_shapes(args: tuple, kwargs: dict[str, Any]) -> Any:
    """``dynamic_shapes`` making dim 0 of every tensor input (at any depth) one ``"batch"`` dim."""
    batch = torch.export.Dim("batch")

    def spec(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if x.dim() == 0:
                return None
            if x.shape[0] < 2:
                raise ConversionError(f"dynamic_batch needs example inputs with a batch of at least 2 "
                                      f"(got shape {tuple(x.shape)})",
                                      hint="torch.export specializes dims of size 0 and 1")
            return {0: batch}
        if isinstance(x, (list, tuple)):
            return tuple(spec(y) for y in x) if isinstance(x, tuple) else [spec(y) for y in x]
        if isinstance(x, dict):
            return {k: spec(v) for k, v in x.items()}
        return None

    if kwargs:
        raise ConversionError("dynamic_batch with keyword example inputs",
                              hint="pass the example inputs positionally, or give dynamic_shapes")
    return tuple(spec(a) for a in args)


def lower_exported_program(ep: torch.export.ExportedProgram, *, decompose: bool | str = "onnx") -> Graph:
    """Lower an ``ExportedProgram``.  ``decompose``: ``"onnx"`` (default) decomposes every op
    but :data:`KEPT_OPS`, which canonicalize straight to ONNX; ``True`` (or ``"core"``) the
    full core-ATen decomposition; ``False`` none (the graph as exported)."""
    if decompose not in (True, False, "onnx", "core"):
        raise ConversionError(f"decompose={decompose!r}", hint="use 'onnx' (default), 'core'/True or False")
    if decompose == "onnx" and _lowers_directly(ep):
        return _Lowering(ep, direct=True).run()
    if decompose:
        try:
            with warnings.catch_warnings():
                # torch's own pytree code warns about its own deprecated LeafSpec: not the user's concern
                warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
                if decompose == "onnx":
                    ep = ep.run_decompositions(decomposition_table())
                else:
                    ep = ep.run_decompositions()
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"torch.export decomposition failed: {type(e).__name__}: {e}") from e
    return _Lowering(ep).run()


# ---------------------------------------------------------------------------------------------
# the direct path: no re-trace when the exported graph needs no decomposition
# ---------------------------------------------------------------------------------------------
#
# ``run_decompositions`` re-traces the whole program (functionalization included): most of the
# conversion time of a convolutional model.  When every op of the exported graph would survive
# the ONNX-preferred table anyway (or has a canonicalization rule), and the only mutations are
# in-place ops on intermediate results nothing else views (``relu_``, ``out += identity``),
# the graph is lowered as exported, each in-place op as its functional form.


def _functional_of(ov: Any) -> Any:
    """``aten.add.Tensor`` for ``aten.add_.Tensor``; None if there is none."""
    name = ov._schema.name.split("::", 1)[1]
    if not name.endswith("_") or name.startswith("_"):
        return None
    packet = getattr(torch.ops.aten, name[:-1], None)
    return getattr(packet, ov._overloadname, None) if packet is not None else None


def _is_view(target: Any) -> bool:
    """An op whose result is a view of an input (not an in-place op's own result)."""
    return isinstance(target, torch._ops.OpOverload) and any(
        r.alias_info is not None and not r.alias_info.is_write for r in target._schema.returns)


_LIST_OPS = frozenset({"split", "split_with_sizes", "unbind", "chunk"})


def _op_ok(ov: Any, table: Any) -> bool:
    """An op the lowering takes as exported: one with a canonicalization rule or a list op the
    frontend expands, else one the decomposition would keep (not in the table, and not
    CompositeImplicitAutograd, which decomposes whether the table lists it or not)."""
    from ..ops.aten_to_onnx import RULES

    name = op_name_of(ov)
    if name in RULES or name.split("::", 1)[1].split(".", 1)[0] in _LIST_OPS:
        return True
    if ov in table:
        return False
    return not ov.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)


def _lstm_supported(bound: dict[str, Any]) -> bool:
    """An ``aten::lstm.input`` call the frontend spells as ONNX LSTMs (bound arguments)."""
    from ..ops.aten_to_onnx import rnn_supported

    def shape(a: Any) -> Any:
        v = a.meta.get("val") if isinstance(a, torch.fx.Node) else None
        return tuple(v.shape) if isinstance(v, torch.Tensor) else None

    def dtype(a: Any) -> Any:
        v = a.meta.get("val") if isinstance(a, torch.fx.Node) else None
        return v.dtype if isinstance(v, torch.Tensor) else None

    hx, params = list(bound.get("hx") or ()), list(bound.get("params") or ())
    x = bound.get("input")
    return (len(hx) == 2 and rnn_supported(bound.get("num_layers"), bound.get("has_biases"), bound.get("bidirectional"),
                                           bound.get("train"), bound.get("dropout"), shape(x), shape(hx[0]), len(params))
            and dtype(x) is not None and dtype(x).is_floating_point
            and all(dtype(a) == dtype(x) for a in hx + params))


def _lowers_directly(ep: torch.export.ExportedProgram) -> bool:
    """True when ``ep``'s graph can be lowered without ``run_decompositions`` (see above)."""
    table = decomposition_table()
    for n in ep.graph.nodes:
        if n.op != "call_function":
            continue
        t = n.target
        if isinstance(t, torch._ops.HigherOrderOperator):
            return False
        if not isinstance(t, torch._ops.OpOverload):
            continue
        base = t._schema.name.split("::", 1)[1]
        if base in _DROPPED or base in _SHAPE_QUERIES:
            continue
        if not t._schema.name.startswith("aten::"):
            return False
        if t is torch.ops.aten.lstm.input:
            if not _lstm_supported(aten_signature(t).bind(n.args, n.kwargs)):
                return False
            continue
        if t._schema.is_mutable:
            f = _functional_of(t)
            src = n.args[0] if n.args else None
            if f is None or not _op_ok(f, table) or not isinstance(src, torch.fx.Node):
                return False
            if src.op != "call_function" or _is_view(src.target) or isinstance(src.target, torch._ops.HigherOrderOperator):
                return False
            if any(u is not n and _is_view(u.target) for u in src.users):
                return False
            val = n.meta.get("val")
            for a in n.args:  # in place keeps the dtype: only where no promotion happens
                av = a.meta.get("val") if isinstance(a, torch.fx.Node) else None
                if isinstance(av, torch.Tensor) and (not isinstance(val, torch.Tensor) or av.dtype != val.dtype):
                    return False
        elif not _op_ok(t, table):
            return False
        if t is torch.ops.aten.batch_norm.default and (len(n.args) < 6 or n.args[5] is not False):
            return False  # training mode updates the running statistics
    return True


# ---------------------------------------------------------------------------------------------
# the lowering
# ---------------------------------------------------------------------------------------------


class _Lowering(SymbolicShapes, FxGraphWalker):
    origin = ORIGIN

    def __init__(self, ep: torch.export.ExportedProgram, direct: bool = False):
        super().__init__()
        self.ep = ep
        self.direct = direct  # in-place ops on intermediates become functional (see _lowers_directly)
        self._alias_root: dict[torch.fx.Node, torch.fx.Node] = {}
        self._aliases: dict[torch.fx.Node, list[torch.fx.Node]] = {}
        self.graph = Graph("main")
        self.sym_names: dict[str, str] = {}  # sympy symbol name -> user-facing name
        self.sym_source: dict[str, tuple[Value, int]] = {}  # symbol name -> (input, dim)
        self._sym_cache: dict[Any, Value] = {}
        self._shape_cache: dict[Value, Value] = {}
        self._collect_symbol_names()

    # -- symbols -------------------------------------------------------------------------------
    def _collect_symbol_names(self) -> None:
        """Map shape-env symbols to the user's ``Dim`` names where torch kept them."""
        for n in self.ep.graph.nodes:
            v = n.meta.get("val") if n.op == "placeholder" else None
            fake_mode = getattr(v, "fake_mode", None)
            env = getattr(fake_mode, "shape_env", None)
            if env is None:
                continue
            debug = getattr(env, "source_name_to_debug_name", {}) or {}
            for sym, sources in getattr(env, "var_to_sources", {}).items():
                for src in sources:
                    name = debug.get(getattr(src, "name", None))
                    if name:
                        self.sym_names.setdefault(str(sym), name)
                        break
            return

    def ttype(self, val: Any) -> TensorType:
        return type_of(val, self.dim)

    # -- the walk ------------------------------------------------------------------------------
    def run(self) -> Graph:
        ep, g = self.ep, self.graph
        sig = ep.graph_signature
        specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
        mutated_buffers = set(sig.buffers_to_mutate.values())
        env: dict[torch.fx.Node, Any] = {}
        input_names: list[str] = []
        state_of: dict[str, Any] = {}
        user_input_nodes: dict[str, Value] = {}
        from torch.export.graph_signature import InputKind, OutputKind

        for node in ep.graph.nodes:
            if node.op != "placeholder":
                continue
            spec = specs.get(node.name)
            kind = spec.kind if spec is not None else InputKind.USER_INPUT
            val = node.meta.get("val")
            if kind == InputKind.USER_INPUT:
                if isinstance(val, torch.Tensor):
                    v = g.add_input(node.name, self.ttype(val))
                    env[node] = v
                    user_input_nodes[node.name] = v
                    input_names.append(v.name)
                    for i, d in enumerate(val.shape):
                        e = _expr(d)
                        if e is not None and e.is_Symbol:
                            self.sym_source.setdefault(str(e), (v, i))
                else:  # a constant (or SymInt) user input: specialized by export
                    env[node] = val
                    g.signature.constant_inputs[node.name] = repr(val)
            elif kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                target = spec.target
                tensor = ep.state_dict.get(target) if target in ep.state_dict else ep.constants.get(target)
                if tensor is None:
                    raise ConversionError(f"no tensor for lifted input {node.name!r} ({target})")
                if not isinstance(tensor, torch.Tensor):
                    self.report(f"custom object input {target}", None)
                    env[node] = None
                    continue
                if target in mutated_buffers:
                    sv = g.add_state(target, tensor.detach().clone(), TensorType.of(tensor))
                    if kind == InputKind.BUFFER and getattr(spec, "persistent", True) is False:
                        sv.current.meta[PERSISTENT] = False
                    state_of[target] = sv
                    env[node] = sv.current
                else:
                    role = {InputKind.PARAMETER: ValueRole.PARAMETER,
                            InputKind.BUFFER: ValueRole.BUFFER}.get(kind, ValueRole.CONSTANT)
                    env[node] = g.add_parameter(target, tensor, role=role)
                    if kind == InputKind.BUFFER and getattr(spec, "persistent", True) is False:
                        env[node].meta[PERSISTENT] = False  # not in the original's state_dict
            else:  # tokens, custom objects
                self.report(f"unsupported exported input kind {kind.name} ({node.name})", None)
                env[node] = None

        outs = self.walk(ep.graph_module, env)

        user_outs: list[Value] = []
        mutations: list[dict[str, Any]] = []
        const_outs: dict[int, Any] = {}
        scalar_outs: list[int] = []
        leaf = 0
        for spec, val in zip(sig.output_specs, outs):
            prov = Provenance(origin=ORIGIN, module_path="")
            v = self.as_output(val, prov)
            if spec.kind == OutputKind.USER_OUTPUT:
                if isinstance(v, _ConstOut):
                    const_outs[leaf] = v.value
                else:
                    if v.meta.pop("pytorch_scalar_output", False):
                        scalar_outs.append(leaf)
                    user_outs.append(v)
                leaf += 1
            elif isinstance(v, _ConstOut):
                self.report(f"a constant {spec.kind.name} output", None)
            elif spec.kind in (OutputKind.BUFFER_MUTATION, OutputKind.PARAMETER_MUTATION):
                sv = state_of.get(spec.target)
                if sv is None:
                    raise ConversionError(f"mutation of {spec.target!r} that is not a lifted buffer")
                sv.next = v
            elif spec.kind == OutputKind.USER_INPUT_MUTATION:
                mutations.append({"input": spec.target, "output": None, "value": v})
            else:
                self.report(f"unsupported exported output kind {spec.kind.name}", None)
        g.outputs = list(user_outs)
        for m in mutations:
            m["output"] = len(g.outputs)
            g.outputs.append(m.pop("value"))
        sig = g.signature
        sig.input_mutations = [InputMutation(m["input"], m["output"]) for m in mutations]
        sig.constant_outputs = sorted(const_outs.items())  # [(output leaf index, value), ...]
        sig.scalar_outputs = scalar_outs

        sig.input_names = input_names
        call_spec = ep.call_spec
        if call_spec.in_spec is not None:
            sig.in_spec = dumps_spec(call_spec.in_spec)
        if call_spec.out_spec is not None:
            sig.out_spec = dumps_spec(call_spec.out_spec)
        sig.mutated_buffers = sorted(state_of)

        for n in g:
            if registry.lookup(n.op) is None:
                self.report(n.op, n.provenance)
        self.raise_unsupported(unsupported_hint())
        return g

    def output(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> list[Any]:
        outs = node.args[0]
        outs = outs if isinstance(outs, (list, tuple)) else [outs]  # a while_loop's cond returns one value
        return [env.get(a) if isinstance(a, torch.fx.Node) else a for a in outs]

    def failed(self, node: torch.fx.Node) -> Any:
        """A stand-in result for a node that could not be lowered, so the walk can go on and
        report every problem at once."""
        val = node.meta.get("val")
        if isinstance(val, (tuple, list)):
            return tuple(self._dummy_value(x) for x in val)
        return self._dummy_value(val)

    def _dummy_value(self, val: Any) -> Any:
        if isinstance(val, torch.Tensor):
            return self.graph.add_constant(torch.zeros(()), name="unsupported")
        return val

    # -- one call_function -----------------------------------------------------------------------
    def call_function(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any]) -> Any:
        target = node.target
        prov = self.provenance(node)
        if target is operator.getitem:
            seq, idx = node.args
            base = env[seq]
            if isinstance(base, (tuple, list)):
                return base[idx]
            raise Unsupported(f"getitem on {type(base).__name__}")
        if isinstance(target, torch._ops.OpOverload):
            name = op_name_of(target)
            base = name.split("::", 1)[1].split(".", 1)[0]
            if name.startswith("aten::") and base in _DROPPED:
                return None
            if name.startswith("aten::") and base in _SHAPE_QUERIES:
                return node.meta.get("val")
            if self.direct and target._schema.is_mutable:
                return self.in_place(node, target, prov, env)
            return self.emit(node, target, name, prov, env)
        if isinstance(target, torch._ops.HigherOrderOperator):
            return self.higher_order(node, target, prov, env)
        if _is_sym_function(target):
            # SymInt arithmetic: carried symbolically as the value torch computed
            return node.meta.get("val")
        raise Unsupported(f"python call {getattr(target, '__module__', '')}.{getattr(target, '__name__', target)}")

    def in_place(self, node: torch.fx.Node, overload: Any, prov: Provenance,
                 env: dict[torch.fx.Node, Any]) -> Any:
        """``x.op_(...)`` as ``op(x, ...)``; every name of ``x`` reads the new value from here on."""
        f = _functional_of(overload)
        out = self.emit(node, f, op_name_of(f), prov, env)
        src = node.args[0]
        root = self._alias_root.get(src, src)
        group = self._aliases.setdefault(root, [root])
        if src not in group:
            group.append(src)
        self._alias_root[node] = root
        group.append(node)
        for a in group:
            env[a] = out
        return out

    def emit(self, node: torch.fx.Node, overload: Any, name: str, prov: Provenance,
             env: dict[torch.fx.Node, Any]) -> Any:
        sig = aten_signature(overload)
        bound = sig.bind(node.args, node.kwargs)
        val = node.meta.get("val")
        g = self.graph

        if name == "aten::lstm.input":  # two tensor lists, which the IR does not spell: ONNX LSTMs
            return self.expand_lstm(bound, env, val, prov)

        # ops returning a tensor list: one slice/select node per piece
        if sig.returns_list:
            return self.expand_list_op(name, bound, env, val, prov)

        if name.startswith("aten::arange") and any(
                _is_symbolic(bound.get(k), env) for k in ("start", "end", "step")):
            return self.symbolic_arange(node, bound, env, val, prov)

        shape_entries: list[Any] | None = None

        def attr(arg: str, a: Any) -> Any:
            nonlocal shape_entries
            try:
                return self.attr(a, env, name, arg, bound, prov)
            except NeedsShapeTensor as nst:
                shape_entries = nst.exprs
                return OMIT

        inputs, attrs = sig.split(bound, lambda a: self.tensor_input(a, env, prov), attr)
        if shape_entries is not None:
            slice_args = {k: env.get(a) if isinstance(a, torch.fx.Node) else a for k, a in bound.items()
                          if k in ("start", "end", "dim", "step")}
            name, inputs, attrs = self.shape_tensor_op(
                name, shape_entries, inputs, attrs, val.dtype if isinstance(val, torch.Tensor) else None, prov,
                slice_args)

        nret = sig.num_returns
        vals = tuple(val) if isinstance(val, (tuple, list)) else (val,)
        n = g.create_node(name, inputs, attrs, num_outputs=nret, provenance=prov, name=node.name)
        for o, mv in zip(n.outputs, vals):
            o.type = self.ttype(mv)
        if nret == 0:
            return None
        return n.outputs[0] if nret == 1 else tuple(n.outputs)

    def expand_lstm(self, bound: dict[str, Any], env: dict[torch.fx.Node, Any], val: Any,
                    prov: Provenance) -> tuple[Value, ...]:
        """``aten::lstm.input`` (unidirectional, with biases: :func:`_lstm_supported`) as one
        ONNX ``LSTM`` per layer (:func:`torchmdf.ops.aten_to_onnx.rnn_as_onnx`)."""
        from ..ops.aten_to_onnx import rnn_as_onnx
        from ..passes.infer_shapes import infer_node

        if not _lstm_supported(bound):
            raise Unsupported("aten::lstm.input (bidirectional, without biases or with training dropout)")
        g = self.graph
        x = self.tensor_input(bound["input"], env, prov)
        hx = [self.tensor_input(a, env, prov) for a in bound["hx"]]
        params = [self.tensor_input(a, env, prov) for a in bound["params"]]

        def op(name: str, inputs: list[Any], attrs: dict[str, Any], n: int) -> Any:
            node = g.create_node(name, inputs, attrs, num_outputs=n, provenance=prov)
            infer_node(node, strict=False)
            return node.outputs[0] if n == 1 else list(node.outputs)

        outs = rnn_as_onnx("LSTM", op, lambda t: g.add_constant(t.to(torch.int64)), x, hx, params,
                           layers=int(bound["num_layers"]), hidden=int(bound["hx"][0].meta["val"].shape[2]),
                           batch_first=bool(bound["batch_first"]))
        for o, mv in zip(outs, val):
            o.type = self.ttype(mv)
        return tuple(outs)

    def expand_list_op(self, name: str, bound: dict[str, Any], env: dict[torch.fx.Node, Any], val: Any,
                       prov: Provenance) -> tuple[Value, ...]:
        """``split_with_sizes``/``split``/``unbind`` as one ``slice``/``select`` per piece."""
        g = self.graph
        base = name.split("::", 1)[1].split(".", 1)[0]
        x = self.tensor_input(bound.get("self"), env, prov)
        dim = bound.get("dim", 0)
        pieces = list(val) if isinstance(val, (list, tuple)) else []
        if not isinstance(dim, int) or not pieces:
            raise Unsupported(f"{name} (returns a tensor list)")
        outs: list[Value] = []
        if base == "unbind":
            for i, mv in enumerate(pieces):
                n = g.create_node("aten::select.int", [x], {"dim": dim, "index": i}, provenance=prov)
                n.output.type = self.ttype(mv)
                outs.append(n.output)
            return tuple(outs)
        if base in ("split_with_sizes", "split", "split_copy", "split_with_sizes_copy", "chunk"):
            start = 0
            for mv in pieces:
                size = _expr(mv.shape[dim])
                if size is None or not size.is_number:
                    raise Unsupported(f"{name} with a symbolic piece size")
                end = start + int(size)
                n = g.create_node("aten::slice.Tensor", [x], {"dim": dim, "start": start, "end": end},
                                  provenance=prov)
                n.output.type = self.ttype(mv)
                outs.append(n.output)
                start = end
            return tuple(outs)
        raise Unsupported(f"{name} (returns a tensor list)")

    def symbolic_arange(self, node: torch.fx.Node, bound: dict[str, Any], env: dict[torch.fx.Node, Any],
                        val: Any, prov: Provenance) -> Value:
        """``arange`` with a symbolic bound: ``onnx::Range`` on 0-d tensors computed in the IR
        (then a cast when the result is not int64)."""
        g = self.graph
        ends = [self.tensor_input(bound.get(k, d), env, prov)
                for k, d in (("start", 0), ("end", None), ("step", 1))]
        n = g.create_node("onnx::Range", ends, provenance=prov, name=node.name)
        n.output.type = TensorType(torch.int64, self.ttype(val).shape)
        out = n.output
        if isinstance(val, torch.Tensor) and val.dtype != torch.int64:
            c = g.create_node("aten::_to_copy", [out], {"dtype": val.dtype}, provenance=prov)
            c.output.type = self.ttype(val)
            out = c.output
        return out

    def tensor_input(self, a: Any, env: dict[torch.fx.Node, Any], prov: Provenance) -> Value | None:
        if isinstance(a, torch.fx.Node):
            a = env.get(a)
        if a is None or isinstance(a, Value):
            return a
        if isinstance(a, torch.Tensor):
            return self.graph.add_constant(a)
        if isinstance(a, (bool, int, float)):
            return self.graph.add_constant(a)
        e = _expr(a)
        if e is not None:
            if e.is_number:
                return self.graph.add_constant(int(e) if e.is_integer else float(e))
            return self.sym_to_ir(e, prov)
        raise Unsupported(f"tensor argument of type {type(a).__name__}")

    def attr(self, a: Any, env: dict[torch.fx.Node, Any], op: str, arg: str, bound: dict[str, Any],
             prov: Provenance) -> Any:
        """A non-tensor argument as an attr; SymInts are resolved as the module doc says."""
        def concrete(x: Any) -> Any:
            if isinstance(x, torch.fx.Node):
                x = env.get(x)
            if isinstance(x, Value):
                raise Unsupported(f"{op}: data-dependent value in argument '{arg}'")
            if isinstance(x, (list, tuple)):
                return [concrete(y) for y in x]
            if isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool)):
                return concrete_sym(x)
            return x

        v = concrete(a)
        if not has_sym(v):
            return normalize_attr(v)
        src = bound.get("self")
        in_shape = None
        if isinstance(src, torch.fx.Node) and isinstance(src.meta.get("val"), torch.Tensor):
            in_shape = [_expr(d) for d in src.meta["val"].shape]
        return self.symbolic_attr(v, op, arg, in_shape, bound.get("dim", 0))

    # -- outputs and higher-order ops -----------------------------------------------------------
    def as_output(self, val: Any, prov: Provenance) -> Value | _ConstOut:
        """A graph output for one output leaf: tensors are values; a symbolic int becomes a
        0-d int64 tensor; any other Python value stays out of the graph (:class:`_ConstOut`)."""
        if isinstance(val, Value):
            return val
        if isinstance(val, torch.Tensor):
            return self.graph.add_constant(val, name="output_const")
        e = _expr(val) if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool)) else None
        if e is not None and not e.is_number:
            v = self.sym_to_ir(e, prov)
            v.meta["pytorch_scalar_output"] = True
            return v
        if e is not None:
            val = bool(e) if isinstance(val, torch.SymBool) else int(e) if e.is_integer else float(e)
        if val is None or isinstance(val, (bool, int, float, str)):
            return _ConstOut(val)
        self.report(f"an output of type {type(val).__name__}", None)
        return _ConstOut(None)

    def higher_order(self, node: torch.fx.Node, hop: Any, prov: Provenance,
                     env: dict[torch.fx.Node, Any]) -> Any:
        name = getattr(hop, "__name__", None) or getattr(hop, "_name", str(hop))

        def arg(a: Any) -> Any:
            return env[a] if isinstance(a, torch.fx.Node) else a

        def args(seq: Any) -> list[Any]:
            return [arg(a) for a in seq]

        if name == "cond":
            pred, true_gm, false_gm, operands = node.args[:4]
            p = arg(pred)
            if isinstance(p, (bool, torch.SymBool)) and _expr(p) is not None and _expr(p).is_number:
                p = bool(_expr(p))
            if isinstance(p, bool):
                return tuple(self.inline(arg(true_gm) if p else arg(false_gm), args(operands)))
            if not isinstance(p, Value):
                raise Unsupported("torch.cond on a symbolic (shape-dependent) predicate")
            return self.lower_cond(node, p, arg(true_gm), arg(false_gm), args(operands), prov)
        if name == "while_loop":
            cond_gm, body_gm, carried, additional = node.args[:4]
            return self.lower_while(node, arg(cond_gm), arg(body_gm), args(carried), args(additional), prov)
        if name == "scan":
            combine, init, xs, additional = node.args[:4]
            return self.lower_scan(node, arg(combine), args(init), list(xs), args(additional), env, prov)
        if name == "map_impl":
            body, xs, rest = node.args[:3]
            return self.lower_scan(node, arg(body), [], list(xs), args(rest), env, prov)
        if name == "wrap_with_set_grad_enabled":
            _enabled, sub, *rest = node.args
            return tuple(self.inline(arg(sub), args(rest)))
        raise Unsupported(f"higher_order::{name}")

    # -- control flow as regions (see torchmdf.ops.control_flow) --------------------------------
    def lower_region(self, region: Graph, gm: torch.fx.GraphModule, args: Sequence[Any],
                     prov: Provenance) -> list[Value]:
        """Lower ``gm`` into ``region`` with its placeholders bound to ``args`` (region inputs
        or values of the enclosing scope, which a region reads directly); returns its outputs.
        Values made inside (symbolic sizes included) stay inside."""
        saved = self.graph, self._sym_cache, self._shape_cache
        self.graph, self._sym_cache, self._shape_cache = region, dict(self._sym_cache), dict(self._shape_cache)
        try:
            outs = self.inline(gm, args)
            region.outputs = [self.tensor_input(o, {}, prov) for o in outs]
        finally:
            self.graph, self._sym_cache, self._shape_cache = saved
        return list(region.outputs)

    def region_inputs(self, region: Graph, gm: torch.fx.GraphModule, count: int) -> list[Value]:
        """Declared inputs of ``region`` for the first ``count`` placeholders of ``gm``."""
        phs = [n for n in gm.graph.nodes if n.op == "placeholder"][:count]
        return [region.add_input(ph.name, self.ttype(ph.meta.get("val"))) for ph in phs]

    def control_node(self, node: torch.fx.Node, op: str, inputs: list[Value | None], regions: list[Graph],
                     prov: Provenance) -> tuple[Value, ...]:
        vals = node.meta.get("val") or ()
        vals = tuple(vals) if isinstance(vals, (list, tuple)) else (vals,)
        n = self.graph.create_node(op, inputs, num_outputs=len(vals), provenance=prov, name=node.name,
                                   regions=regions)
        for o, mv in zip(n.outputs, vals):
            o.type = self.ttype(mv)
        return tuple(n.outputs)

    def lower_cond(self, node: torch.fx.Node, pred: Value, true_gm: Any, false_gm: Any, operands: list[Any],
                   prov: Provenance) -> tuple[Value, ...]:
        """``torch.cond``: an ``onnx::If`` whose branches read the operands directly."""
        then, other = self.graph.new_region("then_branch"), self.graph.new_region("else_branch")
        operands = [self.tensor_input(a, {}, prov) if isinstance(a, torch.Tensor) else a for a in operands]
        self.lower_region(then, true_gm, operands, prov)
        self.lower_region(other, false_gm, operands, prov)
        return self.control_node(node, "onnx::If", [pred], [then, other], prov)

    def lower_while(self, node: torch.fx.Node, cond_gm: Any, body_gm: Any, carried: list[Any],
                    additional: list[Any], prov: Provenance) -> tuple[Value, ...]:
        """``torch.while_loop``: a ``torchmdf::While``; the carried values are region inputs,
        the additional inputs values of the enclosing scope."""
        carried = [self.tensor_input(a, {}, prov) for a in carried]
        additional = [self.tensor_input(a, {}, prov) if isinstance(a, torch.Tensor) else a for a in additional]
        regions = []
        for region_name, gm in (("cond", cond_gm), ("body", body_gm)):
            region = self.graph.new_region(region_name)
            ins = self.region_inputs(region, gm, len(carried))
            self.lower_region(region, gm, ins + additional, prov)
            regions.append(region)
        return self.control_node(node, "torchmdf::While", carried, regions, prov)

    def lower_scan(self, node: torch.fx.Node, fn: Any, init: list[Any], xs_nodes: list[Any], additional: list[Any],
                   env: dict[torch.fx.Node, Any], prov: Provenance) -> tuple[Value, ...]:
        """``scan`` (``map`` without ``init``): an ``onnx::Loop`` over dim 0 of ``xs`` with
        ``init`` carried; the body takes slice ``i`` of each ``xs`` (``Gather``) and its
        other results are the scan outputs."""
        if not xs_nodes:
            raise Unsupported("scan/map without xs")
        init = [self.tensor_input(a, {}, prov) for a in init]
        xs = [self.tensor_input(a, env, prov) for a in xs_nodes]
        additional = [self.tensor_input(a, {}, prov) if isinstance(a, torch.Tensor) else a for a in additional]
        first = xs_nodes[0]
        trips = self.trip_count(first.meta.get("val") if isinstance(first, torch.fx.Node) else None, xs[0], prov)
        body = self.graph.new_region("body")
        i = body.add_input("iteration_num", TensorType(torch.int64, ()))
        keep = body.add_input("cond_in", TensorType(torch.bool, ()))
        phs = [n for n in fn.graph.nodes if n.op == "placeholder"]
        carried = [body.add_input(ph.name, self.ttype(ph.meta.get("val"))) for ph in phs[:len(init)]]
        saved = self.graph
        self.graph = body
        try:
            slices = []
            for x, ph in zip(xs, phs[len(init):len(init) + len(xs)]):
                n = body.create_node("onnx::Gather", [x, i], {"axis": 0}, provenance=prov, name=f"{ph.name}_i")
                n.output.type = self.ttype(ph.meta.get("val"))
                slices.append(n.output)
        finally:
            self.graph = saved
        outs = self.lower_region(body, fn, carried + slices + additional, prov)
        body.outputs = [keep] + outs
        return self.control_node(node, "onnx::Loop", [trips, None, *init], [body], prov)

    def trip_count(self, fake: Any, x: Value, prov: Provenance) -> Value:
        """Dim 0 of ``x`` (whose fake tensor is ``fake``) as a 0-d int64 value: a constant, else
        computed from the graph inputs' shapes."""
        if isinstance(fake, torch.Tensor) and fake.dim() > 0:
            return self.tensor_input(fake.shape[0], {}, prov)
        shape = self.graph.create_node("onnx::Shape", [x], provenance=prov).output
        shape.type = TensorType(torch.int64, None if x.type.shape is None else (len(x.type.shape),))
        n = self.graph.create_node("onnx::Gather", [shape, self.graph.add_constant(torch.tensor(0))],
                                   {"axis": 0}, provenance=prov)
        n.output.type = TensorType(torch.int64, ())
        return n.output

    def inline(self, gm: torch.fx.GraphModule, args: Sequence[Any]) -> list[Any]:
        sub_env: dict[torch.fx.Node, Any] = {}
        phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(phs) != len(args):
            raise Unsupported(f"subgraph takes {len(phs)} operands, got {len(args)}")
        for ph, a in zip(phs, args):
            sub_env[ph] = a
        return self.walk(gm, sub_env)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ConstOut:
    """A non-tensor output leaf (None, a number, a string): recorded in the graph's signature
    (``constant_outputs``), not a graph output."""

    value: Any


def _is_symbolic(a: Any, env: dict[torch.fx.Node, Any]) -> bool:
    if isinstance(a, torch.fx.Node):
        a = env.get(a)
    e = _expr(a) if isinstance(a, (torch.SymInt, torch.SymFloat)) else None
    return e is not None and not e.is_number


def _is_sym_function(target: Any) -> bool:
    mod = getattr(target, "__module__", "") or ""
    if mod in ("_operator", "operator", "math"):
        return True
    name = getattr(target, "__name__", "")
    return name.startswith("sym_") and (mod.startswith("torch") or mod == "")


def _sanitize_name(name: str) -> str:
    return re.sub(r"\W", "_", name) or "main"


# ---------------------------------------------------------------------------------------------
# export failures
# ---------------------------------------------------------------------------------------------


def _export_failure(model: Any, args: tuple, kwargs: dict, dynamic_shapes: Any, strict: bool,
                    err: Exception) -> TorchMDFError:
    """One error for a failed export: the construct torch stopped at, and (found by
    ``draft_export``, which goes on past data-dependent guards) every other problem."""
    msg = str(err)
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    loc = _error_location(msg)
    if "data-dependent" in msg or "GuardOnDataDependent" in type(err).__name__:
        problems = _draft_problems(model, args, kwargs, dynamic_shapes, strict)
        if not any(p[0].startswith("data-dependent") for p in problems):
            code = _error_code(msg)
            problems.insert(0, ("data-dependent control flow" + (f": `{code}`" if code else ""), loc))
        hint = ("Python control flow on tensor values cannot be exported: rewrite it with torch.cond "
                "or torch.while_loop (torchmdf keeps them as control flow), or convert with method='script' "
                "(TorchScript).  torch.export said: " + first[:300])
    elif "dynamic_shapes" in msg and ("mismatch" in msg.lower() or "invalid" in msg.lower()):
        return ConversionError(f"invalid dynamic_shapes for torch.export: {first}",
                               hint="dynamic_shapes must have the structure of the example inputs: "
                               "one entry per argument ({dim: Dim(...)} for a tensor, None if static)")
    elif "Constraints violated" in msg or "ConstraintViolation" in type(err).__name__:
        details = [ln.strip(" -") for ln in msg.splitlines() if ln.strip().startswith("- ")]
        problems = [(f"dynamic shape constraint violated: {details[0] if details else first}", loc)]
        hint = ("the model specializes a dimension marked dynamic (a Python loop over it, a check "
                "against a constant, or an example of size 0/1); make that dimension static in "
                "dynamic_shapes or give an example with a size >= 2")
    else:
        code = _error_code(msg)
        what = f"construct torch.export cannot trace ({type(err).__name__}: {first[:200]})"
        problems = [(what + (f": `{code}`" if code else ""), loc)]
        hint = ("rewrite the construct, try strict=True/False, or convert with method='script' or "
                "method='trace' (TorchScript)")
    return UnsupportedOpError(problems, hint=hint,
                              message=f"torch.export failed; {len(problems)} unsupported construct(s):")


def _error_location(msg: str) -> str | None:
    part = msg.split("The following call raised this error:", 1)
    text = part[1] if len(part) == 2 else msg
    frames = re.findall(r'File "([^"]+)", line (\d+)', text)
    user = [f for f in frames if not f[0].startswith(_TORCH_DIR)]
    if not (user or frames):
        return None
    path, line = (user or frames)[-1 if len(part) != 2 else 0]
    return f"{os.path.basename(path)}:{line}"


def _error_code(msg: str) -> str | None:
    part = msg.split("The following call raised this error:", 1)
    if len(part) != 2:
        return None
    m = re.search(r'File "[^"]+", line \d+, in \w+\n\s+(.+)', part[1])
    return m.group(1).strip() if m else None


def _draft_problems(model: Any, args: tuple, kwargs: dict, dynamic_shapes: Any,
                    strict: bool) -> list[tuple[str, str | None]]:
    """Problems ``draft_export`` finds: data-dependent guards (with the user's line) and ops
    the registry cannot resolve.  Best effort: returns [] when draft export fails too."""
    loggers = [logging.getLogger(n) for n in ("torch.export._draft_export", "torch.fx.experimental.symbolic_shapes",
                                              "torch._export", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        ep = torch.export.draft_export(model, args, kwargs or None, dynamic_shapes=dynamic_shapes,
                                       strict=strict)
    except Exception:  # noqa: BLE001
        return []
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
    problems: list[tuple[str, str | None]] = []
    report = getattr(ep, "_report", None)
    for f in getattr(report, "failures", []) or []:
        if "DATA_DEPENDENT" not in str(getattr(f, "failure_type", "")):
            continue
        data = f.data if isinstance(f.data, dict) else {}
        frames = data.get("user_stack") or []
        frame = frames[-1] if frames else {}
        code = frame.get("loc")
        where = None
        if frame:
            fname = frame.get("filename")
            if isinstance(fname, int):
                from torch._logging import structured

                fname = next((k for k, v in structured.INTERN_TABLE.items() if v == fname), None)
            where = f"{os.path.basename(fname) if fname else '?'}:{frame.get('line')}"
        entry = (f"data-dependent control flow: `{code}`" if code else
                 f"data-dependent expression {data.get('expr')}", where)
        if entry not in problems:
            problems.append(entry)
    try:
        lowering = _Lowering(ep.run_decompositions())
        lowering.run()
    except UnsupportedOpError as e:
        for entry in e.ops:
            if entry not in problems:
                problems.append(entry)
    except Exception:  # noqa: BLE001 - the draft graph is best effort
        pass
    return problems


__all__ = ["lower_module", "lower_exported_program", "op_name_of", "source_of", "type_of"]
