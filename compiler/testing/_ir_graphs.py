"""Random IR graphs over the op registry, regions included.

An op's registry entry gives its input names, attribute schema and torch ``impl``; it does not
say which shapes or values an input takes.  So each candidate node is drawn from the entry
(inputs from the values built so far, or small integer/scalar constants where the input's name
says it is an index, an axis or a bound; attributes by their declared type and name) and kept
only when the op's own ``impl`` accepts it on the example inputs: every node of a drawn graph
is valid by construction, and its example value is known, which later candidates use.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from hypothesis import strategies as st

from ..ir import Graph, TensorType, Value
from ..ops import registry

#: Ops the generator never draws, with the reason.  (``aten::`` entries are not listed: torch
#: makes them on demand from its schemas, thousands of them; the frontends produce them, so
#: :func:`modules` covers the ones torchmdf writes, and the OpInfo sweep the rest.)
EXCLUDED_OPS: dict[str, str] = {
    "onnx::Bernoulli": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::Multinomial": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::RandomNormal": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::RandomNormalLike": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::RandomUniform": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::RandomUniformLike": "random: two runs of the same graph differ, so outputs cannot be compared",
    "onnx::If": "owns regions: drawn by the region generator (regions=True), not as a plain node",
    "onnx::Loop": "owns regions: drawn by the region generator (regions=True), not as a plain node",
    "torchmdf::While": "owns regions: drawn by the region generator (regions=True), not as a plain node",
    "onnx::LSTM": "weight shapes tied to hidden_size and direction: random inputs are almost never valid "
                  "(tests/test_onnx_frontend.py runs it against onnxruntime)",
    "onnx::GRU": "weight shapes tied to hidden_size and direction: random inputs are almost never valid "
                 "(tests/test_onnx_frontend.py runs it against onnxruntime)",
    "torchmdf::gru_layer": "an FX fusion of onnx::GRU with weight shapes tied to hidden_size: random inputs are "
                           "almost never valid (tests/test_shapes_and_decomposition.py runs it against torch.gru)",
    "torchmdf::lstm_layer": "an FX fusion of onnx::LSTM with weight shapes tied to hidden_size: random inputs are "
                            "almost never valid (tests/test_shapes_and_decomposition.py runs it against torch.lstm)",
    "onnx::GridSample": "the grid input's shape is tied to X's ([N, H, W, 2]) "
                        "(tests/test_onnx_ops_vs_ort.py runs it against onnxruntime)",
    "onnx::Resize": "scales/sizes must keep N and C and match the rank "
                    "(tests/test_onnx_ops_vs_ort.py runs it against onnxruntime)",
}

#: Input names that take small integer vectors (indices, axes, shapes, bounds).
_INT_INPUTS = frozenset({"shape", "axes", "starts", "ends", "steps", "repeats", "pads", "split",
                         "indices", "axis", "k", "input_shape", "M"})
#: Input names that take a float scalar.
_SCALAR_INPUTS = frozenset({"min", "max", "ratio", "constant_value", "slope", "intercept", "scale",
                            "gain", "bias", "offset", "rate", "start", "limit", "delta"})
#: Attribute names that take a short list of small positive integers.
_INTS_ATTRS = frozenset({"kernel_shape", "strides", "dilations", "pads", "perm", "output_padding",
                         "output_shape", "shape", "value_ints"})
#: String attributes: the values their ops accept.
_STR_ATTRS: dict[str, Sequence[str]] = {
    "auto_pad": ("NOTSET", "VALID", "SAME_UPPER"),
    "approximate": ("none", "tanh"),
    "mode": ("constant", "reflect", "edge"),
    "equation": ("ij,jk->ik", "i,i->", "ij->ji", "ij,j->i", "bij,bjk->bik", "ii->i"),
}
#: Inputs shaped after the first input (input name -> ops): kernels and per-channel values.
_PER_CHANNEL: dict[str, frozenset] = {
    "W": frozenset({"Conv", "ConvTranspose"}),
    "scale": frozenset({"BatchNormalization", "InstanceNormalization", "GroupNormalization"}),
    "B": frozenset({"BatchNormalization", "InstanceNormalization", "LayerNormalization"}),
    "bias": frozenset({"GroupNormalization"}),
    "Scale": frozenset({"LayerNormalization"}),
    "input_mean": frozenset({"BatchNormalization"}),
    "input_var": frozenset({"BatchNormalization"}),
}
_ONNX_CODES = {torch.float32: 1, torch.uint8: 2, torch.int8: 3, torch.int16: 5, torch.int32: 6, torch.int64: 7,
               torch.bool: 9, torch.float64: 11}
_ONNX_TYPES = {"tensor(float)": torch.float32, "tensor(double)": torch.float64, "tensor(int64)": torch.int64,
               "tensor(int32)": torch.int32, "tensor(int8)": torch.int8, "tensor(uint8)": torch.uint8,
               "tensor(int16)": torch.int16, "tensor(bool)": torch.bool}


def _allowed_dtypes(d: registry.OpDef, i: int) -> frozenset | None:
    """The dtypes the ONNX schema allows for input ``i`` (those torch has), or None."""
    schema = d.onnx_schema()
    if schema is None or not schema.inputs:
        return None
    formal = schema.inputs[min(i, len(schema.inputs) - 1)]
    allowed = next((c.allowed_type_strs for c in schema.type_constraints if c.type_param_str == formal.type_str),
                   [formal.type_str])
    out = frozenset(_ONNX_TYPES[a] for a in allowed if a in _ONNX_TYPES)
    return out or None


def _same_type_as(d: registry.OpDef, i: int) -> int | None:
    """The first earlier input of an ONNX op with input ``i``'s type parameter, or None."""
    schema = d.onnx_schema()
    if schema is None or not schema.inputs or i == 0:
        return None
    params = [f.type_str for f in schema.inputs]
    mine = params[min(i, len(params) - 1)]
    for j in range(min(i, len(params))):
        if params[j] == mine and j < i:
            return j
    return None


