"""Regenerate ``tests/fixtures/mdf_corpus``: model files of the public MDF example corpus
(``examples/`` of https://github.com/ModECI/MDF, Apache-2.0) and ``expected.json``, what
modeci_mdf computes for each of them.  Not run by the test suite; needs modeci_mdf.

    python tests/make_corpus_expected.py /path/to/MDF/examples [--out tests/fixtures/mdf_corpus]

For every ``.json``/``.yaml`` model file under the examples folder (other tools' own files --
NeuroMLlite, WebGME packaging, benchmark results -- are left out by name), each in a child
process with a timeout: ``load_mdf``, ``EvaluableGraph(model.graphs[0])``, ``evaluate()`` once
and ``evaluate(time_increment=0.01)`` four times; the value of every node's output ports after
the first and the fifth evaluation goes to ``expected.json["ok"][file]``.  Arrays of more than
``BIG`` elements are kept as shape, sum, sum of absolute values and the first values.  Files
modeci_mdf cannot load or run go to ``anchor_fails`` with its error.  Files over ``MAX_BYTES``
are not copied (their expected values are not kept either) and are listed in ``too_big``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIG = 64
MAX_BYTES = 400_000
STEPS = 5
DT = 0.01
TIMEOUT = 600

#: Files under examples/ that are not MDF models.
NOT_MODELS = ("WebGME/package", "WebGME/webgme-setup", "WebGME/mdf_meta", "WebGME/src/",
              "benchmark", "nmllite", "NeuroML/ABCD.json", "NeuroML/FN.json", "NeuroML/Sim",
              "Keras/MNIST")

_CHILD = r"""
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from modeci_mdf.utils import load_mdf
from modeci_mdf.execution_engine import EvaluableGraph
BIG = %d

def enc(v):
    a = np.asarray(v)
    if a.dtype == object:
        try:
            a = np.asarray(a.tolist(), dtype=float)
        except Exception:
            return {"object": repr(v)[:200]}
    if a.dtype.kind not in "biuf":
        return {"object": repr(v)[:200]}
    a = a.astype(np.float64)
    if a.size > BIG:
        return {"shape": list(a.shape), "sum": float(a.sum()), "abs_sum": float(np.abs(a).sum()),
                "first": a.ravel()[:8].tolist()}
    return a.tolist()

def ports(eg):
    out = {}
    for nid, en in eg.enodes.items():
        for pid, op in en.evaluable_outputs.items():
            out[f"{nid}.{pid}"] = enc(op.curr_value)
    return out

m = load_mdf(sys.argv[1])
g = m.graphs[0]
eg = EvaluableGraph(g, verbose=False)
eg.evaluate()
after_1 = ports(eg)
for _ in range(%d):
    eg.evaluate(time_increment=%r)
print("@@RESULT@@" + json.dumps({"graph": g.id, "after_1": after_1, "after_5": ports(eg)}))
""" % (BIG, STEPS - 1, DT)  # noqa: UP031 - a script with braces


def model_files(examples: Path) -> list[str]:
    out = []
    for p in sorted(examples.rglob("*")):
        rel = p.relative_to(examples).as_posix()
        if p.suffix in (".json", ".yaml") and p.is_file() and not any(s in rel for s in NOT_MODELS):
            out.append(rel)
    return out


def run_one(path: Path) -> tuple[str, object]:
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=path.parent)
    except subprocess.TimeoutExpired:
        return "fail", f"timeout after {TIMEOUT} s"
    for line in r.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return "ok", json.loads(line[len("@@RESULT@@"):])
    err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return "fail", (err[-1] if err else f"exit status {r.returncode}")[:300]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("examples", type=Path, help="the examples/ folder of a ModECI/MDF checkout")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "fixtures" / "mdf_corpus")
    ap.add_argument("--only", nargs="*", help="regenerate only these files (paths under examples/)")
    args = ap.parse_args()
    import modeci_mdf

    expected_path = args.out / "expected.json"
    old = json.loads(expected_path.read_text()) if expected_path.is_file() else {}
    ok, fails, too_big = dict(old.get("ok", {})), dict(old.get("anchor_fails", {})), dict(old.get("too_big", {}))
    names = args.only or model_files(args.examples)
    for rel in names:
        src = args.examples / rel
        for d in (ok, fails, too_big):
            d.pop(rel, None)
        size = src.stat().st_size
        if size > MAX_BYTES:
            too_big[rel] = size
            print(f"{rel}: {size} bytes, not kept", flush=True)
            continue
        status, result = run_one(src)
        (ok if status == "ok" else fails)[rel] = result
        dst = args.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        print(f"{rel}: {status}" + ("" if status == "ok" else f" ({result})"), flush=True)
    out = {"source": f"modeci-mdf {modeci_mdf.__version__}; step 1: evaluate(); steps 2-{STEPS}: "
                     f"evaluate(time_increment={DT}); arrays over {BIG} elements as shape/sum/abs_sum/first",
           "ok": dict(sorted(ok.items())), "anchor_fails": dict(sorted(fails.items())),
           "too_big": dict(sorted(too_big.items()))}
    args.out.mkdir(parents=True, exist_ok=True)
    expected_path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(ok)} run in modeci_mdf, {len(fails)} fail there, {len(too_big)} too big", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
