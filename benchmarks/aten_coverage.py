"""ATen coverage sweep: which core ATen ops round-trip through MDF files and through ONNX.

The *core ATen opset* here is every ATen overload tagged ``torch.Tag.core`` in the installed
torch (what ``torch.export``'s default decomposition table decomposes to), less the few that
DESIGN.md forbids a model file to name (``out=`` variants, random ops, raw storage/strides,
uninitialized memory: ``summary.excluded_core_overloads`` lists them with the reason).  The
expect file records the torch version and the set's size.

Each float32 CPU sample of PyTorch's OpInfo database (``op_db``; at most
:data:`SAMPLES_PER_OPINFO` per entry) becomes a small module whose tensor leaves are its inputs.
It is exported with ``torch.export`` and decomposed to the core opset
(``run_decompositions()``); the core overloads left in that graph are what the sample
exercises.  Then two legs, each compared with the op's own eager result:

* ``mdf``: exported program -> IR (default passes) -> MDF file (JSON, saved and loaded back)
  -> ``torch.fx.GraphModule``;
* ``onnx``: exported program -> ``torchmdf.compile(..., target="onnx")`` -> onnxruntime.

An op *round-trips* a leg when at least one sample exercising it passes that leg (every
sample, passing or not, is counted in its row).  Its *spelling* is ``onnx`` when at least one
passing MDF file has it canonicalized to ONNX ops (not naming it as ``aten::...``), else
``aten``.  A failure is recorded as ``ErrorClass: first line of the message`` (shortened).

``python benchmarks/aten_coverage.py`` regenerates ``tests/expect/aten_coverage.json`` (about
40 minutes on two busy cores); ``--ops add,mul --update`` re-runs those OpInfo entries and
replaces their rows in the file; ``--json PATH`` writes elsewhere.

Core overloads no float32 OpInfo sample reaches (backward kernels, integer-only bitwise ops,
overloads the samples reach only through other spellings) are called directly as ``extra.<op>``
entries (:data:`EXTRAS`); where torch.export's core table decomposes such an op
away, its row counts the sample that checks its decomposition (``decomposed``).
``tests/test_aten_coverage.py`` re-runs the recorded passes and fails when one regresses.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.utils import _pytree as pytree

REPO = Path(__file__).resolve().parent.parent
EXPECT = REPO / "tests" / "expect" / "aten_coverage.json"
SAMPLES_PER_OPINFO = 2
"""Samples tried per OpInfo entry (the first ones its generator gives)."""
RTOL = ATOL = 1e-4
"""How close a round-tripped float32 result must be (ops fused or reordered by ONNX forms)."""
_MSG_LEN = 160


def core_aten_overloads() -> list[str]:
    """Every registered ``aten::`` overload tagged ``torch.Tag.core``, as ``aten::name[.overload]``
    (read from the dispatcher, so ops torch loads lazily are counted too)."""
    from torchmdf.ops.registry import resolve_aten

    out = []
    for name in torch._C._dispatch_get_all_op_names():
        if name.startswith("aten::"):
            ov = resolve_aten(name)
            if ov is not None and torch.Tag.core in ov.tags:
                out.append(name)
    return sorted(set(out))


def core_aten_ops() -> tuple[list[str], dict[str, str]]:
    """``(measured, excluded)``: the core overloads a model file may name, and those the design
    forbids in files (``out=`` variants, random, raw storage/strides, uninitialized memory),
    each with the reason :func:`torchmdf.ops.file_op_refusal` gives."""
    from torchmdf.ops.registry import file_op_refusal

    measured, excluded = [], {}
    for name in core_aten_overloads():
        why = file_op_refusal(name)
        if why is None:
            measured.append(name)
        else:
            excluded[name] = why
    return measured, excluded


def op_name(target: Any) -> str:
    """``torch.ops.aten.add.Tensor`` -> ``"aten::add.Tensor"``."""
    packet = target.overloadpacket.__name__
    ov = target._overloadname
    return f"aten::{packet}" + ("" if ov == "default" else f".{ov}")


def short_error(e: BaseException) -> str:
    """``Class: message`` on one line, without addresses, temporary paths and node names."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    msg = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    msg = re.sub(r" at node %.*", "", msg)
    msg = re.sub(r"0x[0-9a-f]+", "0x...", msg)
    msg = re.sub(r"/tmp/\S+", "<tmp>", msg)
    if len(msg) > _MSG_LEN:
        msg = msg[:_MSG_LEN - 3] + "..."
    return f"{type(e).__name__}: {msg}"


