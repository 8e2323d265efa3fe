"""The op registry (``torchmdf.ops``): one entry per op."""

from . import library as _library  # noqa: F401 - registers the built-in ops
from .registry import (
    Attr,
    OpDef,
    attach,
    define,
    fx_lowering,
    get,
    lookup,
    names,
    op,
    register,
    require_all,
    resolve_aten,
    shape_function,
)

__all__ = ["Attr", "OpDef", "attach", "define", "fx_lowering", "get", "lookup", "names", "op", "register",
           "require_all", "resolve_aten", "shape_function"]
