"""Passes over the torchmdf IR (``torchmdf.passes``): the infrastructure and the built-ins,
one module each.  Built-ins are selectable by name in ``compile(..., passes=[...])``."""

from ._infra import (
    FunctionPass,
    Instrumentation,
    Pass,
    PassManager,
    PassRecord,
    PassResult,
    available_passes,
    get_pass,
    graph_pass,
    parse_pass_spec,
    pass_options,
    register_pass,
    run_passes,
    split_pass_list,
)
from .batch_trials import BatchTrials, batch_trials
from .canonicalize import Canonicalize, Rewriter
from .eliminate_common_subexpressions import EliminateCommonSubexpressions
from .eliminate_dead_code import EliminateDeadCode
from .fold_constants import FoldConstants
from .infer_shapes import InferShapes
from .integrate import Integrate
from .parameters_to_inputs import ParametersToInputs

DEFAULT_PIPELINE: list[str] = [
    "fold_constants",
    "canonicalize",
    "infer_shapes",
    "eliminate_dead_code",
    "eliminate_common_subexpressions",
]
"""The passes ``compile`` runs when ``passes=None``."""

__all__ = [
    "Pass", "PassResult", "PassManager", "FunctionPass", "Instrumentation", "PassRecord",
    "register_pass", "graph_pass", "get_pass", "available_passes", "run_passes", "pass_options",
    "parse_pass_spec", "split_pass_list",
    "EliminateDeadCode", "EliminateCommonSubexpressions", "FoldConstants", "Canonicalize", "Rewriter",
    "InferShapes", "DEFAULT_PIPELINE", "Integrate", "ParametersToInputs", "BatchTrials", "batch_trials",
]
