"""Run many independent trials of a per-trial program in one call: vectorize its loops over a
leading batch dim, each trial stopping at its own condition.

A program written for one trial (the seed's DDM: a noisy integration in a data-dependent
``while`` until ``|x| >= threshold``) stops its loop when *its* condition fails.  Given a batch
of trials, the batched loop runs while **any** trial is still active; each loop-carried value
updates under a mask, ``where(active, new, old)``, so a finished trial never moves again; its
per-trial condition ANDs into the mask; and the number of trips each trial made is counted.
Random ops in the loop draw one value per trial (their input is broadcast to the batch), so
trials stay independent even where the noise's parameters are shared.

The pass gives every graph input a leading dim ``trials`` (call the result with each input
of shape ``[N, *per_trial_shape]``; :func:`broadcast_trials` makes them from per-trial
values) and, with ``trip_counts=True``, appends one graph output per batched loop: the
``int64[N]`` trip count of each trial.  Every op must act per trial (elementwise with
broadcasting: the ONNX unary and binary maths, comparisons, ``Where``, ``Cast``, ``Clip``,
the random ``*Like`` ops) and ``onnx::Loop`` without scan outputs; anything else is refused
with a located error rather than silently mixing trials.  Where an op reads batched values of
different per-trial ranks, the lower-rank ones get unit dims after the trials dim, so
broadcasting pairs trial with trial.
"""

from __future__ import annotations

from typing import Sequence

import torch

from torchmdf.errors import ConversionError
from torchmdf.ir import Graph, Node, TensorType, Value
from torchmdf.ir._regions import take_regions
from torchmdf.ops.onnx_ops import _BINARY, _UNARY

from ._infra import Pass, PassResult, register_pass
from .infer_shapes import infer_graph

TRIALS = "trials"
"""The symbolic name of the batch dim the pass adds."""

_RANDOM_LIKE = {"onnx::RandomNormalLike", "onnx::RandomUniformLike", "onnx::Bernoulli"}
PER_TRIAL_OPS = frozenset({f"onnx::{n}" for n in (*_UNARY, *_BINARY)}
                          | {"onnx::Where", "onnx::Cast", "onnx::Clip", "onnx::Max", "onnx::Min", "onnx::Mod"}
                          | _RANDOM_LIKE)
"""Ops that act on each trial's elements alone (so a leading batch dim passes through)."""

_BOOL_TO_I64 = 7  # ONNX TensorProto.INT64
_TO_BOOL = 9  # ONNX TensorProto.BOOL


def _per_trial_rank(v: Value, node: Node) -> int:
    r = v.type.rank
    if r is None:
        raise ConversionError(f"cannot batch: the rank of %{v.name} is unknown", location=node.location(),
                              hint="give the graph's inputs static shapes so infer_shapes can type the loop")
    return r


class _Builder:
    """Appends ONNX nodes to one graph, each placed before ``anchor`` (None: at the end)."""

    def __init__(self, graph: Graph, anchor: Node | None = None):
        self.graph, self.anchor = graph, anchor

    def op(self, op: str, inputs: Sequence[Value], name: str, **attrs) -> Value:
        return self.graph.create_node(op, list(inputs), attrs or None, name=name, before=self.anchor).output

    def const(self, value, dtype: torch.dtype) -> Value:
        return self.graph.add_constant(torch.tensor(value, dtype=dtype), name="batch_const")

    def mask_for(self, active: Value, rank: int) -> Value:
        """``active`` ([N] bool) shaped ``[N, 1, ...]`` to broadcast against a per-trial value of
        rank ``rank`` (a batched value has rank + 1 dims)."""
        if rank == 0:
            return active
        axes = self.const(list(range(1, rank + 1)), torch.int64)
        return self.op("onnx::Unsqueeze", [active, axes], "active_mask")

    def any(self, active: Value) -> Value:
        as_int = self.op("onnx::Cast", [active], "active_int", to=_BOOL_TO_I64)
        most = self.op("onnx::ReduceMax", [as_int], "any_active", keepdims=0)
        return self.op("onnx::Cast", [most], "any_active_bool", to=_TO_BOOL)


