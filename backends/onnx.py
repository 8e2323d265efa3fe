"""ONNX backend: IR -> ``onnx.ModelProto``, built with onnx-ir (``ir.Model``/``Graph``/``Node``,
serialized by ``ir.serde``), the IR library torch.onnx and onnxscript use.

* ``onnx::`` nodes map one to one; attributes take the type the op's ONNX schema gives them
  (a number given to a tensor attribute becomes a one-element tensor, as ``ConstantOfShape``
  wants).  Parameters and constants become initializers.
* The opset is 18, or the highest ``min_opset`` of the ops used (Gelu: 20, GroupNormalization:
  21); an op outside its range at the chosen opset is a located error.
* ``aten::`` ops with no ONNX form are written as nodes of the custom domain
  :data:`ATEN_DOMAIN` (op type: the overload, ``"slice_scatter"``); each attribute is a string
  holding its JSON (dtypes as ``{"dtype": "float32"}``, as MDF files write them), and the
  model's ``metadata_props`` declare the torch schema of every such op, so the file is
  complete: ``onnx.checker`` (full check) accepts it and the ONNX frontend reads it back.
  onnxruntime refuses these nodes (it has no kernel for the domain).
* Control flow is written with subgraphs: ``onnx::If`` branches and ``onnx::Loop`` bodies as
  they are, ``torchmdf::While`` as a ``Loop`` (see :class:`_Writer`).
"""

from __future__ import annotations

import json
from typing import Any, Callable

import onnx
import onnx_ir as ir
import torch
from onnx_ir.tensor_adapters import TorchTensor

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Node, TensorType, Value
from torchmdf.ops import registry
from torchmdf.ops.onnx_ops import ONNX_OPSET, torch_to_onnx_dtype

ATEN_DOMAIN = "pkg.torchmdf.aten"
"""The ONNX domain of ``aten::`` fallback nodes (read back by the ONNX frontend)."""
ATEN_SCHEMA_PREFIX = ATEN_DOMAIN + ":"
"""``metadata_props`` key prefix of the declared torch schema of each fallback op."""


def _tensor(name: str, t: torch.Tensor) -> ir.Tensor:
    return TorchTensor(t.detach().cpu().contiguous(), name=name)


def _type_shape(ov: ir.Value, v: Value) -> ir.Value:
    """Give ``ov`` the IR value's dtype and shape where known (symbolic dims by name)."""
    if v.type.dtype is not None:
        ov.type = ir.TensorType(ir.DataType(torch_to_onnx_dtype(v.type.dtype)))
        if v.type.shape is not None:
            ov.shape = ir.Shape([d if isinstance(d, (int, str)) else None for d in v.type.shape])
    return ov


_T = onnx.defs.OpSchema.AttrType


def _onnx_attr(name: str, v: Any, schema_type: Any) -> ir.Attr:
    """An attribute of an ``onnx::`` node as the ONNX schema types it (``schema_type``, or
    inferred from the value where the schema does not know the attribute)."""
    if isinstance(v, tuple):
        v = list(v)
    if schema_type == _T.TENSOR and not isinstance(v, torch.Tensor):
        v = torch.tensor(v if isinstance(v, list) else [v])
    if isinstance(v, torch.Tensor):
        if schema_type == _T.TENSOR and v.dim() == 0:
            v = v.reshape(1)  # ConstantOfShape's value: a one-element 1-D tensor
        return ir.AttrTensor(name, _tensor(name, v))
    if isinstance(v, bool) or schema_type == _T.INT:
        return ir.AttrInt64(name, int(v))
    if schema_type == _T.FLOAT:
        return ir.AttrFloat32(name, float(v))
    if schema_type == _T.INTS:
        return ir.AttrInt64s(name, [int(x) for x in v])
    if schema_type == _T.FLOATS:
        return ir.AttrFloat32s(name, [float(x) for x in v])
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) \
            and any(isinstance(x, float) for x in v):
        return ir.AttrFloat32s(name, [float(x) for x in v])
    try:
        return ir.convenience.convert_attribute(name, v)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"attribute '{name}' = {v!r} has no ONNX form ({e})") from e


def encode_aten_attr(v: Any) -> str:
    """An ``aten::`` attribute as the JSON text a :data:`ATEN_DOMAIN` node holds."""
    from .mdf import _encode_attr

    return json.dumps(_encode_attr(v), allow_nan=True)


