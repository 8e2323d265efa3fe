"""torchmdf: a compiler between PyTorch and MDF (the ModECI Model Description Format)
through one SSA IR.  See ``DESIGN.md`` and the README."""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors, ir, limits, ops  # noqa: E402
from .errors import (  # noqa: E402
    ConversionError,
    ExecutionError,
    ExpressionError,
    PassError,
    ShapeError,
    TorchMDFError,
    UnknownKeyWarning,
    UnsupportedOpError,
    ValidationError,
    VerificationError,
)


def __getattr__(name):  # lazy: keep `import torchmdf` light and free of import cycles
    if name in ("compile", "lower", "emit", "simulate", "simulation_graph"):
        from . import api

        return getattr(api, name)
    if name == "register_frontend":
        from .frontends import register_frontend

        return register_frontend
    if name == "register_backend":
        from torchmdf.backends import register_backend

        return register_backend
    if name in ("passes", "backends", "mdf", "frontends", "interfaces"):
        import importlib

        return importlib.import_module(f"torchmdf.{name}")
    raise AttributeError(f"module 'torchmdf' has no attribute {name!r}")


__all__ = [
    "compile", "lower", "emit", "simulate", "simulation_graph", "ir", "ops", "errors", "passes", "backends", "mdf",
    "TorchMDFError", "ValidationError", "ExpressionError", "VerificationError", "UnsupportedOpError",
    "ShapeError", "ConversionError", "PassError", "ExecutionError", "limits", "__version__",
    "UnknownKeyWarning", "register_frontend", "register_backend",
]
