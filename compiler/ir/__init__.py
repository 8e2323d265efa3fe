"""The torchmdf SSA IR (``torchmdf.ir``)."""

from ._core import (
    NO_PROVENANCE,
    UNKNOWN,
    Dim,
    Graph,
    Node,
    Provenance,
    StateVar,
    TensorType,
    Value,
    ValueRole,
)
from ._printer import format_node, print_graph
from ._signature import GraphSignature, InputMutation
from ._verifier import verify

__all__ = [
    "Dim", "Graph", "Node", "Value", "TensorType", "Provenance", "StateVar", "UNKNOWN",
    "NO_PROVENANCE", "verify", "print_graph", "format_node", "ValueRole", "GraphSignature", "InputMutation",
]

from ._regions import captured_values, drive, inline_region, inner_first  # noqa: E402 - regions

__all__ += ["captured_values", "drive", "inline_region", "inner_first"]
