"""Regenerate ``tests/fixtures/mdf_corpus/PsyNeuLink/psyneulink_expected.json``: what PsyNeuLink
itself computes for the compositions its MDF example files were exported from.

Run it where psyneulink is installed (it pins modeci_mdf below 0.4.14, so in a virtual
environment of its own, see the README), from the repository root::

    python tests/make_psyneulink_expected.py

For each composition of ``tests/psyneulink_models.py`` it builds the composition, runs it as the
example script does and records, after every trial, the value of every output port of every
mechanism (``{"node": [[port 0 value, port 1 value, ...] per trial]}``), PsyNeuLink's
``Composition.results``, and how the composition's MDF export by this PsyNeuLink differs from
the stored file (the stored files were written by an older PsyNeuLink).
"""

from __future__ import annotations

import datetime
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "mdf_corpus" / "PsyNeuLink"
sys.path.insert(0, str(HERE))


def _plain(x):
    return np.asarray(x, dtype=float).tolist()


def _functions(mdf_json: dict) -> dict[str, list[str]]:
    """node id -> the function names (or 'value' expressions) its functions use, all graphs."""
    out: dict[str, list[str]] = {}

    def walk(g: dict) -> None:
        for nid, n in (g.get("nodes") or {}).items():
            if "nodes" in n:
                walk(n)
                continue
            out[nid] = sorted(str(f.get("function") or "value") for f in (n.get("functions") or {}).values())
    for m in mdf_json.values():
        for g in m["graphs"].values():
            walk(g)
    return out


def run_model(name: str, with_export: bool = False) -> dict:
    """PsyNeuLink's run of composition ``name``; ``with_export``: plus its MDF export (JSON
    text, written after the run, as the example scripts' generator writes it)."""
    import psyneulink as pnl
    from psyneulink_models import MODELS

    pnl.clear_registry()
    comp, kwargs = MODELS[name]()
    mechs = [n for n in comp.nodes if not isinstance(n, pnl.Composition)]
    per_trial: dict[str, list] = {m.name: [] for m in mechs}

    def record() -> None:
        for m in mechs:
            per_trial[m.name].append([_plain(p.parameters.value.get(comp)) for p in m.output_ports])

    comp.run(**kwargs, call_after_trial=record)
    executions = [sorted(n.name for n in step)
                  for step in comp.scheduler.execution_list[comp.default_execution_id]]
    export_text = pnl.get_mdf_serialized(comp, fmt="json")
    export = json.loads(export_text)
    stored = json.loads((FIXTURES / f"{name}.json").read_text())
    fs, fe = _functions(stored), _functions(export)
    out = {
        "trials": len(comp.results),
        "inputs": {m.name: _plain(v) for m, v in kwargs["inputs"].items()},
        "output_ports": per_trial,
        "results": [[_plain(v) for v in r] for r in comp.results],
        "node_runs": {k: sum(k in s for s in executions) for k in [m.name for m in comp.nodes]},
        "export_differs": {nid: {"stored": fs.get(nid), "psyneulink": fe.get(nid)}
                           for nid in sorted(set(fs) | set(fe)) if fs.get(nid) != fe.get(nid)},
    }
    if with_export:
        out["export"] = export_text
    return out


def main() -> None:
    import psyneulink as pnl
    from psyneulink_models import MODELS

    warnings.simplefilter("ignore")
    out = {"psyneulink": pnl.__version__, "date": datetime.date.today().isoformat(),
           "made_by": "tests/make_psyneulink_expected.py", "models": {}}
    for name in MODELS:
        print(name, flush=True)
        out["models"][name] = run_model(name)
    path = FIXTURES / "psyneulink_expected.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
