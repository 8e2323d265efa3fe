"""ONNX frontend: an ONNX file, ``onnx.ModelProto`` or ``onnx_ir.Model`` -> IR.

* Opsets 13 and newer are read; a model older than 18 (the registry's ONNX semantics), or one
  using an op whose registry entry needs a newer opset (GroupNormalization: 21), is first
  converted with ``onnx.version_converter``.
* Initializers become weights (floating ones trainable parameters, others constants);
  ``Constant`` nodes become constants; graph inputs keep their symbolic dims by name.
* ``If`` and ``Loop`` become nodes with regions (their subgraphs); a ``Scan`` becomes an
  ``onnx::Loop`` over its scan axis (axis 0, forward only).  Subgraphs read outer values
  directly, as the IR's regions do.
* Nodes of the domain the ONNX backend writes ``aten::`` fallbacks in (``pkg.torchmdf.aten``)
  become ``aten::`` nodes again, if a model file may name them (``registry.lookup_for_file``).

A model file is untrusted: it is read with the MDF reader's size cap, tensors stored as
*external data* are refused (no path named in a file is ever opened), tensor sizes are
checked against ``torchmdf.limits``, nesting of subgraphs is bounded, each ``Loop`` makes at
most ``LIMITS.max_loop_iterations`` iterations, and an unknown op, an
attribute torchmdf does not implement or a value read before it is made is a located
:class:`~torchmdf.errors.TorchMDFError` naming the node and its op type.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import torch
from onnx_ir.tensor_adapters import to_torch_dtype

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Provenance, TensorType, Value, ValueRole
from torchmdf.ir.meta_keys import MAX_ITERATIONS
from torchmdf.limits import LIMITS
from torchmdf.ops import registry
from torchmdf.ops.onnx_ops import ONNX_OPSET

MIN_OPSET = 13
"""The oldest ONNX opset read (older models: convert them with onnx.version_converter)."""


def load_onnx(source: Any) -> onnx.ModelProto:
    """The model of a file path, bytes, ``ModelProto`` or ``onnx_ir.Model``, without external
    data (refused: see :func:`refuse_external_data`)."""
    where = None
    if isinstance(source, ir.Model):
        source = ir.serde.serialize_model(source)
    if isinstance(source, (str, os.PathLike)):
        from torchmdf.mdf.io import read_limited

        where = os.fspath(source)
        source = read_limited(where)
    if isinstance(source, (bytes, bytearray)):
        try:
            source = onnx.load_model_from_string(bytes(source))
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise ConversionError(f"not an ONNX model ({type(e).__name__}: {e})"[:300], location=where) from e
    if not isinstance(source, onnx.ModelProto):
        raise ConversionError(f"cannot read an ONNX model from a {type(source).__name__}", location=where)
    refuse_external_data(source, where)
    return source


def _graphs(model: onnx.ModelProto):
    """Every GraphProto in the model (subgraphs of attributes, functions' nodes), no recursion."""
    stack = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while stack or nodes:
        if stack:
            g = stack.pop()
            yield g
            nodes.extend(g.node)
        else:
            n = nodes.pop()
            for a in n.attribute:
                if a.HasField("g"):
                    stack.append(a.g)
                stack.extend(a.graphs)


def refuse_external_data(model: onnx.ModelProto, where: str | None = None) -> None:
    """A located error if any tensor is stored outside the file: a path in an untrusted file
    must not make torchmdf read another file (save the model with its data inside instead:
    ``onnx.save(model, path, save_as_external_data=False)``)."""
    def tensors(g: onnx.GraphProto):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors

    for g in _graphs(model):
        for t in tensors(g):
            if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data:
                raise ConversionError(f"tensor '{t.name}' of graph '{g.name}' is stored as external data; "
                                      "torchmdf reads no file a model names", location=where,
                                      hint="save the model with its tensors inside the file "
                                      "(onnx.save(model, path, save_as_external_data=False))")


def _default_opset(model: onnx.ModelProto) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def _target_opset(model: onnx.ModelProto, where: str | None) -> int:
    """The opset to read the model at: its own, raised to 18 and to the ``min_opset`` of the
    ops it uses."""
    have = _default_opset(model)
    if have is None:
        raise ConversionError("the model imports no ONNX opset", location=where)
    newest = onnx.defs.onnx_opset_version()
    if have < MIN_OPSET or have > newest:
        raise ConversionError(f"ONNX opset {have}: torchmdf reads opsets {MIN_OPSET} to {newest}", location=where,
                              hint="convert the model with onnx.version_converter.convert_version")
    need = max(have, ONNX_OPSET)
    for g in _graphs(model):
        for n in g.node:
            if n.domain in ("", "ai.onnx"):
                d = registry.lookup(f"onnx::{n.op_type}")
                if d is not None and d.min_opset is not None:
                    need = max(need, d.min_opset)
    return need


def lower_onnx(source: Any, example_inputs: Any = None, **options: Any) -> Graph:
    """An ONNX file path, ``ModelProto`` or ``onnx_ir.Model`` -> IR (see the module's doc)."""
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    proto = load_onnx(source)
    target = _target_opset(proto, where)
    if target != _default_opset(proto):
        from onnx import version_converter

        try:
            proto = version_converter.convert_version(proto, target)
        except Exception as e:  # noqa: BLE001 - the converter raises plain RuntimeErrors
            raise ConversionError(f"converting opset {_default_opset(proto)} to {target} failed: {e}"[:400],
                                  location=where) from e
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as e:  # noqa: BLE001 - a malformed graph
        raise ConversionError(f"malformed ONNX model ({type(e).__name__}: {e})"[:400], location=where) from e
    return _Reader(where or "<onnx model>", target).read(model.graph)


def _torch_dtype(dt: ir.DataType | None, where: str) -> torch.dtype | None:
    if dt is None:
        return None
    try:
        return to_torch_dtype(dt)
    except (KeyError, TypeError, ValueError) as e:
        raise ConversionError(f"ONNX element type {dt} has no torch dtype", location=where) from e


def tensor_to_torch(t: ir.TensorProtocol, where: str) -> torch.Tensor:
    """An ONNX tensor as a torch tensor (its size checked against ``torchmdf.limits``)."""
    dims = [int(d) for d in t.shape]
    LIMITS.check_elements(int(np.prod(dims, dtype=np.float64)), f"tensor '{t.name}'", where)
    dtype = _torch_dtype(t.dtype, where)
    try:
        arr = t.numpy()
    except Exception as e:  # noqa: BLE001 - truncated or inconsistent data
        raise ConversionError(f"tensor '{t.name}' cannot be read ({type(e).__name__}: {e})"[:300],
                              location=where) from e
    if dtype == torch.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(arr, copy=True)).to(dtype)


