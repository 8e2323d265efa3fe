"""Nested graphs in MDF files against the oracle and the spec (issue 11's leftovers).

* modeci_mdf (the oracle) is run on files we write with an ``onnx::Loop`` and an ``onnx::If``
  nested graph.  modeci_mdf 0.4.15 cannot evaluate either: ``modeci_mdf/functions/onnx.py``
  builds its ONNX function table with ``ops_blacklist = ["Loop", "Scan", "If"]``, so
  ``EvaluableGraph.evaluate`` ends in "Could not evaluate expression [onnx::Loop] ...".  The
  tests pin that reason, and turn into a comparison with torchmdf's result the day a
  modeci_mdf runs them.
* The MDF v0.4 specification has no graph-in-node form: a Node's children are input_ports,
  functions, parameters and output_ports (``docs/MDF_specification.json``, modeci_mdf's
  ``Node`` class the same), a Graph's ``nodes`` are Nodes.  The only nested forms in the wild
  are the graph-valued parameter of modeci_mdf's ONNX importer (lowered to regions) and the
  graph its PyTorch importer puts into ``nodes`` (the shared ``PyTorch/ddm.json``), which
  drops the Loop node itself -- its edges name ``Loop_11_12``, which does not exist, and the
  starting value never reaches the loop -- so it is refused with a located error
  (``tests/test_mdf_frontend.py``).
"""

from __future__ import annotations

import json

import pytest
import torch
from test_control_flow_script_mdf import _loop_file

from torchmdf import mdf
from torchmdf.api import emit
from torchmdf.frontends.torchscript import lower_scripted
from torchmdf.passes import run_passes
from torchmdf.verify import verify_mdf_file


def _loop_path(tmp_path):
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(_loop_file()))
    return path


class Branch(torch.nn.Module):
    """A data-dependent if and nothing else (the file's default inputs take the else branch)."""

    def forward(self, x):
        if bool(x.sum() > 0):
            y = torch.relu(x) * 2.0
        else:
            y = x - 1.0
        return y


def _if_path(tmp_path):
    g, _ = run_passes(lower_scripted(Branch(), (torch.tensor([1.0, -2.0]),)), None)
    path = tmp_path / "branchy.json"
    mdf.save(emit(g, target="mdf"), path)
    return path


@pytest.mark.parametrize("make, op", [(_loop_path, "onnx::Loop"), (_if_path, "onnx::If")])
def test_modeci_mdf_on_our_control_flow_files(tmp_path, make, op):
    pytest.importorskip("modeci_mdf")
    from modeci_mdf.functions.standard import mdf_functions

    path = make(tmp_path)
    assert op in path.read_text()
    result = verify_mdf_file(str(path))
    oracle = next(p for p in result.paths if p.name.startswith("modeci_mdf"))
    ours = next(p for p in result.paths if p.name.startswith("IR interpreter"))
    assert ours.outputs and ours.failed is None
    if oracle.skipped is None:  # a modeci_mdf that runs control flow must agree with torchmdf
        assert oracle.ok and oracle.outputs and not result.differs, oracle
        return
    assert op not in mdf_functions  # the reason: its ONNX table leaves Loop/If/Scan out
    assert f"Could not evaluate expression [{op}]" in oracle.skipped


def test_the_loop_file_runs_in_torchmdf(tmp_path):
    """What modeci_mdf cannot run, torchmdf does: the loop file's value by hand."""
    result = verify_mdf_file(str(_loop_path(tmp_path)))
    ours = next(p for p in result.paths if p.name.startswith("IR interpreter"))
    v = 1.0
    for _ in range(50):
        v = v * 2 + 0.5
        if not v < 100.0:
            break
    (got,) = [t for t in ours.outputs.values()]
    assert float(torch.as_tensor(got)) == v
