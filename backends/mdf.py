"""MDF backend: IR -> ``torchmdf.mdf.Model`` that modeci_mdf loads and runs.

Each IR op becomes one MDF node, written the way modeci_mdf's own files are: input ports for
the values that flow in, the op as a parameter with ``function`` and ``args`` (ONNX ops as
``onnx::Name`` with their attributes as node parameters, which is where modeci_mdf's ONNX
evaluator looks for them; MDF standard functions by name; ``aten::`` ops for the fallback),
one output port per result, and an edge per use.  Weights are written into the file as
parameter values (the reference implementation drops them) and keep their PyTorch names in
metadata, so the way back gives the same ``state_dict``.  Each graph input becomes an input
node with one free input port.  Node ids are readable, derived from provenance.
Control flow (``onnx::If``/``onnx::Loop``) is written as modeci_mdf's ONNX importer writes it:
each region is a nested graph, the value of a parameter named as the ONNX attribute
(``{"body": {"value": {"graph_body": {...}}}}``), see :meth:`_Emitter.emit_region`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from torchmdf.errors import ConversionError, UnsupportedOpError
from torchmdf.ir import Graph, Node, Value
from torchmdf.ir._regions import captured_values
from torchmdf.ir.meta_keys import DEFAULT
from torchmdf.mdf import Edge, InputPort, Model, OutputPort, Parameter
from torchmdf.mdf import Graph as MGraph
from torchmdf.mdf import Node as MNode
from torchmdf.mdf.torchmdf_metadata import ModelMetadata, NodeMetadata, ParameterMetadata, PortMetadata
from torchmdf.ops import registry


def _ident(s: str) -> str:
    if s.isidentifier() and s.isascii():  # the common case, without a regex
        return s
    s = re.sub(r"[^0-9A-Za-z_]", "_", s).strip("_") or "v"
    return "_" + s if s[0].isdigit() else s


def _symbolic_shape(v: Value) -> dict | None:
    """A shape with symbolic dims (``["batch", 16]``) as port metadata ``{"torchmdf": {"shape":
    ...}}``: MDF's ``shape`` holds ints only (modeci_mdf reads it as ``Tuple[int, ...]``)."""
    shape = v.type.shape
    if shape is None or v.type.is_static or any(d is None for d in shape):
        return None
    return {"torchmdf": PortMetadata(shape=[d if isinstance(d, int) else str(d) for d in shape]).to_metadata()}


def _dtype_name(dt: torch.dtype | None) -> str | None:
    return None if dt is None else str(dt).replace("torch.", "")