def _opset_for(graph: Graph, opset: int | None) -> int:
    """The opset to declare: ``opset``, else 18 or the highest ``min_opset`` of the graph's
    ops (their registry entries say which opsets have them); one outside an op's range is a
    located error."""
    defs = {}
    for n in graph.walk():
        d = registry.lookup(n.op)
        if d is not None and n.domain == "onnx" and n.op not in defs:
            defs[n.op] = (d, n)
    if opset is None:
        opset = max([ONNX_OPSET] + [d.min_opset or 0 for d, _ in defs.values()])
    for d, n in defs.values():
        if (d.min_opset is not None and opset < d.min_opset) or (d.max_opset is not None and opset > d.max_opset):
            raise ConversionError(f"{d.name} is not in ONNX opset {opset} (it is in opsets {d.min_opset or 1} to "
                                  f"{d.max_opset or 'now'})", location=n.location())
    return opset


def emit_onnx(graph: Graph, *, opset: int | None = None, check: bool = True) -> onnx.ModelProto:
    """``opset``: the ONNX opset to declare (default: 18, or higher when an op needs it).
    ``aten::`` ops left after canonicalization are written in :data:`ATEN_DOMAIN`."""
    bad = [(n.op, n.location()) for n in graph.walk() if n.domain not in ("onnx", "aten") and n.op not in _LOWERED]
    if bad:
        raise UnsupportedOpError(bad, message=f"{len(bad)} op(s) have no ONNX form:",
                                 hint="run the 'canonicalize' pass first; ops left as mdf:: or custom ops "
                                 "cannot be written as ONNX")
    if graph.state:
        raise ConversionError(f"graph '{graph.name}' has state; ONNX export covers stateless graphs")
    if not graph.outputs:
        raise ConversionError(f"graph '{graph.name}' has no outputs; an ONNX model needs at least one "
                              "(onnxruntime refuses an empty one)",
                              hint="give the MDF graph output ports, or select the values to return")
    if any(v is not None and (v.type.dtype is None or v.type.shape is None)
           for g in graph.graphs() for v in g.outputs):
        from torchmdf.passes import get_pass

        graph = graph.clone()
        get_pass("infer_shapes")(graph)  # ONNX wants typed graph outputs
    opset = _opset_for(graph, opset)
    w = _Writer()
    main = w.graph(graph)
    imports = {"": opset}
    if w.aten_schemas:
        imports[ATEN_DOMAIN] = 1
    main.opset_imports.update(imports)
    ir_version = onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid(d, v) for d, v in imports.items()], ignore_unknown=True)
    model = ir.Model(main, ir_version=max(ir_version, 8), producer_name="torchmdf")
    for op, schema in sorted(w.aten_schemas.items()):
        model.metadata_props[ATEN_SCHEMA_PREFIX + op] = schema
    proto = ir.serde.serialize_model(model)
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ConversionError(f"the ONNX model does not pass onnx.checker: {e}") from e
    return proto


_LOWERED = frozenset({"torchmdf::While"})  # written as an ONNX Loop