#: Elementwise ops that keep shape and dtype: the bodies of drawn regions.
_SHAPE_KEEPING = ("onnx::Relu", "onnx::Tanh", "onnx::Neg", "onnx::Sigmoid", "onnx::Abs", "onnx::Sin",
                  "onnx::Softsign", "onnx::Elu")

MAX_ELEMENTS = 4096
"""Candidates producing a larger tensor are dropped (keeps every example fast)."""
MAX_RANK = 8
"""Ranks above this are dropped (a chain of Unsqueeze grew one to 72 dims, past torch's 64)."""


@dataclasses.dataclass
class GraphCase:
    """A drawn graph with inputs it runs on (``graph`` is never run by the generator itself)."""

    graph: Graph
    inputs: list[torch.Tensor]

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # how hypothesis prints a failing case
        p.text(repr(self))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{tuple(x.shape)}:{str(x.dtype).removeprefix('torch.')}" for x in self.inputs)
        return f"GraphCase(inputs=[{shapes}])\n{self.graph}"


def drawable_ops(domains: Sequence[str] = ("onnx", "mdf", "torchmdf")) -> list[str]:
    """The registered ops of ``domains`` that :func:`ir_graphs` draws (all but :data:`EXCLUDED_OPS`)."""
    registry.lookup("onnx::Relu")  # loads the built-in definitions
    return [n for d in domains for n in registry.names(d) if n not in EXCLUDED_OPS]


