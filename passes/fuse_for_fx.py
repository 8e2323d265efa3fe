"""Fusions for the FX backend: patterns the canonical (ONNX) form spells with several ops,
rewritten into the one torch call the original model made.

* ``MatMul(x, Transpose(W))`` [``+ bias``] -> ``torchmdf::linear(x, W[, bias])`` (``F.linear``);
* ``torch.export``'s ``view(-1, K) -> addmm -> view(*lead, N)`` around ``nn.Linear`` on an N-d
  input -> ``torchmdf::linear`` on the N-d input;
* the reshapes to ``[prod(B), M, K]`` around a batched matmul -> one ``MatMul`` on the N-d
  operands;
* ``MatMul(Softmax([Where(keep, | Add(] Mul(MatMul(q, Transpose(k)), scale) [, mask)]), v)`` (how
  ``scaled_dot_product_attention`` canonicalizes) -> ``torchmdf::scaled_dot_product_attention``;
* ``x * Sigmoid(x)`` (how SiLU canonicalizes) -> ``torchmdf::silu``;
* an ONNX ``GRU``/``LSTM`` whose weights are the row ``Gather`` that
  :func:`torchmdf.ops.aten_to_onnx.rnn_as_onnx` makes of torch's (torch's gate order to ONNX's)
  -> ``torchmdf::gru_layer``/``lstm_layer`` (``torch.gru``/``torch.lstm`` on the original
  weights: one fused kernel, not a loop over time steps);
* an ``Expand`` (and the ``Unsqueeze``/``Reshape``/``Squeeze`` of a one-element tensor) that
  only feeds a broadcasting elementwise op (``Where``, ``Add``, ...) whose output shape the
  broadcast gives anyway: the op reads the value before the expand (``z[:, 0] = 1.0`` exports
  as ``Where(mask, Expand(Unsqueeze(Expand(1.0))), z)``: one ``torch.where`` on the scalar, not
  four calls and a strided operand).

Every match is found on the graph as it is given (one plan, then the rewrites), so fusing one
pattern never makes another match.  The fused ops are registry entries like any other (impl
and FX lowering here); the FX backend runs this pass on its own copy of the graph
(:func:`fused_for_fx`), so MDF and ONNX never see them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from torchmdf.ir import Graph, Node, Value
from torchmdf.ops import registry

from ._infra import Pass, PassResult

# -- the fused ops -----------------------------------------------------------------------------


def _linear_impl(input, weight, bias=None):  # noqa: A002 - torch's names
    return F.linear(input, weight, bias)


def _linear_fx(b: Any, n: Node, a: Any) -> Any:
    return b.call(F.linear, tuple(a))


def _sdpa_impl(query, key, value, attn_mask=None, scale: float | None = None, is_causal: bool = False):
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, is_causal=is_causal, scale=scale)


def _sdpa_fx(b: Any, n: Node, a: Any) -> Any:
    kw: dict[str, Any] = {"scale": n.attrs.get("scale")}  # absent: the default 1/sqrt(E)
    if len(n.inputs) > 3 and n.inputs[3] is not None:
        kw["attn_mask"] = a[3]
    if n.attrs.get("is_causal"):
        kw["is_causal"] = True
    return b.call(F.scaled_dot_product_attention, (a[0], a[1], a[2]), kw)


def _silu_impl(input: torch.Tensor) -> torch.Tensor:
    """F.silu without its ``inplace`` flag: an op (which a file may name) never writes its input."""
    return F.silu(input)


def _silu_fx(b: Any, n: Node, a: Any) -> Any:
    return b.call(F.silu, (a[0],))


LINEAR = registry.define("torchmdf::linear", _linear_impl, input_names=("input", "weight", "bias"),
                         fx_lower=_linear_fx, doc="F.linear: input @ weight.T + bias").name
SDPA = registry.define("torchmdf::scaled_dot_product_attention", _sdpa_impl,
                       input_names=("query", "key", "value", "attn_mask"), fx_lower=_sdpa_fx,
                       doc="F.scaled_dot_product_attention").name
def _gru_layer_impl(input, h0, w_ih, w_hh, b_ih, b_hh):  # noqa: A002 - torch's names
    """One unidirectional GRU layer on a ``[seq, batch, in]`` input with torch's weights, shaped
    as ONNX's GRU returns it: ``Y [seq, 1, batch, hidden]``, ``Y_h [1, batch, hidden]``."""
    y, h = torch.gru(input, h0, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, False)
    return y.unsqueeze(1), h