class _Writer:
    """Writes nodes, and the regions of control-flow nodes as subgraphs (``If`` branches,
    ``Loop`` bodies; a ``torchmdf::While`` as a ``Loop`` whose condition region is written
    once before the loop and once at the end of its body).  Subgraphs read values of the
    enclosing scopes directly, as ONNX allows.  Regions are written recursively; protobuf's
    nesting limit (hit by onnx.checker and onnxruntime at about 30 nested subgraphs) bounds
    the useful depth long before Python's recursion limit."""

    def __init__(self) -> None:
        self.values: dict[Value, ir.Value] = {}
        self.used: set[str] = set()
        self.count = 0
        self.aten_schemas: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        name = base
        while name in self.used:
            self.count += 1
            name = f"{base}__{self.count}"
        self.used.add(name)
        return name

    def value(self, v: Value | None) -> ir.Value | None:
        if v is None:
            return None
        ov = self.values.get(v)
        if ov is None:
            ov = self.values[v] = ir.Value(name=self.fresh(v.name))
        return ov

    def bind(self, v: Value, name: str | None = None, typed: bool = False) -> ir.Value:
        """A new ONNX value for ``v`` (a graph input, a node output)."""
        ov = ir.Value(name=name or self.fresh(v.name))
        self.values[v] = ov
        return _type_shape(ov, v) if typed else ov

    def initializers(self, g: Graph) -> list[ir.Value]:
        out = []
        for v in g.parameters.values():
            if g.is_live(v):
                ov = self.bind(v)
                ov.const_value = _tensor(ov.name, v.tensor)
                out.append(_type_shape(ov, v))
        return out

    def attrs(self, n: Node) -> list[ir.Attr]:
        items = [(k, a) for k, a in n.attrs.items() if not k.startswith("_")]
        if n.domain == "aten":
            out = []
            for k, a in items:
                if isinstance(a, torch.Tensor):
                    out.append(ir.AttrTensor(k, _tensor(k, a)))
                else:
                    try:
                        out.append(ir.AttrString(k, encode_aten_attr(a)))
                    except (ConversionError, TypeError, ValueError) as e:
                        raise ConversionError(f"attribute '{k}' = {a!r} cannot be written", location=n.location()) \
                            from e
            return out
        d = registry.lookup(n.op)
        schema = d.onnx_schema() if d is not None else None
        types = {k: s.type for k, s in schema.attributes.items()} if schema is not None else {}
        try:
            return [_onnx_attr(k, a, types.get(k)) for k, a in items if a is not None]
        except ConversionError as e:
            raise ConversionError(e.message, location=n.location()) from e

    def node(self, n: Node, inputs: list[ir.Value | None], op_type: str | None = None,
             extra: list[ir.Attr] = (), outputs: list[ir.Value] | None = None) -> ir.Node:
        domain = ""
        if n.domain == "aten":
            domain, op_type = ATEN_DOMAIN, n.name
            d = registry.lookup(n.op)
            self.aten_schemas.setdefault(n.name, d.doc if d is not None else n.op)
        if outputs is None:
            outputs = [self.bind(o) for o in n.outputs]
        return ir.Node(domain, op_type or n.name, inputs, [*self.attrs(n), *extra], outputs=outputs,
                       name=self.fresh(f"{n.name}_{self.count}"), doc_string=str(n.provenance) or None)

    def nodes(self, graph: Graph) -> list[ir.Node]:
        out: list[ir.Node] = []
        for n in graph:
            if n.op == "torchmdf::While":
                out += self.while_loop(n)
                continue
            ins = [self.value(v) for v in n.inputs]
            if n.domain == "onnx":
                ins = self.same_types(n, ins, out)
            if n.op == "onnx::If":
                then, other = n.regions
                extra = [ir.AttrGraph("then_branch", self.graph(then)), ir.AttrGraph("else_branch", self.graph(other))]
                out.append(self.node(n, ins, extra=extra))
            elif n.op == "onnx::Loop":
                out.append(self.node(n, ins, extra=[ir.AttrGraph("body", self.graph(n.regions[0]))]))
            elif n.regions:
                raise UnsupportedOpError([(n.op, n.location())], message="a control-flow op with no ONNX form:")
            else:
                out.append(self.node(n, ins))
        return out

    def same_types(self, n: Node, ins: list[ir.Value | None], out: list[ir.Node]) -> list[ir.Value | None]:
        """``ins`` with a ``Cast`` (appended to ``out``) where inputs that the ONNX schema
        gives one type constraint have different dtypes (an MDF file's float64 literal as
        the ``constant_value`` of a float32 ``Pad``): the registry's torch impls promote,
        ONNX refuses.  The group is cast to the dtype the IR computed for an output of the
        same constraint (so the written types agree with the IR's promotion); failing that,
        the first non-constant input of the group sets the type."""
        d = registry.lookup(n.op)
        schema = d.onnx_schema() if d is not None else None
        if schema is None or not schema.inputs:
            return ins
        groups: dict[str, list[int]] = {}
        for i, v in enumerate(n.inputs):
            if v is not None and v.type.dtype is not None:
                formal = schema.inputs[min(i, len(schema.inputs) - 1)]
                if formal.is_homogeneous:  # a Loop's carried values each have their own type
                    groups.setdefault(formal.type_str, []).append(i)
        ins = list(ins)
        for type_str, idx in groups.items():
            dtypes = {n.inputs[i].type.dtype for i in idx}
            if len(dtypes) < 2:
                continue
            to = self.promoted_dtype(n, schema, type_str)
            if to is None:
                ref = next((i for i in idx if not n.inputs[i].is_constant), idx[0])
                to = n.inputs[ref].type.dtype
            for i in idx:
                if n.inputs[i].type.dtype != to:
                    cast = ir.Value(name=self.fresh(f"{ins[i].name}_cast"))
                    out.append(ir.Node("", "Cast", [ins[i]], [ir.AttrInt64("to", torch_to_onnx_dtype(to))],
                                       outputs=[cast], name=self.fresh("Cast")))
                    ins[i] = cast
        return ins

    @staticmethod
    def promoted_dtype(n: Node, schema, type_str: str) -> torch.dtype | None:
        """The IR's dtype of ``n``'s first output that the schema gives ``type_str``."""
        for j, formal in enumerate(schema.outputs):
            if formal.type_str == type_str and j < len(n.outputs) and n.outputs[j] is not None:
                return n.outputs[j].type.dtype
        return None

    def graph(self, region: Graph, inputs: list[ir.Value] | None = None,
              write: Callable[[], tuple[list[ir.Node], list[tuple[Value, ir.Value]]]] | None = None) -> ir.Graph:
        """``region`` (or the top-level graph) as an ``ir.Graph``; ``inputs`` replace its own,
        ``write()`` (nodes, (IR value, output) pairs) its nodes and outputs.  An output not
        computed by a node here (an input, an outer value, a weight, one returned twice) goes
        through an ``Identity``."""
        inits = self.initializers(region)
        if inputs is None:
            inputs = [self.bind(v, typed=True) for v in region.inputs]
        if write is None:
            nodes, outputs = self.nodes(region), [(v, self.value(v)) for v in region.outputs]
        else:
            nodes, outputs = write()
        made = {id(o) for nd in nodes for o in nd.outputs}
        outs, seen = [], set()
        for v, ov in outputs:
            if id(ov) not in made or id(ov) in seen:
                new = ir.Value(name=self.fresh(f"{ov.name}_out"))
                nodes.append(ir.Node("", "Identity", [ov], outputs=[new], name=self.fresh("Identity")))
                ov = new
            seen.add(id(ov))
            outs.append(_type_shape(ov, v))
        return ir.Graph(inputs, outs, nodes=nodes, initializers=inits, name=self.fresh(region.name))

    def copy_of(self, region: Graph, args: list[ir.Value]) -> tuple[list[ir.Node], list[ir.Value]]:
        """The nodes of ``region`` once more, under fresh names, its inputs bound to ``args``
        (its weights as ``Constant`` nodes); returns them and its outputs."""
        saved = dict(self.values)
        for v, a in zip(region.inputs, args):
            self.values[v] = a
        consts = []
        for v in region.parameters.values():
            if region.is_live(v):
                ov = self.bind(v)
                consts.append(ir.Node("", "Constant", [], [ir.AttrTensor("value", _tensor("value", v.tensor))],
                                      outputs=[ov], name=self.fresh("Constant")))
        nodes = consts + self.nodes(region)
        outs = [self.value(v) for v in region.outputs]
        self.values = saved
        return nodes, outs

    def while_loop(self, n: Node) -> list[ir.Node]:
        """``torchmdf::While(v...)`` as ``Loop("", cond(v), v...)`` whose body ends with cond(v')."""
        cond, body = n.regions
        init = [self.value(v) for v in n.inputs]
        before, (keep0,) = self.copy_of(cond, init)
        base = n.outputs[0].name
        it = _type_shape(ir.Value(name=self.fresh(f"{base}_i")), Value("i", TensorType(torch.int64, ())))
        cond_in = _type_shape(ir.Value(name=self.fresh(f"{base}_cond")), Value("c", TensorType(torch.bool, ())))
        ins = [it, cond_in] + [self.bind(v, typed=True) for v in body.inputs]

        def write() -> tuple[list[ir.Node], list[tuple[Value, ir.Value]]]:
            nodes = self.nodes(body)
            outs = [self.value(v) for v in body.outputs]
            tail, (keep,) = self.copy_of(cond, outs)
            return nodes + tail, [(Value("keep", TensorType(torch.bool, ())), keep), *zip(body.outputs, outs)]

        loop = ir.Node("", "Loop", [None, keep0, *init], [ir.AttrGraph("body", self.graph(body, ins, write))],
                       outputs=[self.bind(o) for o in n.outputs], name=self.fresh("Loop"),
                       doc_string=str(n.provenance) or None)
        return before + [loop]


__all__ = ["emit_onnx", "ATEN_DOMAIN", "encode_aten_attr"]
