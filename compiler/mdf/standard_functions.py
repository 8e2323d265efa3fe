"""The MDF function ontology as data: what a Parameter's or Function's ``function:`` may name,
the argument names each takes, and the expression each computes.

Names and argument lists are those of ``modeci_mdf.functions.standard`` (modeci-mdf 0.4.15):
the 14 MDF functions, the ACT-R helpers (``actr.*``) and the DDM integrator (``ddm.*``);
``onnx::<Op>`` for every op ``onnx.defs`` knows (inputs and attributes from its schema); and
``aten::<name>`` (any name; the op registry decides later).  :func:`is_known_function` is the
single place that decides what a function name may be, so it can later ask the op registry.

The ``expression`` of an MDF function is MDF expression text over its argument names, written
as modeci_mdf evaluates it (``exp``/``sin``/... are numpy's element-wise functions there); the
MDF frontend lowers a call by substituting the argument values into that expression.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["StandardFunction", "STANDARD_FUNCTIONS", "is_known_function", "get_standard_function",
           "function_argument_names", "onnx_schema", "OnnxSignature", "onnx_signature"]


@dataclass(frozen=True, slots=True)
class StandardFunction:
    """One entry of the MDF function ontology.

    ``kind`` is ``"mdf"`` (closed-form ``expression``), ``"actr"`` or ``"ddm"`` (Python
    helpers in modeci_mdf with no closed form: ``expression`` is None).
    """

    name: str
    arguments: tuple[str, ...]
    expression: str | None
    description: str
    kind: str = "mdf"

    def parsed(self):
        """The expression as a tree (see :mod:`torchmdf.mdf.expressions`), or None."""
        if self.expression is None:
            return None
        from .expressions import parse_expression

        return parse_expression(self.expression, location=f"standard function '{self.name}'")


def _mdf(name: str, args: tuple[str, ...], expr: str, desc: str) -> StandardFunction:
    return StandardFunction(name, args, expr, desc, "mdf")


_V = "variable0"

#: name -> entry, in modeci_mdf's registration order.
STANDARD_FUNCTIONS: dict[str, StandardFunction] = {f.name: f for f in [
    _mdf("linear", (_V, "slope", "intercept"), "(variable0 * slope + intercept)",
         "A linear function, calculated from a slope and an intercept"),
    _mdf("arctan", (_V, "scale"), "scale * arctan(variable0)", "Inverse tangent function"),
    _mdf("arcsin", (_V, "scale"), "scale * arcsin(variable0)", "Inverse sine function"),
    _mdf("arccos", (_V, "scale"), "scale * arccos(variable0)", "Inverse cosine function"),
    _mdf("logistic", (_V, "gain", "bias", "offset"),
         "1/(1 + exp(-1*gain*(variable0 + bias) + offset))", "Logistic function"),
    _mdf("exponential", (_V, "scale", "rate", "bias", "offset"),
         "scale * exp((rate * variable0) + bias) + offset", "Exponential function"),
    _mdf("sin", (_V, "scale"), "scale * sin(variable0)", "Sine function"),
    _mdf("cos", (_V, "scale"), "scale * cos(variable0)", "Cosine function"),
    _mdf("tan", (_V, "scale"), "scale * tan(variable0)", "Tangent function"),
    _mdf("sinh", (_V, "scale"), "scale * sinh(variable0)", "Hyperbolic sine function"),
    _mdf("cosh", (_V, "scale"), "scale * cosh(variable0)", "Hyperbolic cosine function"),
    _mdf("tanh", (_V, "scale"), "scale * tanh(variable0)", "Hyperbolic tangent function"),
    _mdf("MatMul", ("A", "B"), "A @ B", "Matrix multiplication"),
    _mdf("Relu", ("A",), "A * (A > 0)", "Rectified linear function"),
    # ACT-R helpers (modeci_mdf.functions.actr), registered under their bare names.
    *[StandardFunction(n, a, None, "ACT-R helper (modeci_mdf.functions.actr)", "actr") for n, a in [
        ("chunk_to_string", ("chunk",)),
        ("pattern_to_string", ("chunk",)),
        ("change_goal", ("pattern", "curr_goal")),
        ("retrieve_chunk", ("pattern", "dm_chunks", "types")),
        ("match_production", ("production", "context")),
        ("pattern_matching_function", ("productions", "goal", "retrieval")),
        ("update_buffer", ("production", "buffer")),
        ("update_goal", ("production",)),
        ("update_retrieval", ("production",)),
        ("conflict_resolution_function", ("productions",)),
        ("check_termination", ("production",)),
    ]],
    StandardFunction("drift_diffusion_integrator",
                     ("starting_point", "non_decision_time", "drift_rate", "threshold", "noise", "dt"),
                     None, "Euler-Maruyama integration of one drift diffusion trial "
                     "(modeci_mdf.functions.ddm; stochastic)", "ddm"),
]}


def get_standard_function(name: str) -> StandardFunction | None:
    """The ontology entry for a standard (non-ONNX) function name, or None."""
    return STANDARD_FUNCTIONS.get(name)


@functools.lru_cache(maxsize=1024)
def onnx_schema(op: str):
    """The latest ``onnx.defs`` schema of an ONNX op (default domain), or None."""
    import onnx.defs

    try:
        return onnx.defs.get_schema(op) if onnx.defs.has(op) else None
    except Exception:  # onnx raises its own SchemaError for odd names
        return None


@dataclass(frozen=True, slots=True)
class OnnxSignature:
    """What an ONNX op accepts as MDF ``args``: inputs (with which are required, and whether
    the first is variadic) and attributes (with their onnx AttrType name and required flag)."""

    inputs: tuple[str, ...]
    required_inputs: tuple[str, ...]
    variadic: bool
    attributes: dict
    required_attributes: tuple[str, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.inputs) | frozenset(self.attributes)


@functools.lru_cache(maxsize=1024)
def onnx_signature(op: str) -> OnnxSignature | None:
    """The argument names an ``onnx::<op>`` function takes, from its schema; None if unknown."""
    schema = onnx_schema(op)
    if schema is None:
        return None
    opt = type(schema.inputs[0].option) if schema.inputs else None
    inputs, required, variadic = [], [], False
    for i in schema.inputs:
        inputs.append(i.name)
        if opt is not None and i.option == opt.Variadic:
            variadic = True
        if opt is not None and i.option == opt.Single:
            required.append(i.name)
    attrs = {name: a.type.name for name, a in schema.attributes.items()}
    req_attrs = tuple(name for name, a in schema.attributes.items() if a.required)
    return OnnxSignature(tuple(inputs), tuple(required), variadic, attrs, req_attrs)


def is_known_function(name: str) -> bool:
    """Whether ``name`` may appear as a Parameter's or Function's ``function``: an MDF standard
    function (incl. modeci_mdf's ACT-R/DDM helpers), ``onnx::<Op>`` for an op onnx knows, an
    op registered in the registry, or an ``aten::`` op a file may call
    (:func:`torchmdf.ops.registry.file_op_refusal`).  The one place this is decided (to be delegated to the op registry)."""
    if not isinstance(name, str) or not name:
        return False
    if name in STANDARD_FUNCTIONS:
        return True
    if name.startswith("onnx::"):
        return onnx_schema(name[6:]) is not None
    if "::" in name:  # aten:: (the file allow-list) and any op registered in the registry
        from torchmdf.ops import registry

        return registry.file_op_refusal(name) is None
    return False


def function_argument_names(name: str) -> frozenset[str] | None:
    """The argument names a known function takes, or None when any name is accepted
    (``aten::`` ops, unknown names)."""
    f = STANDARD_FUNCTIONS.get(name)
    if f is not None:
        return frozenset(f.arguments)
    if name.startswith("onnx::"):
        sig = onnx_signature(name[6:])
        return sig.names if sig is not None else None
    return None
