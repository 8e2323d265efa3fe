"""Issue 11's acceptance path end to end: models with ``torch.cond``, ``torch.while_loop``,
``scan``/``map`` (torch.export) and scripted ``if``/``while``/``for`` on tensor data (TorchScript)
go torch -> MDF file -> FX module and match the original on inputs that take each branch and
different trip counts."""

from __future__ import annotations

import pytest
import torch
from test_control_flow_script_mdf import CASES as SCRIPT_CASES
from test_control_flow_script_mdf import Branchy
from test_control_flow_torch import CASES as EXPORT_CASES
from test_control_flow_torch import _assert_same, _model

import torchmdf


def _through_file(model, example, tmp_path, method):
    m = torchmdf.compile(model, target="mdf", example_inputs=example, method=method)
    path = tmp_path / "m.json"
    torchmdf.mdf.save(m, path)
    text = path.read_text()
    assert '"graph_' in text  # the regions are nested graphs in the file, not flattened
    return torchmdf.compile(str(path), target="fx")


@pytest.mark.parametrize("name", list(EXPORT_CASES))
def test_export_control_flow_through_an_mdf_file_to_fx(name, tmp_path):
    model, inputs = _model(name)
    gm = _through_file(model, inputs[0], tmp_path, "export")
    with torch.no_grad():
        for args in inputs:
            _assert_same(gm(*args), model(*args))


def test_scripted_control_flow_through_an_mdf_file_to_fx(tmp_path):
    model = Branchy()
    gm = _through_file(model, SCRIPT_CASES[0], tmp_path, "script")
    with torch.no_grad():
        for args in SCRIPT_CASES:
            (y, k), (y0, k0) = gm(*args), model(*args)
            torch.testing.assert_close(y, y0)
            # the loop counter k is a Python int in the original; an MDF file does not record
            # that an output was a Python scalar, so it comes back as a 0-d tensor
            assert int(k) == k0