def _gru_layer_fx(b: Any, n: Node, a: Any) -> Any:
    import operator

    out = b.call(torch.gru, (a[0], a[1], [a[2], a[3], a[4], a[5]], True, 1, 0.0, False, False, False))
    return [b.call(torch.unsqueeze, (b.call(operator.getitem, (out, 0)), 1)), b.call(operator.getitem, (out, 1))]


def _lstm_layer_impl(input, h0, c0, w_ih, w_hh, b_ih, b_hh):  # noqa: A002 - torch's names
    """One unidirectional LSTM layer, outputs shaped as ONNX LSTM's (see ``_gru_layer_impl``)."""
    y, h, c = torch.lstm(input, [h0, c0], [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, False)
    return y.unsqueeze(1), h, c


def _lstm_layer_fx(b: Any, n: Node, a: Any) -> Any:
    import operator

    out = b.call(torch.lstm, (a[0], [a[1], a[2]], [a[3], a[4], a[5], a[6]], True, 1, 0.0, False, False, False))
    return [b.call(torch.unsqueeze, (b.call(operator.getitem, (out, 0)), 1)), b.call(operator.getitem, (out, 1)),
            b.call(operator.getitem, (out, 2))]


LSTM_LAYER = registry.define("torchmdf::lstm_layer", _lstm_layer_impl,
                             input_names=("input", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"), num_outputs=3,
                             fx_lower=_lstm_layer_fx, doc="one torch.lstm layer, outputs shaped as ONNX LSTM's").name
GRU_LAYER = registry.define("torchmdf::gru_layer", _gru_layer_impl,
                            input_names=("input", "h0", "w_ih", "w_hh", "b_ih", "b_hh"), num_outputs=2,
                            fx_lower=_gru_layer_fx, doc="one torch.gru layer, outputs shaped as ONNX GRU's").name
SILU = registry.define("torchmdf::silu", _silu_impl, input_names=("input",), fx_lower=_silu_fx,
                       doc="F.silu: x * sigmoid(x)").name


# -- finding the patterns ----------------------------------------------------------------------


def _rank(v: Value | None) -> int | None:
    return None if v is None else v.type.rank


def _const(v: Value | None) -> torch.Tensor | None:
    return v.tensor if v is not None and v.is_constant else None


def _live_out(graph: Graph) -> set[Value]:
    """Values read from outside the node list: outputs, state's next and computed initial values
    (the same set as :meth:`Graph.live_roots`, as values)."""
    return set(graph.outputs) | {x for sv in graph.state for x in (sv.next, sv.init_value) if x is not None}


def _only_use(v: Value | None, op: str, outs: set[Value]) -> Node | None:
    """The producer of ``v`` if it is an ``op`` node whose single output is read only once,
    in the producer's own graph (fusions never cross a region's boundary)."""
    p = v.producer if v is not None else None
    if p is None or p.op != op or len(p.outputs) != 1 or v.num_uses != 1 or v in outs or v._returned_by \
            or v.uses()[0][0].graph is not p.graph:
        return None
    return p


def _local_uses(v: Value) -> list[tuple[Node, int]] | None:
    """The uses of ``v``, if all are in its own graph and no region returns it; else None."""
    uses = v.uses()
    if v._returned_by or any(u.graph is not v.graph for u, _ in uses):
        return None
    return uses


def _transposed_2d(v: Value | None) -> Value | None:
    """``W`` if ``v`` is ``Transpose(W, perm=[1, 0])`` of a 2-d ``W``."""
    p = v.producer if v is not None else None
    if p is None or p.op != "onnx::Transpose" or p.attrs.get("perm") != [1, 0] \
            or p.inputs[0].type.rank != 2:
        return None
    return p.inputs[0]


def _linear_of(n: Node) -> Value | None:
    """``W`` when MatMul node ``n`` is ``x @ W^T`` with ``x`` of rank >= 1 (``F.linear``)."""
    if n.op != "onnx::MatMul" or _rank(n.inputs[0]) in (None, 0):
        return None
    w = _transposed_2d(n.inputs[1])
    if w is None or w.type.dtype != n.inputs[0].type.dtype:
        return None
    return w


def _sdpa_of(n: Node, outs: set[Value]) -> tuple | None:
    """(q, k, v, mask, is_causal, scale) when MatMul node ``n`` ends the attention pattern."""
    sm = _only_use(n.inputs[0], "onnx::Softmax", outs)
    if sm is None or n.inputs[1].type.rank is None or n.inputs[1].type.rank < 2:
        return None
    s = sm.inputs[0]
    rank = s.type.rank
    if rank is None or rank < 2 or sm.attrs.get("axis", -1) not in (-1, rank - 1):
        return None
    mask, causal = None, False
    p = s.producer
    if p is not None and p.op in ("onnx::Where", "onnx::Add") and _only_use(s, p.op, outs) is not None:
        if p.op == "onnx::Where":
            keep, inner, other = p.inputs
            t = _const(other)
            if t is None or t.numel() != 1 or not bool(torch.isneginf(t).all()) or keep.type.dtype != torch.bool:
                return None
            kt = _const(keep)
            ks = inner.type.shape
            if kt is not None and kt.dim() == 2 and ks is not None and tuple(kt.shape) == tuple(ks[-2:]) \
                    and bool((kt == torch.ones_like(kt).tril()).all()):
                causal = True
            else:
                mask = keep
        else:
            inner, mask = p.inputs
            if mask.type.dtype != s.type.dtype:
                return None
        s = inner
    mul = _only_use(s, "onnx::Mul", outs)
    if mul is None:
        return None
    scores, sc = mul.inputs
    t = _const(sc)
    if t is None or t.numel() != 1:
        return None
    mm = _only_use(scores, "onnx::MatMul", outs)
    tr = _only_use(mm.inputs[1], "onnx::Transpose", outs) if mm is not None else None
    if tr is None:
        return None
    k = tr.inputs[0]
    rk = k.type.rank
    if rk is None or rk < 2 or tr.attrs.get("perm") != list(range(rk - 2)) + [rk - 1, rk - 2]:
        return None
    q = mm.inputs[0]
    if q.type.rank is None or q.type.rank < 2 or q.type.rank != rk or q.type.rank != n.inputs[1].type.rank:
        return None
    return q, k, n.inputs[1], mask, causal, float(t.reshape(()).item())


def _fused_add(n: Node, outs: set[Value]) -> list[Value] | None:
    """``MatMul(x, Transpose(W)) + bias`` (nn.Linear on an N-d input): linear's inputs."""
    for i in (0, 1):
        mm = _only_use(n.inputs[i], "onnx::MatMul", outs)
        bias = n.inputs[1 - i]
        w = _linear_of(mm) if mm is not None else None
        if w is None or bias.type.shape is None or len(bias.type.shape) != 1 or w.type.shape is None \
                or bias.type.shape[0] != w.type.shape[0] or bias.type.dtype != w.type.dtype:
            continue
        return [mm.inputs[0], w, bias]
    return None


def _fused_mul(n: Node, outs: set[Value]) -> Value | None:
    """``x`` when Mul node ``n`` is ``x * Sigmoid(x)``."""
    for i in (0, 1):
        sg = _only_use(n.inputs[i], "onnx::Sigmoid", outs)
        if sg is not None and sg.inputs[0] is n.inputs[1 - i]:
            return n.inputs[1 - i]
    return None


def _known(shape: Any) -> bool:
    """Every dim is a number or a symbol (equal symbols are equal sizes; unknown dims are not)."""
    return shape is not None and all(d is not None for d in shape)


@dataclasses.dataclass
class _Plan:
    """What to rewrite: reshapes to drop (``skip_in``: the value keeps its own type,
    ``skip_out``: it takes the reshape's), and nodes to replace by a fused op."""

    skip_in: set[Node] = dataclasses.field(default_factory=set)
    skip_out: set[Node] = dataclasses.field(default_factory=set)
    fused: dict[Node, tuple[str, list[Value | None], dict[str, Any]]] = dataclasses.field(default_factory=dict)
    rewire: dict[tuple[Node, int], Value] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.skip_in or self.skip_out or self.fused or self.rewire)


def _plan_nd_linear(graph: Graph, plan: _Plan, outs: set[Value]) -> None:
    """``view(-1, K) -> Gemm(transB=1) -> view(*lead, N)`` is ``F.linear`` on the N-d input."""
    for r1 in graph:
        if r1.op != "onnx::Reshape" or len(r1.outputs) != 1 or r1.output in outs:
            continue
        x = r1.inputs[0]
        xs, ys = x.type.shape, r1.output.type.shape
        if not _known(xs) or not _known(ys) or len(xs) < 3 or len(ys) != 2 or xs[-1] != ys[1] \
                or not isinstance(ys[1], int):
            continue
        uses = _local_uses(r1.output)
        if not uses:
            continue
        plan_g: list[Node] = []
        plan_r: list[Node] = []
        ok = True
        for g, i in uses:
            if g.op != "onnx::Gemm" or i != 0 or g.attrs.get("transA", 0) or not g.attrs.get("transB", 0) \
                    or g.attrs.get("alpha", 1.0) != 1.0 or g.output in outs:
                ok = False
                break
            c = g.inputs[2] if len(g.inputs) > 2 else None
            w = g.inputs[1].type.shape
            if c is not None and (g.attrs.get("beta", 1.0) != 1.0 or c.type.shape is None or len(c.type.shape) != 1
                                  or w is None or c.type.shape[0] != w[0]):
                ok = False
                break
            gs = g.output.type.shape
            g_uses = _local_uses(g.output)
            if not _known(gs) or not g_uses:
                ok = False
                break
            for r2, j in g_uses:
                if r2.op != "onnx::Reshape" or j != 0 or r2.output.type.shape != tuple(xs[:-1]) + (gs[1],):
                    ok = False
                    break
                plan_r.append(r2)
            if not ok:
                break
            plan_g.append(g)
        if not ok:
            continue
        plan.skip_in.add(r1)
        for g in plan_g:
            c = g.inputs[2] if len(g.inputs) > 2 else None
            plan.fused[g] = (LINEAR, [g.inputs[0], g.inputs[1], c], {})
        plan.skip_out.update(plan_r)


def _plan_nd_matmul(graph: Graph, plan: _Plan, outs: set[Value]) -> None:
    """``matmul`` on ``[*B, M, K] @ [*B, K, N]`` exported as reshapes to 3-d around a 3-d
    MatMul and a reshape back: the MatMul takes the N-d operands (as the original did)."""
    for mm in graph:
        if mm.op != "onnx::MatMul" or mm.output in outs:
            continue
        rs = [_only_use(v, "onnx::Reshape", outs) for v in mm.inputs]
        if any(r is None or r in plan.skip_in or r in plan.skip_out for r in rs):
            continue
        xa, xb = rs[0].inputs[0].type.shape, rs[1].inputs[0].type.shape
        ya, yb = rs[0].output.type.shape, rs[1].output.type.shape
        if not all(map(_known, (xa, xb, ya, yb))) or len(xa) < 4 or len(ya) != 3 or len(yb) != 3 \
                or tuple(xa[:-2]) != tuple(xb[:-2]) or tuple(xa[-2:]) != tuple(ya[1:]) \
                or tuple(xb[-2:]) != tuple(yb[1:]):
            continue
        uses = _local_uses(mm.output)
        want = tuple(xa[:-2]) + (xa[-2], xb[-1])
        if not uses or any(r.op != "onnx::Reshape" or j != 0 or r.output.type.shape != want for r, j in uses):
            continue
        plan.skip_in.update(rs)
        plan.skip_out.update(r for r, _ in uses)


_BROADCASTING = frozenset(f"onnx::{op}" for op in (
    "Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "And", "Or", "Xor"))
_SHAPE_ONLY = frozenset({"onnx::Unsqueeze", "onnx::Reshape", "onnx::Squeeze", "onnx::Flatten"})


def _static(shape: Any) -> tuple[int, ...] | None:
    return tuple(shape) if shape is not None and all(isinstance(d, int) for d in shape) else None


def _unexpanded(v: Value, graph: Graph) -> list[Value]:
    """The values ``v`` broadcasts from, nearest first: through ``Expand`` (bidirectional
    broadcast: its output is its input broadcast), and through shape-only ops back to a
    one-element tensor (every shape of it holds the same element)."""
    found: list[Value] = []
    cur, reshaped = v, False
    for _ in range(16):
        p = cur.producer
        if p is None or p.graph is not graph or len(p.outputs) != 1 or not p.inputs or p.inputs[0] is None \
                or (p.op != "onnx::Expand" and p.op not in _SHAPE_ONLY):
            break
        cur = p.inputs[0]
        shape = _static(cur.type.shape)
        if cur.type.dtype != v.type.dtype or shape is None:
            break
        reshaped = reshaped or p.op != "onnx::Expand"
        if not reshaped or all(d == 1 for d in shape):
            found.append(cur)
    return found


def _gathered_rows(v: Value | None, rows: torch.Tensor, unsqueezed: bool) -> Value | None:
    """``w`` when ``v`` is ``[Unsqueeze(]Gather(w, rows, axis=0)[, [0])]``."""
    p = v.producer if v is not None else None
    if unsqueezed:
        if p is None or p.op != "onnx::Unsqueeze" or len(p.inputs) < 2:
            return None
        axes = _const(p.inputs[1])
        if axes is None or axes.tolist() != [0]:
            return None
        p = p.inputs[0].producer
    if p is None or p.op != "onnx::Gather" or p.attrs.get("axis", 0) != 0:
        return None
    idx = _const(p.inputs[1])
    if idx is None or idx.shape != rows.shape or not torch.equal(idx.to(torch.int64), rows):
        return None
    return p.inputs[0]


def _rnn_layer_of(n: Node) -> list[Value | None] | None:
    """The inputs of ``torchmdf::gru_layer``/``lstm_layer`` when ONNX GRU/LSTM node ``n`` is one
    layer as :func:`torchmdf.ops.aten_to_onnx.rnn_as_onnx` writes it."""
    from torchmdf.ops.aten_to_onnx import GRU_GATE_ORDER, LSTM_GATE_ORDER, gate_rows

    lstm = n.op == "onnx::LSTM"
    n_states = 2 if lstm else 1
    ins = list(n.inputs) + [None] * (8 - len(n.inputs))
    states = ins[5:5 + n_states]
    a = n.attrs
    if a.get("layout", 0) or a.get("direction", "forward") != "forward" or a.get("clip") is not None \
            or a.get("activations") is not None or ins[4] is not None or ins[3] is None or any(s is None for s in states) \
            or (lstm and (ins[7] is not None or a.get("input_forget", 0))) \
            or (not lstm and a.get("linear_before_reset", 0) != 1):
        return None
    hidden = a.get("hidden_size")
    if not isinstance(hidden, int):
        return None
    rows = gate_rows(LSTM_GATE_ORDER if lstm else GRU_GATE_ORDER, hidden)
    w_ih, w_hh = _gathered_rows(ins[1], rows, True), _gathered_rows(ins[2], rows, True)
    b = ins[3].producer
    if w_ih is None or w_hh is None or b is None or b.op != "onnx::Unsqueeze" or _const(b.inputs[1]) is None \
            or _const(b.inputs[1]).tolist() != [0]:
        return None
    cat = b.inputs[0].producer
    if cat is None or cat.op != "onnx::Concat" or cat.attrs.get("axis") != 0 or len(cat.inputs) != 2:
        return None
    b_ih, b_hh = _gathered_rows(cat.inputs[0], rows, False), _gathered_rows(cat.inputs[1], rows, False)
    if b_ih is None or b_hh is None or len({v.type.dtype for v in (ins[0], *states, w_ih, w_hh, b_ih, b_hh)}) != 1:
        return None
    return [ins[0], *states, w_ih, w_hh, b_ih, b_hh]


def _plan_broadcast_inputs(graph: Graph, plan: _Plan) -> None:
    """A broadcasting elementwise op reads an input from before its expand when the output
    shape stays the same."""
    for n in graph:
        if n.op not in _BROADCASTING or n in plan.fused or len(n.outputs) != 1:
            continue
        out = _static(n.output.type.shape)
        shapes = [None if v is None else _static(v.type.shape) for v in n.inputs]
        if out is None or any(s is None for s in shapes):
            continue
        for i, v in enumerate(n.inputs):
            best = None
            for src in _unexpanded(v, graph):
                trial = list(shapes)
                trial[i] = _static(src.type.shape)
                try:
                    if tuple(torch.broadcast_shapes(*trial)) == out:
                        best = src
                except RuntimeError:
                    break
            if best is not None:
                plan.rewire[(n, i)] = best
                shapes[i] = _static(best.type.shape)


def plan_fusions(graph: Graph) -> _Plan:
    """Every fusion of ``graph`` (one graph of a nest: a region's are planned on the region),
    found on the graph as it is."""
    outs = _live_out(graph)
    plan = _Plan()
    _plan_nd_linear(graph, plan, outs)
    _plan_nd_matmul(graph, plan, outs)
    for n in graph:
        if n in plan.fused or n in plan.skip_in or n in plan.skip_out:
            continue
        if n.op == "onnx::MatMul":
            att = _sdpa_of(n, outs)
            if att is not None:
                q, k, v, mask, causal, scale = att
                plan.fused[n] = (SDPA, [q, k, v] + ([mask] if mask is not None else []),
                                 {"scale": scale, "is_causal": causal})
                continue
            w = _linear_of(n)
            if w is not None:
                plan.fused[n] = (LINEAR, [n.inputs[0], w], {})
        elif n.op == "onnx::Add":
            ins = _fused_add(n, outs)
            if ins is not None:
                plan.fused[n] = (LINEAR, ins, {})
        elif n.op == "onnx::Mul":
            x = _fused_mul(n, outs)
            if x is not None:
                plan.fused[n] = (SILU, [x], {})
        elif n.op in ("onnx::GRU", "onnx::LSTM"):
            ins = _rnn_layer_of(n)
            if ins is not None:
                plan.fused[n] = (GRU_LAYER if n.op == "onnx::GRU" else LSTM_LAYER, ins, {})
    _plan_broadcast_inputs(graph, plan)
    return plan


# -- rewriting ---------------------------------------------------------------------------------


def _rewrite(graph: Graph, plan: _Plan) -> None:
    alias: dict[Value, Value] = {}

    def resolve(v: Value | None) -> Value | None:
        while v is not None and v in alias:
            v = alias[v]
        return v

    feeders: set[Node] = set()  # producers of what the fused ops read: dead once fused
    for (n, i), src in plan.rewire.items():
        old = n.inputs[i]
        n.replace_input_with(i, src)
        if old.producer is not None and old.producer.graph is graph:
            feeders.add(old.producer)
    for n in graph:
        if n in plan.skip_in or n in plan.skip_out:
            src = n.inputs[0]
            if n in plan.skip_out:
                src.type = n.output.type
            alias[n.output] = src
            n.output.replace_all_uses_with(src)
            graph.remove(n)
        elif n in plan.fused:
            op, ins, attrs = plan.fused[n]
            new = graph.create_node(op, [resolve(v) for v in ins], attrs, provenance=n.provenance, before=n,
                                    num_outputs=len(n.outputs))
            pairs = list(zip(n.outputs, new.outputs))
            for old, nv in pairs:
                nv.type, nv.meta = old.type, dict(old.meta)
                alias[old] = nv
                old.replace_all_uses_with(nv)
            feeders.update(v.producer for v in n.inputs if v is not None and v.producer is not None
                           and v.producer.graph is graph)
            graph.remove(n)
            for old, nv in pairs:
                nv.name = graph.unique_name(old.name)
    outs = _live_out(graph)
    for n in graph.reversed():
        d = registry.lookup(n.op) if n in feeders else None
        if d is not None and d.pure and not any(o in outs or graph.is_live(o) for o in n.outputs):
            feeders.update(v.producer for v in n.inputs if v is not None and v.producer is not None
                           and v.producer.graph is graph)
            graph.remove(n)


class FuseForFx(Pass):
    """Rewrite the patterns of the module docstring into fused ``torchmdf::`` ops."""

    def call(self, graph: Graph) -> PassResult:
        changed = False
        for g in list(graph.graphs()):  # each region on its own: nothing fuses across a boundary
            plan = plan_fusions(g)
            if plan:
                _rewrite(g, plan)
                changed = True
        return PassResult(graph, changed)


def fused_for_fx(graph: Graph) -> Graph:
    """``graph`` itself when nothing fuses, else a copy of it with the fusions made."""
    if not any(plan_fusions(g) for g in graph.graphs()):
        return graph
    copy = graph.clone()
    FuseForFx()(copy)
    return copy


__all__ = ["FuseForFx", "fused_for_fx", "plan_fusions", "LINEAR", "SDPA", "SILU"]