class _SampleModule(torch.nn.Module):
    """``op(input, *args, **kwargs)`` of one OpInfo sample, its tensors as forward arguments."""

    def __init__(self, op: Any, leaves: list[Any], spec: Any, tensor_pos: list[int]):
        super().__init__()
        self.op, self.leaves, self.spec, self.tensor_pos = op, leaves, spec, tensor_pos

    def forward(self, *tensors: torch.Tensor) -> Any:
        leaves = list(self.leaves)
        for i, t in zip(self.tensor_pos, tensors):
            leaves[i] = t
        inp, args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return self.op(inp, *args, **kwargs)


def _flat_tensors(out: Any) -> list[torch.Tensor]:
    leaves = pytree.tree_leaves(out)
    return [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in leaves]


def _compare(expected: Any, got: Any) -> None:
    exp, res = _flat_tensors(expected), _flat_tensors(got)
    if len(exp) != len(res):
        raise AssertionError(f"{len(res)} outputs, expected {len(exp)}")
    for e, r in zip(exp, res):
        r = torch.as_tensor(r)
        if e.dtype == torch.bool or r.dtype == torch.bool:
            e, r = e.to(torch.bool), r.to(torch.bool)
        elif e.is_floating_point() and not r.is_floating_point():
            r = r.to(e.dtype)
        torch.testing.assert_close(r, e, rtol=RTOL, atol=ATOL, equal_nan=True, check_dtype=False,
                                   check_stride=False, check_device=False)


def _mdf_leg(ep: Any, tensors: list[torch.Tensor], expected: Any) -> list[str]:
    """Round trip through an MDF file; returns the ``aten::`` names the file kept."""
    import torchmdf

    model = torchmdf.compile(ep, target="mdf")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.json")
        torchmdf.mdf.save(model, path)
        text = Path(path).read_text()
        gm = torchmdf.compile(path, target="fx")
    _compare(expected, gm(*tensors))
    return sorted(set(re.findall(r'"(aten::[A-Za-z0-9_.]+)"', text)))


def _onnx_leg(ep: Any, tensors: list[torch.Tensor], expected: Any) -> None:
    import onnxruntime as ort

    import torchmdf

    proto = torchmdf.compile(ep, target="onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().numpy() for i, t in zip(sess.get_inputs(), tensors)}
    out = sess.run(None, feeds)
    _compare(expected, [torch.from_numpy(o) if hasattr(o, "dtype") else o for o in out])


def _prepare(opinfo: Any, sample: Any) -> tuple[_SampleModule, list[torch.Tensor]]:
    leaves, spec = pytree.tree_flatten((sample.input, tuple(sample.args), dict(sample.kwargs)))
    pos = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]
    tensors = [leaves[i].detach().clone() for i in pos]
    for i in pos:
        leaves[i] = None
    return _SampleModule(opinfo.op, leaves, spec, pos), tensors


def run_sample(opinfo: Any, sample: Any, legs: Iterable[str] = ("mdf", "onnx")) -> dict[str, Any]:
    """One sample through export and each leg: ``{"ops": [...], "mdf": "pass" | error, ...}``."""
    row: dict[str, Any] = {"opinfo": _opinfo_key(opinfo)}
    module, tensors = _prepare(opinfo, sample)
    try:
        expected = module(*[t.clone() for t in tensors])
    except Exception as e:  # noqa: BLE001
        row["skip"] = "eager: " + short_error(e)
        return row
    try:
        ep = torch.export.export(module, tuple(tensors), strict=False).run_decompositions()
    except Exception as e:  # noqa: BLE001
        row["skip"] = "export: " + short_error(e)
        return row
    ops = sorted({op_name(n.target) for n in ep.graph.nodes
                  if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)
                  and n.target.namespace == "aten"})
    target = getattr(opinfo, "target", None)
    if target is not None and target not in ops:
        row["decomposed"] = target  # torch.export's core table decomposes it: its parts are checked
    row["ops"] = ops
    from torchmdf.ops.registry import _is_random

    seeded = torch.Tag.nondeterministic_seeded
    if any(_is_random(n.target.name()) or seeded in n.target.tags for n in ep.graph.nodes
           if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)):
        row["skip"] = "random"
        return row
    if "mdf" in legs:
        try:
            row["aten_in_file"] = _mdf_leg(ep, tensors, expected)
            row["mdf"] = "pass"
        except Exception as e:  # noqa: BLE001 - the failure is the result
            row["mdf"] = short_error(e)
    if "onnx" in legs:
        try:
            _onnx_leg(ep, tensors, expected)
            row["onnx"] = "pass"
        except Exception as e:  # noqa: BLE001
            row["onnx"] = short_error(e)
    return row