def _encode_attr(v: Any) -> Any:
    """Attributes as JSON-able values (dtype/device/memory_format as one-key dicts)."""
    if isinstance(v, torch.dtype):
        return {"dtype": _dtype_name(v)}
    if isinstance(v, torch.device):
        return {"device": str(v)}
    if isinstance(v, torch.memory_format):
        return {"memory_format": str(v).replace("torch.", "")}
    if isinstance(v, tuple):
        return [_encode_attr(x) for x in v]
    if isinstance(v, list):
        return [_encode_attr(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ConversionError(f"attribute value {v!r} of type {type(v).__name__} cannot be written to MDF")


class _Emitter:
    def __init__(self, graph: Graph):
        self.g = graph
        self.used_ids: set[str] = set()
        self.next_suffix: dict[str, int] = {}
        self.node_of: dict[Node, MNode] = {}
        self.port_of: dict[Value, tuple[str, str]] = {}  # value -> (mdf node id, output port id)
        self.nodes: list[MNode] = []
        self.edges: list[Edge] = []

    def uid(self, base: str) -> str:
        """A fresh MDF id from ``base``; a counter per base keeps this O(1) (probing from 1
        each time made emission quadratic in the number of same-named ops)."""
        base = _ident(base)
        cand = base
        k = self.next_suffix.get(base, 1)
        while cand in self.used_ids:
            cand = f"{base}_{k}"
            k += 1
        self.next_suffix[base] = k
        self.used_ids.add(cand)
        return cand

    def run(self, model_id: str | None) -> Model:
        g = self.g
        unsupported = [(n.op, n.location()) for n in g.walk() if registry.lookup(n.op) is None]
        if unsupported:
            raise UnsupportedOpError(unsupported)
        deep = _too_deep(g)
        if deep is not None:
            raise ConversionError(f"control flow nested more than {MAX_REGION_NESTING} levels deep cannot be "
                                  "written to MDF", location=deep.location())
        for sv in g.state:
            self.emit_state(sv)
        self.emit_inputs(g.inputs)
        for n in g:
            self.emit_node(n)
        for sv in g.state:  # the back edge: next value -> the state node's port
            if sv.next is None:
                continue
            src, port = self.port_of[sv.next]
            nid = self.port_of[sv.current][0]
            self.edges.append(Edge(id=self.uid(f"{src}_{nid}_next"), sender=src, receiver=nid,
                                   sender_port=port, receiver_port="next"))
        out_names = self.emit_outputs(g.outputs)
        sig = g.signature
        names = list(g.output_names) if g.output_names is not None and len(g.output_names) == len(out_names) \
            else None  # the names the source MDF gave them
        md = ModelMetadata(output_ports=out_names, output_names=names, in_spec=sig.in_spec, out_spec=sig.out_spec,
                           input_names=sig.input_names).to_metadata()
        mg = MGraph(id=_ident(g.name), nodes=self.nodes, edges=self.edges)
        return Model(id=_ident(model_id or g.name), graphs=[mg], metadata={"torchmdf": md})

    def emit_inputs(self, inputs: list[Value]) -> None:
        """Each input as an input node with one free input port."""
        for v in inputs:
            nid = self.uid(f"input_{v.name}")
            port = _ident(v.name)
            default = v.meta.get(DEFAULT)
            ip = InputPort(id=port, shape=tuple(v.type.shape) if v.type.is_static else None,
                           type=_dtype_name(v.type.dtype),
                           default_value=default if default is not None and default.numel() <= 4096 else None,
                           metadata=_symbolic_shape(v))
            self.nodes.append(MNode(id=nid, input_ports=[ip], output_ports=[OutputPort(id="out", value=port)]))
            self.port_of[v] = (nid, "out")

    def emit_outputs(self, outputs: list[Value]) -> list[str]:
        """``"node.port"`` of each output (a constant output gets a node that holds it)."""
        out_names = []
        for i, v in enumerate(outputs):
            if v in self.port_of:
                a, b = self.port_of[v]
            else:  # a graph output that is a parameter/constant: a node that holds it
                nid = self.uid(f"output_{i}")
                self.nodes.append(MNode(id=nid, parameters=[self.param("value", v)],
                                        output_ports=[OutputPort(id="out", value="value")]))
                a, b = nid, "out"
            out_names.append(f"{a}.{b}")
        return out_names

    def emit_region(self, region: Graph, captures: list[Value], capture_ports: list[str]) -> MGraph:
        """A region as a nested MDF graph, as modeci_mdf's ONNX importer nests a subgraph: an
        input node per region input, then one per captured outer value (the owner's input
        ports ``capture_ports`` feed them), its nodes and edges; metadata names its outputs."""
        sub = _Emitter(region)
        sub.emit_inputs(list(region.inputs) + captures)
        for n in region:
            sub.emit_node(n)
        outs = sub.emit_outputs(list(region.outputs))
        md = ModelMetadata(output_ports=outs, captures=capture_ports or None).to_metadata()
        return MGraph(id=_ident(region.name), nodes=sub.nodes, edges=sub.edges, metadata={"torchmdf": md})

    def emit_control_flow(self, n: Node, d: Any, nid: str) -> None:
        """``onnx::If``/``onnx::Loop``: the inputs as ports (``args`` name them: ``M``, ``cond``,
        ``v_initial`` a list), the regions as graph-valued parameters ``{"graph_<id>": graph}``
        named as the ONNX attributes (``then_branch``, ``else_branch``, ``body``)."""
        input_ports: list[InputPort] = []
        params: list[Parameter] = []
        args: dict[str, Any] = {}
        carried: list[str] = []
        names = list(d.input_names or [])

        def port(v: Value, local: str) -> None:
            if v.tensor is not None and v.producer is None:
                params.append(self.param(local, v))
                return
            input_ports.append(InputPort(id=local, shape=tuple(v.type.shape) if v.type.is_static else None,
                                         type=_dtype_name(v.type.dtype)))
            src_node, src_port = self.port_of[v]
            self.edges.append(Edge(id=self.uid(f"{src_node}_{nid}_{local}"), sender=src_node, receiver=nid,
                                   sender_port=src_port, receiver_port=local))

        for i, v in enumerate(n.inputs):
            if v is None:
                continue
            if i < len(names) - 1 or not d.variadic:
                local = names[i] if i < len(names) else f"input{i}"
                args[local] = local
            else:
                local = f"{names[-1]}_{i - len(names) + 1}"
                carried.append(local)
            port(v, local)
        if carried:
            args[names[-1]] = "[" + ", ".join(f"'{x}'" for x in carried) + "]"
        captures = captured_values(n)
        capture_ports = [f"capture_{k}" for k in range(len(captures))]
        for v, local in zip(captures, capture_ports):
            port(v, local)
        attr_names = _REGION_ATTRS.get(n.op) or [r.name for r in n.regions]
        for aname, region in zip(attr_names, n.regions):
            mg = self.emit_region(region, captures, capture_ports)
            params.append(Parameter(id=aname, value={f"graph_{mg.id}": mg.to_dict()}))
        fn_id = "op"
        params.append(Parameter(id=fn_id, function=d.mdf_function, args=args))
        outs = []
        for k, o in enumerate(n.outputs):
            pid = "out" if len(n.outputs) == 1 else f"out{k}"
            outs.append(OutputPort(id=pid, value=f"{fn_id}[{k}]" if len(n.outputs) > 1 else fn_id,
                                   shape=tuple(o.type.shape) if o.type.is_static else None,
                                   type=_dtype_name(o.type.dtype)))
            self.port_of[o] = (nid, pid)
        md = {"source": n.provenance.source} if n.provenance.source else None
        self.nodes.append(MNode(id=nid, input_ports=input_ports, parameters=params, output_ports=outs, metadata=md))

    def emit_state(self, sv) -> None:
        """A state variable (a mutated buffer) as an MDF node whose input port is fed by a back
        edge from the next value and has the initial value as ``default_value``: modeci_mdf
        then reads the initial value on the first evaluation and the previous evaluation's
        next value after that, which is exactly ``(inputs, state) -> (outputs, state')``."""
        if sv.init is None:
            raise ConversionError(f"state '{sv.name}' has a computed initial value; only tensors can be "
                                  "written to MDF")
        nid = self.uid(f"state_{sv.name}")
        t = sv.init
        ip = InputPort(id="next", shape=tuple(t.shape), type=_dtype_name(t.dtype), default_value=t)
        md = {"torchmdf": NodeMetadata(state=sv.name, dtype=_dtype_name(t.dtype)).to_metadata()}
        self.nodes.append(MNode(id=nid, input_ports=[ip], output_ports=[OutputPort(id="out", value="next")],
                                metadata=md))
        self.port_of[sv.current] = (nid, "out")

    def param(self, pid: str, v: Value) -> Parameter:
        t = v.tensor
        named = v.role.is_named_tensor
        keep_dtype = t.dtype not in (torch.float64, torch.int64, torch.bool)  # JSON numbers read back as these
        empty_shape = list(t.shape) if t.numel() == 0 and t.dim() != 1 else None  # JSON's [] is (0,)
        info = ParameterMetadata(name=v.name if named else None, role=v.role.value if named else None,
                                 dtype=_dtype_name(t.dtype) if keep_dtype else None,
                                 shape=empty_shape).to_metadata()
        md = {"torchmdf": info} if info else None
        value: Any = t.item() if t.dim() == 0 and t.dtype in (torch.float64, torch.int64) else t
        return Parameter(id=pid, value=value, metadata=md)

    def emit_node(self, n: Node) -> None:
        d = registry.lookup(n.op)
        if d is None:
            d = registry.get(n.op, n.location())
        short = n.name.split(".")[0]
        base = f"{n.provenance.module_path}_{short}" if n.provenance.module_path else short
        nid = self.uid(base)
        if n.regions:
            self.emit_control_flow(n, d, nid)
            return
        fn_id = _ident(short) if _ident(short) not in ("value",) else "op"
        if d.variadic and d.domain == "onnx":
            # modeci_mdf passes a variadic ONNX op (Concat, Sum, Max...) every value the node
            # has computed except those named onnx_*: the op's own would be an unset input
            fn_id = f"onnx_{fn_id}"
        input_ports: list[InputPort] = []
        params: list[Parameter] = []
        args: dict[str, Any] = {}
        names = self._input_names(d, n)
        taken = {fn_id}
        list_arg: list[str] = []
        for i, (v, (an, list_name)) in enumerate(zip(n.inputs, names)):
            if v is None:
                continue
            local = _ident(an if an not in taken else f"{an}_{i}")
            taken.add(local)
            if v.tensor is not None and v.producer is None:
                params.append(self.param(local, v))
            else:
                input_ports.append(InputPort(id=local, shape=tuple(v.type.shape) if v.type.is_static else None,
                                             type=_dtype_name(v.type.dtype)))
                src_node, src_port = self.port_of[v]
                self.edges.append(Edge(id=self.uid(f"{src_node}_{nid}_{local}"), sender=src_node,
                                       receiver=nid, sender_port=src_port, receiver_port=local))
            if d.variadic and d.domain == "onnx":
                list_arg.append(local)
            elif list_name is not None:
                args.setdefault(list_name, []).append(local)
            else:
                args[an] = local
        if list_arg:
            args = {d.input_names[0]: "[" + ", ".join(f"'{x}'" for x in list_arg) + "]"}
            if len(list_arg) == 1:
                args = {d.input_names[0]: list_arg[0]}
        attrs = dict(n.attrs)
        if n.op == "onnx::BatchNormalization":
            attrs.setdefault("training_mode", 0)  # modeci_mdf reads it to choose the outputs
        for k, a in attrs.items():
            if a is None:
                continue
            enc = _encode_attr(a)
            if d.domain == "onnx":
                pid = k if k not in taken else f"{k}_attr"
                params.insert(0, Parameter(id=pid, value=enc))  # modeci reads attributes from parameters
                taken.add(pid)
            else:
                args[k] = enc
        params.append(Parameter(id=fn_id, function=d.mdf_function, args=args))
        outs = []
        # an ONNX op whose schema declares several outputs (MaxPool, BatchNormalization, Dropout)
        # is a sequence in modeci_mdf even when one is computed: index it
        schema = d.onnx_schema() if d.domain == "onnx" else None
        seq = len(n.outputs) > 1 or (schema is not None and len(schema.outputs) > 1)
        for k, o in enumerate(n.outputs):
            pid = "out" if len(n.outputs) == 1 else f"out{k}"
            value = f"{fn_id}[{k}]" if seq else fn_id
            outs.append(OutputPort(id=pid, value=value, shape=tuple(o.type.shape) if o.type.is_static else None,
                                   type=_dtype_name(o.type.dtype)))
            self.port_of[o] = (nid, pid)
        md = {}
        if n.provenance.module_path:
            md["module"] = n.provenance.module_path
        if n.provenance.source:
            md["source"] = n.provenance.source
        self.nodes.append(MNode(id=nid, input_ports=input_ports, parameters=params, output_ports=outs,
                                metadata=md or None))

    @staticmethod
    def _input_names(d, n: Node) -> list[tuple[str, str | None]]:
        """(argument name, name of the list argument it belongs to or None) per input."""
        names = list(d.input_names or [])
        if n.op.startswith("aten::"):
            sig = registry.aten_signature(d.fx_target)
            out: list[tuple[str, str | None]] = []
            fixed = sum(1 for k in sig.kinds if k in ("tensor", "tensor?"))
            nlist = len(n.inputs) - fixed
            for an, kind in zip(sig.arg_names, sig.kinds):
                if kind in ("tensor", "tensor?"):
                    out.append((an, None))
                elif kind == "tensors":
                    out.extend((f"{an}_{j}", an) for j in range(nlist))
            return out
        if d.variadic and names:
            return [(f"{names[0]}_{j}", None) for j in range(len(n.inputs))] if len(n.inputs) > 1 \
                else [(names[0], None)]
        if len(names) < len(n.inputs):
            names += [f"input{j}" for j in range(len(names), len(n.inputs))]
        return [(x, None) for x in names]


_REGION_ATTRS = {"onnx::If": ["then_branch", "else_branch"], "onnx::Loop": ["body"],
                 "torchmdf::While": ["cond", "body"]}
MAX_REGION_NESTING = 32
"""Deepest nesting of control flow written to (and read from) a file: each level is a graph
inside a node's parameter."""


def _too_deep(g: Graph) -> Node | None:
    """The first control-flow node nested more than MAX_REGION_NESTING levels deep, or None."""
    depth = {g: 0}
    for r in g.graphs():
        if r.parent_node is not None:
            depth[r] = depth[r.parent_node.graph] + 1
            if depth[r] > MAX_REGION_NESTING:
                return r.parent_node
    return None


def emit_mdf(graph: Graph, *, model_id: str | None = None) -> Model:
    """Write ``graph`` as an MDF model (see the module docstring)."""
    return _Emitter(graph).run(model_id)


__all__ = ["emit_mdf"]
