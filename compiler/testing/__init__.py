"""torchmdf.testing: property-based fuzzing of torchmdf, for the project's tests and for users'
own models and passes.

Hypothesis strategies (random IR graphs over the op registry with regions, random
``nn.Module``\\ s, random MDF models, mutations of MDF files) and ready-made checks
(:func:`check_roundtrip`, :func:`check_pass`, :func:`check_file_roundtrip`,
:func:`check_simulation_equivalence`, :func:`check_bad_input`).  Needs ``hypothesis`` (the
``test`` extra); ``import torchmdf`` does not.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as e:  # pragma: no cover - the test extra is installed in CI
    raise ImportError("torchmdf.testing needs hypothesis: pip install 'torchmdf[test]' "
                      "(or pip install hypothesis)") from e

from ._checks import (
    assert_outputs_close,
    check_bad_input,
    check_file_roundtrip,
    check_graph_backends,
    check_pass,
    check_pass_on,
    check_roundtrip,
    check_simulation_equivalence,
    onnxruntime_outputs,
    reference_trajectories,
)
from ._ir_graphs import EXCLUDED_OPS, GraphCase, drawable_ops, graph_inputs, ir_graphs
from ._mdf_models import HOSTILE_VALUES, document_text, mdf_documents, mdf_models, mutated_documents
from ._modules import modules

__all__ = [
    "EXCLUDED_OPS", "GraphCase", "HOSTILE_VALUES", "assert_outputs_close", "check_bad_input",
    "check_file_roundtrip", "document_text", "mdf_documents", "mdf_models", "modules", "mutated_documents", "check_graph_backends",
    "check_pass", "check_pass_on", "check_roundtrip", "check_simulation_equivalence", "drawable_ops",
    "graph_inputs", "ir_graphs", "onnxruntime_outputs", "reference_trajectories",
]