class _Builder:
    """The graph being drawn: a pool of (value, example tensor) the next node reads."""

    def __init__(self, draw: Any, graph: Graph):
        self.draw = draw
        self.graph = graph
        self.pool: list[tuple[Value, torch.Tensor]] = []

    # -- pieces -------------------------------------------------------------------------------

    def constant(self, graph: Graph, t: torch.Tensor) -> tuple[Value, torch.Tensor]:
        return graph.add_constant(t), t

    def pick(self, want_float: bool = False, dtypes: frozenset | None = None) -> tuple[Value, torch.Tensor]:
        pool = self.pool
        if dtypes is not None:
            pool = [p for p in pool if p[1].dtype in dtypes]
            if not pool:  # make one: a cast of a drawn value (ONNX type constraints)
                v, t = self.draw(st.sampled_from(self.pool))
                dtype = self.draw(st.sampled_from(sorted(dtypes, key=str)))
                made = self.node(self.graph, "onnx::Cast", [(v, t)], {"to": _ONNX_CODES[dtype]})
                return made[0] if made else (v, t)
        elif want_float:
            pool = [p for p in pool if p[1].is_floating_point()]
        return self.draw(st.sampled_from(pool or self.pool))

    def int_vector(self, graph: Graph, name: str) -> tuple[Value, torch.Tensor]:
        draw = self.draw
        if name in ("axis", "k", "M") or draw(st.booleans()) and name == "indices":
            t = torch.tensor(draw(st.integers(-2, 3)), dtype=torch.int64)
        else:
            t = torch.tensor(draw(st.lists(st.integers(-2, 4), min_size=1, max_size=4)), dtype=torch.int64)
        return self.constant(graph, t)

    def attr_value(self, a: registry.Attr, x: torch.Tensor | None) -> Any:
        draw = self.draw
        if a.name in _STR_ATTRS:
            return draw(st.sampled_from(_STR_ATTRS[a.name]))
        spatial = x.dim() - 2 if x is not None and x.dim() > 2 else 0
        if a.name in ("kernel_shape", "strides", "dilations") and spatial and draw(st.integers(0, 3)):
            return [draw(st.integers(1, 2)) for _ in range(spatial)]
        if a.name == "pads" and spatial and draw(st.integers(0, 3)):
            return [draw(st.integers(0, 1))] * (2 * spatial)
        if a.name == "perm" and x is not None and draw(st.integers(0, 3)):
            return draw(st.permutations(range(x.dim())))
        if a.name in _INTS_ATTRS:
            return draw(st.lists(st.integers(0 if a.name in ("pads", "perm") else 1, 3), min_size=1, max_size=4))
        if a.name == "to":  # Cast: an ONNX dtype code torch has
            return draw(st.sampled_from([1, 6, 7, 9, 11]))
        if a.name in ("value", "value_float"):
            return torch.tensor(draw(st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=4)))
        if a.type in ("float",):
            return draw(st.floats(0.0625, 2.0, width=32))
        if a.type in ("bool",):
            return draw(st.booleans())
        if a.name in ("seed",):
            return None
        if a.name.startswith("num_"):
            return draw(st.integers(1, 3))
        if a.type == "int" or isinstance(a.default, int):
            return draw(st.integers(-1, 3) if a.name in ("axis", "start", "end") else st.integers(0, 2))
        return draw(st.none() | st.integers(0, 3))

    def inputs_for(self, d: registry.OpDef) -> list[tuple[Value | None, Any]] | None:
        draw = self.draw
        names = list(d.input_names or ())
        if d.variadic and names:
            names = names[:-1] + [names[-1]] * draw(st.integers(1, 3))
        out: list[tuple[Value | None, Any]] = []
        required = d.num_required_inputs
        for i, name in enumerate(names):
            if i >= required and draw(st.booleans()):
                # an optional trailing input left out: every later one too
                break
            if out and out[0][1] is not None and name in _PER_CHANNEL and d.short_name in _PER_CHANNEL[name]:
                out.append(self.per_channel(out[0][1], d.short_name, name))
            elif name in _INT_INPUTS:
                out.append(self.int_vector(self.graph, name))
            elif name in _SCALAR_INPUTS:
                t = torch.tensor(draw(st.floats(-2, 2, width=32)))
                same = _same_type_as(d, i)
                if same is not None and same < len(out) and out[same][1] is not None:
                    t = t.to(out[same][1].dtype)
                out.append(self.constant(self.graph, t))
            elif name == "training_mode":
                out.append(self.constant(self.graph, torch.tensor(False)))
            else:
                out.append(self.pick(want_float=i == 0 or draw(st.booleans()), dtypes=_allowed_dtypes(d, i)))
        for i, (_, t) in enumerate(out):  # ONNX: inputs of one type parameter have one dtype
            same = _same_type_as(d, i)
            if same is not None and t is not None and out[same][1] is not None and out[same][1].dtype != t.dtype:
                return None
        return out

    def per_channel(self, x: torch.Tensor, op: str, name: str) -> tuple[Value, torch.Tensor]:
        """A weight shaped for ``x``: a convolution kernel, or one value per channel (or per
        normalized element for LayerNormalization)."""
        draw = self.draw
        if op in ("Conv", "ConvTranspose"):
            c = x.shape[1] if x.dim() > 1 else 1
            spatial = [draw(st.integers(1, max(1, k))) for k in x.shape[2:]]
            shape = [draw(st.integers(1, 3)), c, *spatial] if op == "Conv" else [c, draw(st.integers(1, 3)), *spatial]
        elif op == "LayerNormalization":
            shape = list(x.shape[-1:])
        elif name == "B" and op in ("Conv", "ConvTranspose"):
            shape = [draw(st.integers(1, 3))]
        else:
            shape = [x.shape[1] if x.dim() > 1 else 1]
        t = torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))), dtype=x.dtype)
        return self.constant(self.graph, t.abs() + 0.5 if name == "input_var" else t)

    def node(self, graph: Graph, op: str, ins: Sequence[tuple[Value | None, Any]], attrs: dict[str, Any]
             ) -> list[tuple[Value, torch.Tensor]] | None:
        """Add ``op`` to ``graph`` when its impl accepts the example values; None otherwise."""
        d = registry.get(op)
        try:
            with torch.no_grad():
                outs = d.run([t for _, t in ins], attrs)
        except Exception:  # noqa: BLE001 - the candidate is invalid for this op: drop it
            return None
        if not outs or not all(isinstance(o, torch.Tensor) and o.numel() <= MAX_ELEMENTS and o.dim() <= MAX_RANK
                               for o in outs):
            return None
        if any(o.is_complex() or o.dtype in (torch.bfloat16, torch.float16) for o in outs):
            return None
        n = graph.create_node(op, [v for v, _ in ins], attrs, num_outputs=len(outs))
        return list(zip(n.outputs, outs))

    # -- drawing ------------------------------------------------------------------------------

    def plain_node(self, ops: Sequence[str]) -> None:
        op = self.draw(st.sampled_from(ops))
        d = registry.get(op)
        ins = self.inputs_for(d)
        if ins is None:
            return
        attrs = {}
        for a in d.attr_schema:
            if a.required or self.draw(st.booleans()):
                v = self.attr_value(a, ins[0][1] if ins and ins[0][1] is not None else None)
                if v is not None:
                    attrs[a.name] = v
        if op in ("onnx::Conv", "onnx::ConvTranspose") and "kernel_shape" in attrs and len(ins) > 1 \
                and ins[1][1] is not None:
            attrs["kernel_shape"] = list(ins[1][1].shape[2:])  # ONNX: the weight's spatial shape
        made = self.node(self.graph, op, ins, attrs)
        if made is not None:
            self.pool.extend(made)

    def chain(self, region: Graph, v: tuple[Value, torch.Tensor]) -> tuple[Value, torch.Tensor]:
        """A few shape-keeping elementwise ops on ``v`` inside ``region``."""
        for _ in range(self.draw(st.integers(1, 3))):
            op = self.draw(st.sampled_from(_SHAPE_KEEPING))
            made = self.node(region, op, [v], {})
            if made is not None:
                v = made[0]
        return v

    def region_node(self) -> None:
        kind = self.draw(st.sampled_from(["if", "loop", "while"]))
        x = self.pick(want_float=True)
        if not x[1].is_floating_point():
            return
        g = self.graph
        if kind == "if":
            s = self.node(g, "onnx::ReduceSum", [x], {"keepdims": 0})
            zero = self.constant(g, torch.tensor(0.0, dtype=x[1].dtype))
            c = self.node(g, "onnx::Greater", [s[0], zero], {})[0]
            then, other = g.new_region("then_branch"), g.new_region("else_branch")
            node = g.create_node("onnx::If", [c[0]], regions=[then, other])
            a, b = self.chain(then, x), self.chain(other, x)
            then.outputs, other.outputs = [a[0]], [b[0]]
            self.pool.append((node.output, a[1] if bool(c[1]) else b[1]))
        elif kind == "loop":
            trips = self.draw(st.integers(0, 3))
            m = self.constant(g, torch.tensor(trips, dtype=torch.int64))
            body = g.new_region("body")
            node = g.create_node("onnx::Loop", [m[0], None, x[0]], regions=[body], num_outputs=2)
            i = body.add_input("i", TensorType(torch.int64, ()))
            cond_in = body.add_input("cond_in", TensorType(torch.bool, ()))
            v = body.add_input("v", TensorType(x[1].dtype, tuple(x[1].shape)))
            # the body is built on the first iteration's values (the candidates' filter)
            y, _ = self.chain(body, (v, x[1]))
            fi = body.create_node("onnx::Cast", [i], {"to": _onnx_code(x[1].dtype)}).output
            scaled = body.create_node("onnx::Add", [y, fi]).output
            # typed as v: a Loop that runs zero times stacks no element, so the interpreter takes
            # its scan outputs' element shape from this type (untyped, it gave rank 1 before a
            # pass and the typed rank after; long profile)
            scaled.type = TensorType(x[1].dtype, tuple(x[1].shape))
            keep = body.create_node("onnx::Identity", [cond_in]).output
            body.outputs = [keep, scaled, scaled]
            outs = _run_node(g, node)
            if outs is None:
                g.remove(node, safe=False)
                return
            self.pool.extend(zip(node.outputs[:1], outs[:1]))
            if trips:
                self.pool.extend(zip(node.outputs[1:], outs[1:]))
        else:
            limit = self.draw(st.integers(0, 3))
            n0 = self.constant(g, torch.tensor(0, dtype=torch.int64))
            cond, body = g.new_region("cond"), g.new_region("body")
            node = g.create_node("torchmdf::While", [x[0], n0[0]], regions=[cond, body], num_outputs=2)
            cond.add_input("cx", TensorType(x[1].dtype, tuple(x[1].shape)))
            cn = cond.add_input("cn", TensorType(torch.int64, ()))
            lim = cond.add_constant(torch.tensor(limit, dtype=torch.int64))
            cond.outputs = [cond.create_node("onnx::Less", [cn, lim]).output]
            bx = body.add_input("bx", TensorType(x[1].dtype, tuple(x[1].shape)))
            bn = body.add_input("bn", TensorType(torch.int64, ()))
            y, _ = self.chain(body, (bx, x[1]))
            one = body.add_constant(torch.tensor(1, dtype=torch.int64))
            body.outputs = [y, body.create_node("onnx::Add", [bn, one]).output]
            outs = _run_node(g, node)
            if outs is None:
                g.remove(node, safe=False)
                return
            self.pool.extend(zip(node.outputs, outs))