def _check_ops(graph: Graph) -> list[Node]:
    """The loops to batch (every onnx::Loop); refuse ops that do not act per trial."""
    loops = []
    for n in graph.walk():
        if n.op == "onnx::Loop":
            if n.graph is not graph:
                raise ConversionError("cannot batch a loop nested in another region yet", location=n.location())
            loops.append(n)
        elif n.op in _RANDOM_LIKE and n.graph is graph:
            raise ConversionError("cannot batch a random op outside a loop: it would draw one value for every "
                                  "trial", location=n.location())
        elif n.op not in PER_TRIAL_OPS:
            raise ConversionError(f"cannot batch {n.op}: it does not act on each trial alone",
                                  location=n.location(),
                                  hint=f"batch_trials handles {', '.join(sorted(PER_TRIAL_OPS)[:6])}, ... "
                                  "and onnx::Loop")
    return loops


def _batched_values(graph: Graph) -> set[Value]:
    """The values that will carry the trials dim: the graph's inputs, every loop's carried
    values (masked per trial), a random op's draws in a loop, and whatever reads one of them."""
    batched: set[Value] = set(graph.inputs)
    for n in graph.walk():
        if n.op == "onnx::Loop":
            batched.update(n.regions[0].inputs[1:])  # the condition becomes the per-trial mask
            batched.update(n.outputs)
        elif (n.op in _RANDOM_LIKE and n.graph is not graph) or any(v in batched for v in n.inputs):
            batched.update(n.outputs)
    return batched


def _align_ranks(graph: Graph) -> None:
    """Before the trials dim is added in front: where an op reads values of different per-trial
    ranks, give each batched one of lower rank unit dims after the trials dim, so broadcasting
    lines trials up with trials (``[N] + [N, 2]`` would align N with 2, or silently with a
    per-trial dim that happens to equal N)."""
    batched = _batched_values(graph)
    for n in list(graph.walk()):
        ins = [v for v in n.inputs if v is not None]
        if n.op == "onnx::Loop" or len(ins) < 2 or not any(v in batched for v in ins):
            continue
        ranks = {v: _per_trial_rank(v, n) for v in ins}
        top = max(ranks.values())
        for i, v in enumerate(n.inputs):
            if v is not None and v in batched and ranks[v] < top:
                b = _Builder(n.graph, n)
                axes = b.const(list(range(1, 1 + top - ranks[v])), torch.int64)
                n.replace_input_with(i, b.op("onnx::Unsqueeze", [v, axes], "trials_aligned"))