def _opinfo_key(opinfo: Any) -> str:
    return opinfo.name + (f".{opinfo.variant_test_name}" if opinfo.variant_test_name else "")


def opinfos(names: Iterable[str] | None = None) -> list[Any]:
    """The OpInfo entries with float32 CPU samples (``names``: only these keys)."""
    from torch.testing._internal.common_methods_invocations import op_db

    wanted = set(names) if names is not None else None
    out = []
    for o in op_db:
        if wanted is not None and _opinfo_key(o) not in wanted:
            continue
        if torch.float32 in o.supported_dtypes("cpu"):
            out.append(o)
    return out + [e for e in EXTRAS if wanted is None or _opinfo_key(e) in wanted]


class _Sample:
    def __init__(self, input: Any, *args: Any, **kwargs: Any):  # noqa: A002 - OpInfo's name
        self.input, self.args, self.kwargs = input, args, kwargs


class _Extra:
    """A core ATen overload no OpInfo sample reaches (backward kernels), called directly: an
    OpInfo look-alike named ``extra.<op>`` with the samples ``make()`` returns."""

    variant_test_name = ""

    def __init__(self, overload: Any, make: Any):
        self.target = op_name(overload)
        self.name = "extra." + self.target[6:]
        self.op, self._make = overload, make

    def supported_dtypes(self, device: str) -> set[torch.dtype]:
        return {torch.float32}

    def sample_inputs(self, device: str, dtype: torch.dtype, requires_grad: bool = False) -> Iterable[_Sample]:
        return iter(self._make())