def _onnx_code(dtype: torch.dtype) -> int:
    return _ONNX_CODES.get(dtype, 1)


def _run_node(g: Graph, node: Any) -> list[torch.Tensor] | None:
    """The outputs of region node ``node`` (the graph's last) through the reference interpreter."""
    from ..interpreter import run_graph

    saved = g.outputs
    g.outputs = list(node.outputs)
    try:
        outs, _ = run_graph(g, g.meta["_fuzz_inputs"])
    except Exception:  # noqa: BLE001 - the drawn body is invalid: drop the node
        return None
    finally:
        g.outputs = saved
    return list(outs)


_INPUT_DTYPES = (torch.float32, torch.float32, torch.float32, torch.float64, torch.int64, torch.bool)


@st.composite
def graph_inputs(draw: Any, max_inputs: int = 3) -> list[torch.Tensor]:
    """Example inputs of broadcast-compatible shapes (rank 0-4, dims 1-4), mostly float32."""
    base = draw(st.lists(st.integers(1, 4), min_size=0 if draw(st.integers(0, 7)) == 0 else 1, max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    out = []
    for k in range(draw(st.integers(1, max_inputs))):
        keep = draw(st.integers(0, len(base)))
        shape = [1 if draw(st.booleans()) and k else d for d in base[len(base) - keep:]]
        dtype = torch.float32 if k == 0 else draw(st.sampled_from(_INPUT_DTYPES))
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
        if dtype == torch.bool:
            x = x > 0
        elif not dtype.is_floating_point:
            x = x.round()
        out.append(x.to(dtype))
    return out


@st.composite
def ir_graphs(draw: Any, ops: Sequence[str] | None = None, *, max_nodes: int = 12, regions: bool = True,
              max_inputs: int = 3) -> GraphCase:
    """A :class:`GraphCase`: a valid IR graph over ``ops`` (default :func:`drawable_ops`), with
    If/Loop/While regions when ``regions``, and inputs it runs on."""
    ops = list(ops) if ops is not None else drawable_ops()
    inputs = draw(graph_inputs(max_inputs))
    g = Graph("fuzz")
    b = _Builder(draw, g)
    for k, x in enumerate(inputs):
        b.pool.append((g.add_input(f"x{k}", TensorType.of(x)), x))
    g.meta["_fuzz_inputs"] = inputs
    for _ in range(draw(st.integers(1, max_nodes))):
        if regions and draw(st.integers(0, 5)) == 0:
            b.region_node()
        else:
            b.plain_node(ops)
    del g.meta["_fuzz_inputs"]
    made = [v for v, _ in b.pool[len(inputs):]] or [g.inputs[0]]
    extra = draw(st.lists(st.sampled_from(made[:-1]), max_size=2, unique=True)) if len(made) > 1 else []
    g.outputs = [made[-1], *extra]
    return GraphCase(g, inputs)