def _batch_loop(graph: Graph, loop: Node) -> Value:
    """Rewrite ``loop`` in place as its masked batch form; returns its per-trial trip counts."""
    m, cond = loop.inputs[0], loop.inputs[1]
    body = loop.regions[0]
    k = len(loop.inputs) - 2
    if len(body.outputs) != 1 + k:
        raise ConversionError("cannot batch a Loop with scan outputs (trials would stop at different "
                              "iterations)", location=loop.location())
    if cond is None:
        raise ConversionError("cannot batch a Loop without a condition: every trial runs M times, so "
                              "batching needs no mask", location=loop.location(),
                              hint="run the graph on batched inputs as it is")
    ranks = [_per_trial_rank(v, loop) for v in loop.inputs[2:]]
    rand_ranks = {n: _per_trial_rank(n.inputs[0], n) for n in body.walk() if n.op in _RANDOM_LIKE}

    outer = _Builder(graph, loop)
    active0 = outer.op("onnx::Cast", [cond], "active", to=_TO_BOOL)
    as_int = outer.op("onnx::Cast", [active0], "trips_init", to=_BOOL_TO_I64)
    trips0 = outer.op("onnx::Sub", [as_int, as_int], "trips_zero")
    any0 = outer.any(active0)

    # the body: (i, c, active, trips, v...) -> (any, active', trips', where(active, v', v)...)
    i_in, cond_in, carried_in = body.inputs[0], body.inputs[1], list(body.inputs[2:])
    active = body.add_input("active", TensorType(torch.bool, (TRIALS,)))
    trips = body.add_input("trips", TensorType(torch.int64, (TRIALS,)))
    cond_in.replace_all_uses_with(active)  # the body's view of its own condition is per trial
    new_cond_in = body.add_input("any_active", TensorType(torch.bool, ()))
    body.inputs[:] = [i_in, new_cond_in, active, trips, *carried_in]
    inner = _Builder(body)
    for n, r in rand_ranks.items():  # one draw per trial, finished or not
        mask = _Builder(body, n).mask_for(active, r)
        x = n.inputs[0]
        n.replace_input_with(0, _Builder(body, n).op("onnx::Where", [mask, x, x], "per_trial"))
    cond_out, new_vals = body.outputs[0], list(body.outputs[1:])
    kept = [inner.op("onnx::Where", [inner.mask_for(active, r), new, old], "masked")
            for r, new, old in zip(ranks, new_vals, carried_in)]
    stepped = inner.op("onnx::Add", [trips, inner.op("onnx::Cast", [active], "step", to=_BOOL_TO_I64)], "trips")
    still = inner.op("onnx::And", [active, inner.op("onnx::Cast", [cond_out], "cond_b", to=_TO_BOOL)],
                     "active")
    body.outputs = [inner.any(still), still, stepped, *kept]

    new = graph.create_node("onnx::Loop", [m, any0, active0, trips0, *loop.inputs[2:]], dict(loop.attrs),
                            num_outputs=2 + k, provenance=loop.provenance, before=loop,
                            regions=take_regions(loop))
    new.meta.update(loop.meta)
    for old_out, new_out in zip(loop.outputs, new.outputs[2:]):
        old_out.replace_all_uses_with(new_out)
    graph.remove(loop)
    return new.outputs[1]


@register_pass("batch_trials")
class BatchTrials(Pass):
    """Vectorize a per-trial program over a leading ``trials`` dim (see the module docstring);
    with ``trip_counts``, each batched loop's per-trial trip counts become extra outputs."""

    def __init__(self, trip_counts: bool = True):
        self.trip_counts = trip_counts

    def call(self, graph: Graph) -> PassResult:
        infer_graph(graph)
        loops = _check_ops(graph)
        for v in graph.inputs:
            if v.type.shape is None:
                raise ConversionError(f"cannot batch: input %{v.name} has no known shape", location=graph.name)
        _align_ranks(graph)
        counts = [_batch_loop(graph, loop) for loop in loops]  # reads the per-trial types
        for v in graph.inputs:
            v.type = TensorType(v.type.dtype, (TRIALS, *v.type.shape))
        if self.trip_counts and counts:
            graph.outputs = [*graph.outputs, *counts]
            if graph.signature.out_spec is not None:
                graph.signature.out_spec = _tuple_spec(len(graph.outputs))
        for g in graph.graphs():  # the per-trial types no longer hold: infer the batched ones
            for n in g:
                for o in n.outputs:
                    o.type = TensorType(None, None)
        infer_graph(graph)
        graph.verify()
        return PassResult(graph, bool(loops) or bool(graph.inputs))


def _tuple_spec(n: int) -> str:
    from torch.utils import _pytree

    return _pytree.treespec_dumps(_pytree.tree_flatten(tuple(range(n)))[1])


def batch_trials(graph: Graph, *, trip_counts: bool = True) -> Graph:
    """A batched copy of ``graph`` (the graph itself is left as it is)."""
    return BatchTrials(trip_counts=trip_counts)(graph.clone()).graph


def broadcast_trials(n: int, *values: torch.Tensor) -> list[torch.Tensor]:
    """Per-trial values repeated ``n`` times along a new leading dim (the batched graph's inputs)."""
    return [torch.as_tensor(v).expand(n, *torch.as_tensor(v).shape).contiguous() for v in values]


__all__ = ["BatchTrials", "batch_trials", "broadcast_trials", "PER_TRIAL_OPS", "TRIALS"]
