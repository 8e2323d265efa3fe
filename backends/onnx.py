"""ONNX backend: IR -> ``onnx.ModelProto`` (opset 18, or the newest ``min_opset`` of the ops'
registry entries).

``onnx::`` nodes map one to one (attributes as ONNX attributes), parameters and constants
become initializers.  ``mdf::`` standard functions and ``aten::`` ops have no ONNX form:
run ``canonicalize`` first; whatever is left is reported, all at once, as unsupported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Value
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
    for n in graph:
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
    bad = [(n.op, n.location()) for n in graph if n.domain != "onnx"]
    if bad:
        raise UnsupportedOpError(bad, message=f"{len(bad)} op(s) have no ONNX form:",
                                 hint="run the 'canonicalize' pass first; ops left as aten:: or mdf:: "
                                 "cannot be written as ONNX")
    if graph.state:
        raise ConversionError(f"graph '{graph.name}' has state; ONNX export covers stateless graphs")
    if any(v.type.dtype is None or v.type.shape is None for v in graph.outputs):
        from torchmdf.passes import get_pass

        graph = graph.clone()
        get_pass("infer_shapes")(graph)  # ONNX wants typed graph outputs
    opset = _opset_for(graph, opset)
    names: dict[Value, str] = {}

    def name_of(v: Value | None) -> str:
        if v is None:
            return ""
        return names.setdefault(v, v.name)

    inits = [_tensor_proto(name_of(v), v.tensor) for v in graph.parameters.values() if graph.is_live(v)]
    nodes = []
    for n in graph:
        attrs = {k: _attr(a) for k, a in n.attrs.items() if a is not None and not k.startswith("_")}
        nodes.append(helper.make_node(n.name, [name_of(v) for v in n.inputs], [name_of(o) for o in n.outputs],
                                      name=f"{n.name}_{len(nodes)}", doc_string=str(n.provenance) or None,
                                      **attrs))
    inputs = [_value_info(v, name_of(v)) for v in graph.inputs]
    outputs = [_value_info(v, name_of(v)) for v in graph.outputs]
    g = helper.make_graph(nodes, graph.name, inputs, outputs, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="torchmdf")
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            raise ConversionError(f"the ONNX model does not pass onnx.checker: {e}") from e
    return model


__all__ = ["emit_onnx"]