def _extras() -> list[_Extra]:
    aten = torch.ops.aten
    r = torch.randn

    def ints(*shape):
        return torch.randint(-8, 8, shape)

    def pool_idx():
        x = r(1, 2, 6, 6)
        _, idx = aten.max_pool2d_with_indices(x, [2, 2], [2, 2])
        return [_Sample(r(1, 2, 3, 3), x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)]

    def group_norm_bwd():
        x, w = r(2, 4, 3), r(4)
        _, mean, rstd = aten.native_group_norm(x, w, r(4), 2, 4, 3, 2, 1e-5)
        return [_Sample(r(2, 4, 3), x, mean, rstd, w, 2, 4, 3, 2, [True, True, True])]

    def layer_norm_bwd():
        x, w, b = r(2, 3, 4), r(4), r(4)
        _, mean, rstd = aten.native_layer_norm(x, [4], w, b, 1e-5)
        return [_Sample(r(2, 3, 4), x, [4], mean, rstd, w, b, [True, True, True])]

    return [
        _Extra(aten._adaptive_avg_pool2d_backward.default, lambda: [_Sample(r(1, 2, 2, 2), r(1, 2, 4, 4))]),
        _Extra(aten.avg_pool2d_backward.default,
               lambda: [_Sample(r(1, 2, 3, 3), r(1, 2, 6, 6), [2, 2], [2, 2], [0, 0], False, True, None)]),
        _Extra(aten.convolution_backward.default,
               lambda: [_Sample(r(1, 3, 4, 4), r(1, 2, 6, 6), r(3, 2, 3, 3), [3], [1, 1], [0, 0], [1, 1], False,
                                [0, 0], 1, [True, True, True])]),
        _Extra(aten.embedding_dense_backward.default,
               lambda: [_Sample(r(2, 3, 4), torch.tensor([[0, 2, 1], [4, 2, 0]]), 5, -1, False)]),
        _Extra(aten.max_pool2d_with_indices_backward.default, pool_idx),
        _Extra(aten.native_group_norm_backward.default, group_norm_bwd),
        _Extra(aten.native_layer_norm_backward.default, layer_norm_bwd),
        _Extra(aten._embedding_bag.default,
               lambda: [_Sample(r(6, 3), torch.tensor([0, 2, 5, 1, 4]), torch.tensor([0, 2]), False, 0)]),
        _Extra(aten._pdist_forward.default, lambda: [_Sample(r(4, 3), 2.0)]),
        _Extra(aten.col2im.default, lambda: [_Sample(r(1, 8, 4), [3, 3], [2, 2], [1, 1], [0, 0], [1, 1])]),
        _Extra(aten._native_batch_norm_legit.no_stats, lambda: [_Sample(r(2, 3, 4), r(3), r(3), True, 0.1, 1e-5)]),
        _Extra(aten.avg_pool1d.default, lambda: [_Sample(r(1, 2, 6), [2], [2])]),
        _Extra(aten.adaptive_avg_pool1d.default, lambda: [_Sample(r(1, 2, 6), [3])]),
        _Extra(aten.nonzero.default, lambda: [_Sample(torch.tensor([[0.0, 1.5], [2.0, 0.0]]))]),
        # integer-only ops (OpInfo's float32 samples skip them)
        *(_Extra(getattr(aten, f"bitwise_{k}").Scalar, lambda: [_Sample(ints(3, 4), 6)]) for k in ("and", "or", "xor")),
        _Extra(aten.bitwise_xor.Tensor, lambda: [_Sample(ints(3, 4), ints(3, 4))]),
        # overloads the OpInfo samples reach only through other spellings
        _Extra(aten.reflection_pad1d.default, lambda: [_Sample(r(1, 2, 5), [1, 2])]),
        _Extra(aten.reflection_pad2d.default, lambda: [_Sample(r(1, 2, 4, 5), [1, 1, 2, 0])]),
        _Extra(aten.reflection_pad3d.default, lambda: [_Sample(r(1, 1, 3, 4, 5), [1, 1, 1, 0, 2, 1])]),
        _Extra(aten.replication_pad2d.default, lambda: [_Sample(r(1, 2, 4, 5), [1, 1, 2, 0])]),
        _Extra(aten.replication_pad3d.default, lambda: [_Sample(r(1, 1, 3, 4, 5), [1, 1, 1, 0, 2, 1])]),
        _Extra(aten.scatter.value, lambda: [_Sample(r(3, 4), 0, torch.tensor([[0, 2, 1, 0]]), 2.5)]),
        _Extra(aten.select_scatter.default, lambda: [_Sample(r(3, 4), r(4), 0, 1)]),
        _Extra(aten.squeeze.dim, lambda: [_Sample(r(3, 1, 4), 1)]),
        _Extra(aten.fill.Scalar, lambda: [_Sample(r(3, 4), 1.5)]),
        _Extra(aten.div.Scalar_mode, lambda: [_Sample(r(3, 4) * 4, 1.5, rounding_mode="floor")]),
        _Extra(aten.var.dim, lambda: [_Sample(r(3, 4), [1], True, True)]),
        _Extra(aten.upsample_nearest2d.vec, lambda: [_Sample(r(1, 2, 3, 4), None, [2.0, 2.0])]),
    ]


EXTRAS = _extras()


def samples_of(opinfo: Any, indices: Iterable[int] | None = None) -> list[tuple[int, Any]]:
    """``(index, sample)`` for the first :data:`SAMPLES_PER_OPINFO` float32 CPU samples (or
    those at ``indices``); generated with a fixed seed so that a re-run sees the same data."""
    torch.manual_seed(0)
    gen = opinfo.sample_inputs("cpu", torch.float32, requires_grad=False)
    want = set(indices) if indices is not None else None
    n = max(want) + 1 if want else SAMPLES_PER_OPINFO
    return [(i, s) for i, s in enumerate(itertools.islice(gen, n)) if want is None or i in want]


