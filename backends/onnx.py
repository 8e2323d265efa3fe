"""ONNX backend: IR -> ``onnx.ModelProto`` (opset 18, or the newest ``min_opset`` of the ops'
registry entries).

``onnx::`` nodes map one to one (attributes as ONNX attributes), parameters and constants
become initializers.  ``mdf::`` standard functions and ``aten::`` ops have no ONNX form:
run ``canonicalize`` first; whatever is left is reported, all at once, as unsupported.
Control flow is written with subgraphs: ``onnx::If`` branches and ``onnx::Loop`` bodies as
they are, ``torchmdf::While`` as a ``Loop`` (see :class:`_Writer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Node, TensorType, Value
from torchmdf.ops import registry
from torchmdf.ops.onnx_ops import ONNX_OPSET, torch_to_onnx_dtype


def _tensor_proto(name: str, t: torch.Tensor) -> onnx.TensorProto:
    arr = t.detach().cpu()
    if arr.dtype == torch.bfloat16:
        arr = arr.float()
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    return numpy_helper.from_array(np.asarray(arr.contiguous().numpy()), name)


def _value_info(v: Value, name: str) -> onnx.ValueInfoProto:
    if v.type.dtype is None:  # unknown type: ONNX allows a bare name (run infer_shapes for more)
        return onnx.ValueInfoProto(name=name)
    dtype = torch_to_onnx_dtype(v.type.dtype)
    shape = None if v.type.shape is None else [d if isinstance(d, (int, str)) else None for d in v.type.shape]
    return helper.make_tensor_value_info(name, dtype, shape)


def _attr(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return _tensor_proto("value", v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _opset_for(graph: Graph, opset: int | None) -> int:
    """The opset to declare: ``opset``, else 18 or the highest ``min_opset`` of the graph's
    ops (their registry entries say which opsets have them); one outside an op's range is a
    located error."""
    defs = {}
    for n in graph.walk():
        d = registry.lookup(n.op)
        if d is not None and n.op not in defs:
            defs[n.op] = (d, n)
    if opset is None:
        opset = max([ONNX_OPSET] + [d.min_opset or 0 for d, _ in defs.values()])
    for d, n in defs.values():
        if (d.min_opset is not None and opset < d.min_opset) or (d.max_opset is not None and opset > d.max_opset):
            raise ConversionError(f"{d.name} is not in ONNX opset {opset} (it is in opsets {d.min_opset or 1} to "
                                  f"{d.max_opset or 'now'})", location=n.location())
    return opset


def emit_onnx(graph: Graph, *, opset: int | None = None, check: bool = True) -> onnx.ModelProto:
    """``opset``: the ONNX opset to declare (default: 18, or higher when an op needs it)."""
    bad = [(n.op, n.location()) for n in graph.walk() if n.domain != "onnx" and n.op not in _LOWERED]
    if bad:
        raise UnsupportedOpError(bad, message=f"{len(bad)} op(s) have no ONNX form:",
                                 hint="run the 'canonicalize' pass first; ops left as aten:: or mdf:: "
                                 "cannot be written as ONNX")
    if graph.state:
        raise ConversionError(f"graph '{graph.name}' has state; ONNX export covers stateless graphs")
    if any(v is not None and (v.type.dtype is None or v.type.shape is None)
           for g in graph.graphs() for v in g.outputs):
        from torchmdf.passes import get_pass

        graph = graph.clone()
        get_pass("infer_shapes")(graph)  # ONNX wants typed graph outputs
    opset = _opset_for(graph, opset)
    w = _Writer()
    inits = [_tensor_proto(w.name(v), v.tensor) for v in graph.parameters.values() if graph.is_live(v)]
    inputs = [_value_info(v, w.name(v)) for v in graph.inputs]
    nodes = w.nodes(graph)
    outputs = [_value_info(v, w.name(v)) for v in graph.outputs]
    g = helper.make_graph(nodes, graph.name, inputs, outputs, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="torchmdf")
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            raise ConversionError(f"the ONNX model does not pass onnx.checker: {e}") from e
    return model


_LOWERED = frozenset({"torchmdf::While"})  # written as an ONNX Loop


class _Writer:
    """Writes nodes, and the regions of control-flow nodes as subgraphs (``If`` branches,
    ``Loop`` bodies; a ``torchmdf::While`` as a ``Loop`` whose condition region is written
    once before the loop and once at the end of its body).  Subgraphs read values of the
    enclosing scopes by name, as ONNX allows.  Regions are written recursively; protobuf's
    nesting limit (hit by onnx.checker and onnxruntime at about 30 nested subgraphs) bounds
    the useful depth long before Python's recursion limit."""

    def __init__(self) -> None:
        self.rename: dict[Value, str] = {}
        self.used: set[str] = set()
        self.count = 0

    def name(self, v: Value | None) -> str:
        if v is None:
            return ""
        n = self.rename.get(v)
        if n is None:
            n = self.rename[v] = v.name
            self.used.add(n)
        return n

    def fresh(self, base: str) -> str:
        name = base
        while name in self.used:
            self.count += 1
            name = f"{base}__{self.count}"
        self.used.add(name)
        return name

    def node(self, n: Node, inputs: list[str], outputs: list[str], **extra: Any) -> onnx.NodeProto:
        attrs = {k: _attr(a) for k, a in n.attrs.items() if a is not None and not k.startswith("_")}
        attrs.update(extra)
        return helper.make_node(n.name, inputs, outputs, name=self.fresh(f"{n.name}_{self.count}"),
                                doc_string=str(n.provenance) or None, **attrs)

    def nodes(self, graph: Graph) -> list[onnx.NodeProto]:
        out: list[onnx.NodeProto] = []
        for n in graph:
            if n.op == "torchmdf::While":
                out += self.while_loop(n)
                continue
            ins, outs = [self.name(v) for v in n.inputs], [self.name(o) for o in n.outputs]
            if n.op == "onnx::If":
                then, other = n.regions
                out.append(self.node(n, ins, outs, then_branch=self.subgraph(then), else_branch=self.subgraph(other)))
            elif n.op == "onnx::Loop":
                out.append(self.node(n, ins, outs, body=self.subgraph(n.regions[0])))
            elif n.regions:
                raise UnsupportedOpError([(n.op, n.location())], message="a control-flow op with no ONNX form:")
            else:
                out.append(self.node(n, ins, outs))
        return out

    def subgraph(self, region: Graph, inputs: list[onnx.ValueInfoProto] | None = None,
                 tail: list[onnx.NodeProto] | None = None, outputs: list[tuple[Value, str]] | None = None
                 ) -> onnx.GraphProto:
        """``region`` as a GraphProto; ``inputs``/``outputs`` replace its own, ``tail`` nodes
        go after its nodes.  An output not computed inside (an input, an outer value, one
        returned twice) goes through an ``Identity``."""
        inits = [_tensor_proto(self.name(v), v.tensor) for v in region.parameters.values() if region.is_live(v)]
        if inputs is None:
            inputs = [_value_info(v, self.name(v)) for v in region.inputs]
        nodes = self.nodes(region) + list(tail or [])
        made = {o for nd in nodes for o in nd.output}
        if outputs is None:
            outputs = [(v, self.name(v)) for v in region.outputs]
        infos, seen = [], set()
        for v, name in outputs:
            if name not in made or name in seen:
                new = self.fresh(f"{name}_out")
                nodes.append(helper.make_node("Identity", [name], [new], name=self.fresh("Identity")))
                name = new
            seen.add(name)
            infos.append(_value_info(v, name))
        return helper.make_graph(nodes, self.fresh(region.name), inputs, infos, initializer=inits)

    def copy_of(self, region: Graph, args: list[str]) -> tuple[list[onnx.NodeProto], list[str]]:
        """The nodes of ``region`` once more, under fresh names, its inputs bound to ``args``;
        returns them and the names of its outputs."""
        saved = dict(self.rename)
        for g in region.graphs():
            for v in [*g.inputs, *g.parameters.values(), *(o for n in g for o in n.outputs)]:
                self.rename[v] = self.fresh(v.name)
        for v, a in zip(region.inputs, args):
            self.rename[v] = a
        inits = [numpy_helper.from_array(np.asarray(v.tensor.detach().cpu().numpy()), self.name(v))
                 for v in region.parameters.values() if region.is_live(v)]
        consts = [helper.make_node("Constant", [], [t.name], name=self.fresh("Constant"), value=t) for t in inits]
        nodes = consts + self.nodes(region)
        outs = [self.name(v) for v in region.outputs]
        self.rename = {**saved, **{k: v for k, v in self.rename.items() if k not in saved and k.graph is not region}}
        return nodes, outs

    def while_loop(self, n: Node) -> list[onnx.NodeProto]:
        """``torchmdf::While(v...)`` as ``Loop("", cond(v), v...)`` whose body ends with cond(v')."""
        cond, body = n.regions
        init = [self.name(v) for v in n.inputs]
        before, (keep0,) = self.copy_of(cond, init)
        body_outs = [self.name(v) for v in body.outputs]
        tail, (keep,) = self.copy_of(cond, body_outs)
        it, cond_in = self.fresh(f"{n.outputs[0].name}_i"), self.fresh(f"{n.outputs[0].name}_cond")
        ins = [helper.make_tensor_value_info(it, onnx.TensorProto.INT64, []),
               helper.make_tensor_value_info(cond_in, onnx.TensorProto.BOOL, [])]
        ins += [_value_info(v, self.name(v)) for v in body.inputs]
        bool_scalar = Value(keep, TensorType(torch.bool, ()))
        graph = self.subgraph(body, ins, tail, [(bool_scalar, keep)] + [(v, self.name(v)) for v in body.outputs])
        loop = helper.make_node("Loop", ["", keep0, *init], [self.name(o) for o in n.outputs],
                                name=self.fresh("Loop"), body=graph, doc_string=str(n.provenance) or None)
        return before + [loop]


__all__ = ["emit_onnx"]
