"""The fitting example recovers FitzHugh-Nagumo's external current through simulate's
gradients (issue 12, item 5)."""

from __future__ import annotations

import re

import torch

import torchmdf
from torchmdf.examples import run_example
from torchmdf.examples.fit_fitzhugh_nagumo import DT, IEXT, OUT, build_model, fit


def test_the_fit_recovers_the_current_from_a_distant_start():
    model = build_model()
    with torch.no_grad():
        target = torchmdf.simulate(model, steps=120, dt=DT, params={IEXT: 0.35})[OUT]
    got, losses = fit(model, target, steps=120, start=0.9)
    assert abs(got - 0.35) < 1e-6
    assert losses[-1] < 1e-12 < losses[0]


def test_the_built_model_is_the_shared_fn_file(mdf_examples):
    ours = torchmdf.simulate(build_model(), steps=50, dt=DT)[OUT]
    shared = torchmdf.simulate(str(mdf_examples / "MDF/FN.mdf.json"), steps=50, dt=DT)["FNpop_0.OUTPUT"]
    torch.testing.assert_close(ours, shared, rtol=1e-12, atol=1e-12)


def test_the_example_runs_end_to_end(tmp_path, capsys):
    assert run_example("fit_fitzhugh_nagumo", ["--out", str(tmp_path), "--steps", "80", "--true-iext", "0.3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"recovered Iext: max abs diff \S+ \(tolerance 0.0001\) ok", out)
    assert (tmp_path / "fitzhugh_nagumo.json").is_file()