@contextlib.contextmanager
def _quiet():
    """OpInfo and export print warnings per sample; the sweep's output is its JSON."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(level)


def sweep(names: Iterable[str] | None = None, legs: Iterable[str] = ("mdf", "onnx"),
          progress: bool = False, log: Any = None) -> list[dict[str, Any]]:
    """Run every sample; one row per sample (``opinfo``, ``sample`` index, ``ops``, results);
    each row is also written to ``log`` (a text file) as one JSON line as it is made."""
    rows: list[dict[str, Any]] = []
    entries = opinfos(names)
    for k, o in enumerate(entries):
        t0 = time.perf_counter()
        with _quiet():
            try:
                samples = samples_of(o)
            except Exception as e:  # noqa: BLE001
                samples = []
                rows.append({"opinfo": _opinfo_key(o), "sample": -1, "skip": "samples: " + short_error(e)})
            for i, s in samples:
                rows.append({"sample": i, **run_sample(o, s, legs)})
        if log is not None:
            for row in rows[len(rows) - max(len(samples), 1):]:
                log.write(json.dumps(row) + "\n")
            log.flush()
        if progress:
            print(f"[{k + 1}/{len(entries)}] {_opinfo_key(o)} {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return rows


def _row_ops(row: dict[str, Any]) -> list[str]:
    """The core ops a sample checks: those in its graph, and the op it calls where torch.export
    decomposed that away."""
    return row.get("ops", []) + ([row["decomposed"]] if "decomposed" in row else [])


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-core-op rows and the summary (see the module docstring for what counts)."""
    core, excluded = core_aten_ops()
    per: dict[str, dict[str, Any]] = {
        op: {"samples": 0, "mdf": None, "onnx": None, "spelling": None, "mdf_passes": 0, "onnx_passes": 0,
             "opinfos": []} for op in core}
    for r in rows:
        for op in _row_ops(r):
            if op not in per or "skip" in r:
                continue
            p = per[op]
            p["samples"] += 1
            if r["opinfo"] not in p["opinfos"]:
                p["opinfos"].append(r["opinfo"])
            for leg in ("mdf", "onnx"):
                res = r.get(leg)
                if res == "pass":
                    p[f"{leg}_passes"] += 1
                    p[leg] = "pass"
                elif res is not None and p[leg] != "pass" and p[leg] is None:
                    p[leg] = res
            if r.get("mdf") == "pass":
                spelled = "aten" if op in r.get("aten_in_file", ()) else "onnx"
                p["spelling"] = "onnx" if p["spelling"] == "onnx" else spelled
    ops = {}
    for op, p in per.items():
        if p["samples"] == 0:
            ops[op] = {"status": "untested"}
            continue
        ops[op] = {"mdf": p["mdf"] or "not run", "onnx": p["onnx"] or "not run", "spelling": p["spelling"],
                   "samples": p["samples"], "mdf_passes": p["mdf_passes"], "onnx_passes": p["onnx_passes"],
                   "opinfos": sorted(p["opinfos"])[:5]}
    n = len(core)
    tested = [o for o, r in ops.items() if "status" not in r]
    mdf_ok = [o for o in tested if ops[o]["mdf"] == "pass"]
    onnx_ok = [o for o in tested if ops[o]["onnx"] == "pass"]
    spelled_onnx = [o for o in mdf_ok if ops[o]["spelling"] == "onnx"]
    causes: dict[str, int] = {}
    for o in tested:
        if ops[o]["mdf"] != "pass":
            cls = ops[o]["mdf"].split(":", 1)[0]
            causes[cls] = causes.get(cls, 0) + 1
    summary = {
        "torch": torch.__version__.split("+")[0],
        "core_aten_ops": n,
        "excluded_core_overloads": excluded,
        "tested": len(tested),
        "untested": n - len(tested),
        "mdf_round_trips": len(mdf_ok),
        "onnx_round_trips": len(onnx_ok),
        "round_trip_fraction": round(len(mdf_ok) / n, 4),
        "round_trip_fraction_of_tested": round(len(mdf_ok) / max(len(tested), 1), 4),
        "onnx_round_trip_fraction": round(len(onnx_ok) / n, 4),
        "onnx_spelling": len(spelled_onnx),
        "onnx_spelling_fraction": round(len(spelled_onnx) / max(len(mdf_ok), 1), 4),
        "mdf_failure_causes": dict(sorted(causes.items(), key=lambda kv: -kv[1])),
        "samples": len(rows),
        "samples_skipped": sum(1 for r in rows if "skip" in r),
    }
    return {"summary": summary, "ops": ops}


