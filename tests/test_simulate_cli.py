"""``torchmdf simulate --param node.p=[...]``: a list for a scalar parameter is a batch, one
CSV column per value (issue 12)."""

from __future__ import annotations

import csv

import pytest

from torchmdf import mdf
from torchmdf.cli import main


def _ramp(path):
    node = mdf.Node("N", parameters=[mdf.Parameter("rate", value=1.0),
                                     mdf.Parameter("x", default_initial_value=0.0, time_derivative="rate")],
                    output_ports=[mdf.OutputPort("out", value="x")])
    mdf.save(mdf.Model("ramp", graphs=[mdf.Graph("g", nodes=[node])]), path)


def test_a_list_param_is_a_batch_of_columns(tmp_path, capsys):
    src, out = tmp_path / "ramp.json", tmp_path / "t.csv"
    _ramp(src)
    assert main(["simulate", str(src), "--steps", "4", "--dt", "0.5", "--param", "N.rate=[1, 2, 4]",
                 "--csv", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["step", "t", "N.out[0]", "N.out[1]", "N.out[2]"]
    got = [float(x) for r in rows[1:] for x in r[2:]]
    assert got == pytest.approx([0, 0, 0, 0.5, 1, 2, 1, 2, 4, 1.5, 3, 6])  # x = rate * t
    assert "4 steps of dt=0.5" in capsys.readouterr().out


def test_an_expression_param_is_still_set_in_the_model(tmp_path, capsys):
    src, out = tmp_path / "ramp.json", tmp_path / "t.csv"
    _ramp(src)
    assert main(["simulate", str(src), "--steps", "3", "--dt", "1", "--param", "N.rate=2 * 3", "--csv", str(out)]) == 0
    assert [float(r[2]) for r in list(csv.reader(out.open()))[1:]] == [0.0, 6.0, 12.0]
