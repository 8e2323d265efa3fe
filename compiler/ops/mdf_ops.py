"""The MDF standard functions (``mdf::linear`` ...) as registry entries, one per closed-form
entry of :data:`torchmdf.mdf.functions.STANDARD_FUNCTIONS` (where their arguments, formulas
and torch implementations are defined).  Their arguments are all tensor inputs because MDF
lets any argument be an expression."""

from __future__ import annotations

from torchmdf.mdf.functions import STANDARD_FUNCTIONS as _TABLE
from torchmdf.mdf.functions import numpy_result_type

from .registry import op

for _f in _TABLE.values():
    if _f.impl is not None:
        op(f"mdf::{_f.name}", input_names=_f.arguments, mdf_name=_f.name)(_f.impl)

#: The MDF standard functions registered as ``mdf::`` ops, in the ontology's order.
STANDARD_FUNCTIONS = tuple(f.name for f in _TABLE.values() if f.impl is not None)

__all__ = ["STANDARD_FUNCTIONS", "numpy_result_type"]