def build_expect(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The expect file: summary, per-op rows, and the passing samples that prove each pass."""
    result = summarize(rows)
    keys = ("opinfo", "sample", "ops", "decomposed", "mdf", "aten_in_file", "onnx", "skip")
    result["samples"] = [{k: r[k] for k in keys if k in r} for r in rows]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", help="comma-separated OpInfo keys (default: all)")
    ap.add_argument("--json", type=Path, default=EXPECT, help=f"where to write (default {EXPECT})")
    ap.add_argument("--quiet", action="store_true", help="no per-entry progress lines")
    ap.add_argument("--update", action="store_true",
                    help="re-run only --ops and replace their samples in the existing file")
    ap.add_argument("--log", type=Path, help="also write each sample's row there as a JSON line")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = a.ops.split(",") if a.ops else None
    with open(a.log, "w") if a.log else contextlib.nullcontext() as log:
        rows = sweep(names, progress=not a.quiet, log=log)
    if a.update:
        redone = {r["opinfo"] for r in rows} | set(names or ())
        kept = [r for r in load_expect(a.json)["samples"] if r["opinfo"] not in redone]
        order = {_opinfo_key(o): i for i, o in enumerate(opinfos())}
        rows = sorted(kept + rows, key=lambda r: (order.get(r["opinfo"], len(order)), r["sample"]))
    result = build_expect(rows)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0



# ---------------------------------------------------------------------------------------------
# checking a recorded sweep (tests/test_aten_coverage.py)
# ---------------------------------------------------------------------------------------------


def load_expect(path: Path = EXPECT) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def cover(expect: dict[str, Any], leg: str) -> list[tuple[str, int]]:
    """Few recorded samples that together pass ``leg`` for every op recorded as passing it:
    for each such op (in name order) the first passing sample with it, unless one already
    chosen has it.  Returns ``(opinfo, sample index)`` pairs in file order."""
    passing = [r for r in expect["samples"] if r.get(leg) == "pass"]
    chosen: list[dict[str, Any]] = []
    for op in sorted(o for o, r in expect["ops"].items() if r.get(leg) == "pass"):
        if any(op in _row_ops(r) for r in chosen):
            continue
        chosen.append(next(r for r in passing if op in _row_ops(r)))
    order = {id(r): i for i, r in enumerate(expect["samples"])}
    return [(r["opinfo"], r["sample"]) for r in sorted(chosen, key=lambda r: order[id(r)])]


def rerun(pairs: Iterable[tuple[str, int]], legs: Iterable[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """Run the samples ``(opinfo, index)`` again through ``legs``."""
    by_info: dict[str, list[int]] = {}
    for name, i in pairs:
        by_info.setdefault(name, []).append(i)
    out = {}
    entries = {_opinfo_key(o): o for o in opinfos(by_info)}
    for name, idx in by_info.items():
        with _quiet():
            for i, s in samples_of(entries[name], idx):
                out[(name, i)] = run_sample(entries[name], s, legs)
    return out


def compare_runs(expect: dict[str, Any], results: dict[tuple[str, int], dict[str, Any]],
                 legs: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(regressions, improvements)``: recorded passes that now fail, and recorded failures
    that now pass, one line each."""
    recorded = {(r["opinfo"], r["sample"]): r for r in expect["samples"]}
    worse, better = [], []
    for key, new in results.items():
        old = recorded[key]
        for leg in legs:
            was, now = old.get(leg), new.get(leg, new.get("skip"))
            if was == "pass" and now != "pass":
                worse.append(f"{key[0]}[{key[1]}] {leg}: {now}")
            elif was not in (None, "pass") and now == "pass":
                better.append(f"{key[0]}[{key[1]}] {leg}: now passes (was {was})")
    return worse, better


if __name__ == "__main__":
    sys.exit(main())