def _value_type(v: ir.Value, where: str) -> TensorType:
    dtype = _torch_dtype(v.dtype, where)
    shape = None
    if v.shape is not None:
        shape = tuple(d if isinstance(d, int) else d.value for d in v.shape)
    return TensorType(dtype, shape)


_REGION_ATTRS = {"If": ("then_branch", "else_branch"), "Loop": ("body",)}


class _Reader:
    """Lowers one ONNX graph and, recursively (bounded by ``MAX_REGION_NESTING``), its subgraphs."""

    def __init__(self, where: str, opset: int):
        self.where = where
        self.opset = opset
        self.values: dict[ir.Value, Value] = {}
        self.depth = 0

    def loc(self, n: ir.Node | None = None, g: Graph | None = None) -> str:
        if n is None:
            return self.where
        return f"{self.where}: node '{n.name or '?'}' ({n.domain + '::' if n.domain else ''}{n.op_type})"

    def read(self, og: ir.Graph) -> Graph:
        g = Graph(og.name or "main")
        g.metadata["onnx_opset"] = self.opset
        self.weights(og, g)
        for v in og.inputs:
            if v.name not in og.initializers:  # old models list initializers as inputs too
                self.values[v] = g.add_input(v.name, _value_type(v, self.where))
        self.body(og, g)
        g.outputs = [self.get(v, None) for v in og.outputs]
        self.check_ops(g)
        return g

    def weights(self, og: ir.Graph, g: Graph) -> None:
        for name, v in og.initializers.items():
            t = tensor_to_torch(v.const_value, f"{self.where}: initializer '{name}'")
            role = ValueRole.PARAMETER if t.is_floating_point() else ValueRole.CONSTANT
            self.values[v] = g.add_parameter(name, t, role=role)

    def get(self, v: ir.Value | None, n: ir.Node | None) -> Value | None:
        if v is None:
            return None
        got = self.values.get(v)
        if got is None:
            raise ConversionError(f"reads '{v.name}', which nothing before it makes (the graph is not in "
                                  "topological order, or the value is undefined)",
                                  location=self.loc(n) if n is not None else f"{self.where}: graph output")
        return got

    def body(self, og: ir.Graph, g: Graph) -> None:
        for n in og:
            if n.domain in ("", "ai.onnx"):
                if n.op_type == "Constant":
                    self.constant(n, g)
                elif n.op_type == "Scan":
                    self.scan(n, g)
                else:
                    self.onnx_node(n, g)
            elif n.domain == _aten_domain():
                self.aten_node(n, g)
            else:
                raise UnsupportedOpError([(f"{n.domain}::{n.op_type}", self.loc(n))],
                                         message=f"an op of domain '{n.domain}' has no torchmdf form:",
                                         hint="torchmdf reads the ONNX domain and the aten fallbacks it writes")

    def provenance(self, n: ir.Node) -> Provenance:
        return Provenance(origin="onnx", file=self.where, mdf_path=f"node '{n.name or '?'}' ({n.op_type})")

    def bind_outputs(self, n: ir.Node, outs: list[Value]) -> None:
        if len(n.outputs) > len(outs):
            extra = [o.name for o in n.outputs[len(outs):] if o.name]
            if extra:
                raise ConversionError(f"torchmdf computes {len(outs)} output(s) of {n.op_type}, not "
                                      f"{', '.join(map(repr, extra))}", location=self.loc(n))
        for o, v in zip(n.outputs, outs):
            self.values[o] = v

    def constant(self, n: ir.Node, g: Graph) -> None:
        attrs = {k: self.attr_value(a, n) for k, a in n.attributes.items()}
        if "sparse_value" in attrs or len(attrs) != 1:
            raise ConversionError("a Constant has exactly one of value, value_float(s), value_int(s)",
                                  location=self.loc(n))
        t = registry.get("onnx::Constant").impl(**attrs)
        self.values[n.outputs[0]] = g.add_constant(t, n.outputs[0].name or "const")

    def attr_value(self, a: ir.Attr, n: ir.Node) -> Any:
        t = a.type
        if t == ir.AttributeType.TENSOR:
            return tensor_to_torch(a.value, self.loc(n))
        if t in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
            return list(a.value)
        if t in (ir.AttributeType.INT, ir.AttributeType.FLOAT, ir.AttributeType.STRING):
            return a.value
        raise ConversionError(f"attribute '{a.name}' of type {t.name} is not supported", location=self.loc(n))

    def onnx_node(self, n: ir.Node, g: Graph) -> None:
        name = f"onnx::{n.op_type}"
        d = registry.lookup(name)
        if d is None:
            raise UnsupportedOpError([(name, self.loc(n))], message="an ONNX op torchmdf does not implement:",
                                     hint="register it with torchmdf.ops.register(OpDef('onnx::...'))")
        inputs = [self.get(v, n) for v in n.inputs]
        while inputs and inputs[-1] is None:
            inputs.pop()
        known = {a.name for a in d.attr_schema}
        schema = d.onnx_schema()
        attrs, regions = {}, []
        for k, a in n.attributes.items():
            if a.type == ir.AttributeType.GRAPH and k in _REGION_ATTRS.get(n.op_type, ()):
                continue
            v = self.attr_value(a, n)
            if k in known:
                attrs[k] = v
            elif not _is_schema_default(schema, k, a):
                raise ConversionError(f"attribute {k}={v!r} of {n.op_type} is not supported by torchmdf",
                                      location=self.loc(n))
        num = len(n.outputs) if callable(d.num_outputs) or d.regions is not None else d.num_outputs  # Split, If, Loop
        node = g.create_node(name, inputs, attrs, num_outputs=num,
                             provenance=self.provenance(n), name=n.outputs[0].name if n.outputs else "")
        if n.op_type == "Loop":  # a loop whose condition never turns false would run forever
            node.meta[MAX_ITERATIONS] = LIMITS.max_loop_iterations
        for k in _REGION_ATTRS.get(n.op_type, ()):
            if k not in n.attributes:
                raise ConversionError(f"{n.op_type} has no '{k}' subgraph", location=self.loc(n))
            regions.append(self.region(n.attributes[k].value, g, n))
        for r in regions:
            node.add_region(r)
        self.bind_outputs(n, node.outputs)

    def region(self, og: ir.Graph, outer: Graph, n: ir.Node) -> Graph:
        from torchmdf.backends.mdf import MAX_REGION_NESTING

        if self.depth >= MAX_REGION_NESTING:
            raise ConversionError(f"subgraphs are nested more than {MAX_REGION_NESTING} levels deep",
                                  location=self.loc(n))
        self.depth += 1
        try:
            r = outer.new_region(og.name or "region")
            self.weights(og, r)
            for v in og.inputs:
                self.values[v] = r.add_input(v.name or "arg", _value_type(v, self.loc(n)))
            self.body(og, r)
            r.outputs = [self.get(v, n) for v in og.outputs]
            return r
        finally:
            self.depth -= 1

    def aten_node(self, n: ir.Node, g: Graph) -> None:
        name = f"aten::{n.op_type}"
        d = registry.lookup_for_file(name, self.loc(n))
        from torchmdf.mdf.attributes import decode_attr

        attrs = {}
        for k, a in n.attributes.items():
            if k in registry.FILE_FORBIDDEN_ATTRS:
                continue  # never from a file: the module's device and defaults decide
            if a.type == ir.AttributeType.TENSOR:
                attrs[k] = tensor_to_torch(a.value, self.loc(n))
            elif a.type == ir.AttributeType.STRING:
                try:
                    attrs[k] = _decode_json(json.loads(a.value), decode_attr, self.loc(n))
                except (ValueError, RecursionError) as e:
                    raise ConversionError(f"attribute '{k}' is not the JSON torchmdf writes", location=self.loc(n)) \
                        from e
            else:
                raise ConversionError(f"attribute '{k}' of an aten op must be a JSON string or a tensor",
                                      location=self.loc(n))
        inputs = [self.get(v, n) for v in n.inputs]
        node = g.create_node(name, inputs, attrs, num_outputs=max(d.outputs_for(attrs, len(inputs)), 1),
                             provenance=self.provenance(n), name=n.outputs[0].name if n.outputs else "")
        self.bind_outputs(n, node.outputs)

    def scan(self, n: ir.Node, g: Graph) -> None:
        """``Scan(state..., xs...)`` as ``Loop(len, true, state...)`` whose body gathers row
        ``i`` of each scanned input and yields the scan outputs to be stacked."""
        attrs = {k: self.attr_value(a, n) for k, a in n.attributes.items() if k != "body"}
        m = attrs.get("num_scan_inputs")
        body = n.attributes.get("body")
        if m is None or body is None:
            raise ConversionError("a Scan needs num_scan_inputs and a body", location=self.loc(n))
        for k in ("scan_input_axes", "scan_input_directions", "scan_output_axes", "scan_output_directions"):
            if any(attrs.get(k, [])):
                raise ConversionError(f"Scan with {k}={attrs[k]} is not supported (axis 0, forward only)",
                                      location=self.loc(n))
        inputs = [self.get(v, n) for v in n.inputs]
        n_state = len(inputs) - m
        if n_state < 0 or not m:
            raise ConversionError(f"a Scan with {len(inputs)} inputs cannot scan {m} of them", location=self.loc(n))
        state, xs = inputs[:n_state], inputs[n_state:]
        shape = g.create_node("onnx::Shape", [xs[0]], {"start": 0, "end": 1}).output
        trips = g.create_node("onnx::Squeeze", [shape, g.add_constant(torch.tensor([0]))]).output
        true = g.add_constant(torch.tensor(True), "true")
        og = body.value
        n_out = len(og.outputs) - n_state
        loop = g.create_node("onnx::Loop", [trips, true, *state], num_outputs=n_state + n_out,
                             provenance=self.provenance(n), name=n.outputs[0].name if n.outputs else "scan")
        r = g.new_region(og.name or "scan_body")
        self.depth += 1
        try:
            it = r.add_input("i", TensorType(torch.int64, ()))
            r.add_input("cond", TensorType(torch.bool, ()))
            for v in og.inputs[:n_state]:
                self.values[v] = r.add_input(v.name or "state", _value_type(v, self.loc(n)))
            for v, x in zip(og.inputs[n_state:], xs):
                self.values[v] = r.create_node("onnx::Gather", [x, it], {"axis": 0}, name=v.name or "x").output
            self.weights(og, r)
            self.body(og, r)
            r.outputs = [true, *(self.get(v, n) for v in og.outputs)]
        finally:
            self.depth -= 1
        loop.add_region(r)
        self.bind_outputs(n, loop.outputs)

    def check_ops(self, g: Graph) -> None:
        """Every op is in its opset range at the opset read (a located error)."""
        for node in g.walk():
            d = registry.lookup(node.op)
            if d is None or node.domain != "onnx":
                continue
            if (d.min_opset and self.opset < d.min_opset) or (d.max_opset and self.opset > d.max_opset):
                raise ConversionError(f"{node.op} is not in ONNX opset {self.opset} as torchmdf implements it",
                                      location=node.location())


