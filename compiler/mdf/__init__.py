"""The MDF side's data layer (``torchmdf.mdf``): the MDF v0.4 object model, JSON/YAML I/O,
validation and the whitelisted expression language."""

from .expressions import parse_expression
from .io import dumps, load, loads, save
from .model import (
    Condition,
    ConditionSet,
    Edge,
    Function,
    Graph,
    InputPort,
    Model,
    Node,
    OutputPort,
    Parameter,
    ParameterCondition,
)
from .standard_functions import STANDARD_FUNCTIONS, is_known_function
from .validate import check, validate
from .weights import ExternalWeightsWarning, inline_weights

__all__ = [
    "Model", "Graph", "Node", "InputPort", "OutputPort", "Parameter", "ParameterCondition",
    "Function", "Edge", "Condition", "ConditionSet", "load", "save", "loads", "dumps", "validate",
    "check", "parse_expression", "is_known_function", "STANDARD_FUNCTIONS", "inline_weights",
    "ExternalWeightsWarning",
]
