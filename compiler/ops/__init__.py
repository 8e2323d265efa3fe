"""The op registry (``torchmdf.ops``): one entry per op."""

from . import library as _library  # noqa: F401 - registers the built-in ops
from .registry import OpDef, get, lookup, names, op, register, require_all, resolve_aten

__all__ = ["OpDef", "get", "lookup", "names", "op", "register", "require_all", "resolve_aten"]
