"""The MDF side's data layer (``torchmdf.mdf``): the MDF v0.4 object model, JSON/YAML I/O,
validation and the whitelisted expression language."""

from . import model as _model
from .expressions import parse_expression
from .functions import STANDARD_FUNCTIONS, is_known_function
from .io import dumps, load, loads, save
from .validate import check, validate
from .weights import ExternalWeightsWarning, inline_weights

#: The object model's classes (see :mod:`torchmdf.mdf.model`).
Model, Graph, Node, InputPort, OutputPort, Parameter, ParameterCondition, Function, Edge, Condition, \
    ConditionSet = _model.CLASSES

__all__ = [
    "Model", "Graph", "Node", "InputPort", "OutputPort", "Parameter", "ParameterCondition",
    "Function", "Edge", "Condition", "ConditionSet", "load", "save", "loads", "dumps", "validate",
    "check", "parse_expression", "is_known_function", "STANDARD_FUNCTIONS", "inline_weights",
    "ExternalWeightsWarning",
]
