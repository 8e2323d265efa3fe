"""Fuzzing torch -> MDF -> torch: random nn.Modules (with torch.cond) through every torch
frontend and the FX, MDF file and ONNX backends."""

from __future__ import annotations

import pytest
import torch
from fuzz_profiles import examples
from hypothesis import given, settings

from torchmdf.testing import check_roundtrip, modules


@given(modules())
def test_random_modules_round_trip_through_export(model_and_inputs):
    # torch.cond compiles through dynamo, whose guard caches otherwise grow with every example
    # and slow each later one (the long profile's rate fell from 43 to 12 examples a minute)
    torch._dynamo.reset()
    model, inputs = model_and_inputs
    check_roundtrip(model, inputs)


@pytest.mark.property
@pytest.mark.parametrize("frontend", ["fx", "torchscript"])
def test_random_modules_round_trip_through_fx_and_torchscript(frontend):
    @settings(max_examples=examples(15))
    @given(modules(control_flow=False))
    def prop(model_and_inputs):
        model, inputs = model_and_inputs
        check_roundtrip(model, inputs, frontend=frontend, onnx=False)

    prop()


def test_roundtrip_check_can_fail():
    class Lying(torch.nn.Module):
        """Returns another value in eager mode than it exports (a stand-in for a wrong converter)."""

        def forward(self, x):
            if torch.compiler.is_compiling():
                return x
            return x + 1

    with pytest.raises(AssertionError, match="differs"):
        check_roundtrip(Lying(), (torch.randn(2, 3),), onnx=False)


@pytest.mark.property
@pytest.mark.parametrize("frontend", [None, "trace", "torchscript"])
def test_random_modules_with_a_dynamic_batch(frontend):
    """Converted with ``dynamic_batch=True`` through each torch frontend: equal at the example's
    batch size and at one more row, through FX, the MDF file and ONNX."""
    @settings(max_examples=examples(8))
    @given(modules(control_flow=False))
    def prop(model_and_inputs):
        model, (x,) = model_and_inputs
        if x.shape[0] == 1:  # sizes 0 and 1 are specialized
            x = torch.cat([x, x])
        check_roundtrip(model, (x,), frontend=frontend, dynamic_batch=True)

    prop()
