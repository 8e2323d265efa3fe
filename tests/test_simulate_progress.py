"""``simulate(progress=...)`` reports completed steps on every path (single run, batch,
Threshold conditions in Python and as masks, compiled chunks), and the command line's bar is
driven by it."""

from __future__ import annotations

import sys

import pytest
import torch
from test_simulate_conditions import _threshold_model  # one model: A adds rate until x >= 5

import torchmdf
import torchmdf.simulation as simulation
from torchmdf.cli import _with_progress

FN = "MDF/FN.mdf.json"


def _calls(path, steps, **kw):
    seen = []
    out = torchmdf.simulate(path, steps=steps, progress=lambda d, t: seen.append((d, t)), **kw)
    return out, seen


def _check(seen, total):
    done = [d for d, _ in seen]
    assert seen and all(t == total for _, t in seen)
    assert done == sorted(done) and done[-1] == total and done[0] >= 1


@pytest.mark.parametrize("params", [None, {"FNpop_0.Iext": torch.tensor([0.0, 0.5, 1.0])}])
def test_progress_counts_every_step(mdf_examples, params):
    out, seen = _calls(str(mdf_examples / FN), 25, dt=5e-5, params=params)
    _check(seen, 25)
    assert len(seen) == 25  # one call per step
    ref = torchmdf.simulate(str(mdf_examples / FN), steps=25, dt=5e-5, params=params)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0)


@pytest.mark.parametrize("batch", [None, 4])
def test_progress_under_a_threshold_condition(batch):
    params = None if batch is None else {"A.rate": torch.linspace(0.5, 2.0, batch, dtype=torch.float64)}
    _, seen = _calls(_threshold_model(), 6, params=params)
    _check(seen, 6)


def test_progress_of_the_reference_scheduler_counts_every_element(monkeypatch):
    monkeypatch.setattr(simulation, "_REFERENCE_SCHEDULER", True)
    params = {"A.rate": torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)}
    _, seen = _calls(_threshold_model(), 5, params=params)
    _check(seen, 15)


def test_progress_must_be_callable(mdf_examples):
    with pytest.raises(torchmdf.TorchMDFError, match="progress must be a callable"):
        torchmdf.simulate(str(mdf_examples / FN), steps=2, progress=3)


def test_the_command_line_bar_follows_the_steps(monkeypatch):
    """At a terminal, a long run's bar gets a callback whose updates reach rich's task."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    got = []

    def fake_simulate(progress):
        assert progress is not None
        for i in range(1, 5):
            progress(i * 5_000, 20_000)
            got.append(i)
        return "done"

    assert _with_progress(fake_simulate, 20_000) == "done" and got == [1, 2, 3, 4]
    assert _with_progress(lambda p: p, 10) is None  # a short run: no bar
