"""Shared test setup: hypothesis profiles (``ci``, the default: derandomized, 30 examples per
property; ``long``: 10,000), paths to the shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from fuzz_profiles import LONG_EXAMPLES
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=100, deadline=None)
# HYPOTHESIS_PROFILE=long: 10,000 examples per property (hours; run nice'd in the background)
settings.register_profile("long", max_examples=LONG_EXAMPLES, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "mdf-examples"

torch.manual_seed(0)


@pytest.fixture
def mdf_examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip("../shared/mdf-examples is not present")
    return EXAMPLES


def pytest_collection_modifyitems(config, items):
    for item in items:  # -m property: every hypothesis property (@given ones and those marked)
        if "hypothesis" in item.keywords:
            item.add_marker(pytest.mark.property)
    if not os.environ.get("TORCHMDF_SWEEPS"):
        skip_sweep = pytest.mark.skip(reason="a long sweep (tens of minutes): set TORCHMDF_SWEEPS=1")
        for item in items:
            if "sweep" in item.keywords:
                item.add_marker(skip_sweep)
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