def _aten_domain() -> str:
    from torchmdf.backends.onnx import ATEN_DOMAIN

    return ATEN_DOMAIN


def _is_schema_default(schema: Any, name: str, a: ir.Attr) -> bool:
    """Whether attribute ``name`` has the value the ONNX schema gives it by default (then an
    impl that does not take it computes the same)."""
    if schema is None or name not in schema.attributes:
        return False
    default = schema.attributes[name].default_value
    if default is None or not default.name:
        return False
    try:
        return _plain(onnx.helper.get_attribute_value(default)) == _plain(a.value)
    except Exception:  # noqa: BLE001 - an attribute type that has no plain value
        return False


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _decode_json(v: Any, decode: Any, where: str) -> Any:
    if isinstance(v, list):
        return [_decode_json(x, decode, where) for x in v]
    return decode(v, where)


def is_onnx_model(obj: Any) -> bool:
    """An ``onnx.ModelProto`` or ``onnx_ir.Model`` (checked without importing onnx for others)."""
    mod = type(obj).__module__ or ""
    return mod.startswith("onnx") and isinstance(obj, (onnx.ModelProto, ir.Model))


__all__ = ["lower_onnx", "load_onnx", "refuse_external_data", "tensor_to_torch", "is_onnx_model", "MIN_OPSET"]
