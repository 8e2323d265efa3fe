"""The error hierarchy.  Every error torchmdf raises derives from :class:`TorchMDFError`
and says *where* the problem is (file, MDF path, IR node, nn.Module path, source line)."""

from __future__ import annotations

from typing import Any, Iterable


class TorchMDFError(Exception):
    """Base class of every torchmdf error.

    ``location`` is a human-readable place ("file 'm.json' > graph 'g' > node 'A'",
    "node %3 = onnx::Gemm (fc1, model.py:12)"); it is prefixed to the message.
    """

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None):
        self.raw_message = message
        self.location = location
        self.hint = hint
        text = f"{location}: {message}" if location else message
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class ValidationError(TorchMDFError):
    """An MDF model or file is malformed (wrong type, unknown reference, hostile expression...).

    ``problems`` holds every problem found when several are reported at once.
    """

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None,
                 problems: Iterable["ValidationError"] | None = None):
        self.problems = list(problems) if problems is not None else []
        super().__init__(message, location=location, hint=hint)


class ExpressionError(ValidationError):
    """An MDF expression is not in the whitelisted grammar or cannot be parsed."""


class VerificationError(TorchMDFError):
    """The IR broke one of its invariants (SSA, use lists, order, types)."""


class UnsupportedOpError(TorchMDFError):
    """One or more ops have no registry entry or cannot be converted.

    ``ops`` lists ``(op_name, location)`` pairs: every offending op of the model at once.
    """

    def __init__(self, ops: Iterable[tuple[str, Any]], *, hint: str | None = None,
                 message: str | None = None):
        self.ops = [(name, str(loc) if loc is not None else None) for name, loc in ops]
        lines = [message or f"{len(self.ops)} unsupported op(s):"]
        for name, loc in self.ops:
            lines.append(f"  - {name}" + (f" at {loc}" if loc else ""))
        super().__init__("\n".join(lines), hint=hint)


class ShapeError(TorchMDFError):
    """Shapes or dtypes disagree (declared vs inferred, wrong input shape)."""


class ConversionError(TorchMDFError):
    """A frontend or backend could not convert a construct."""


class ExecutionError(TorchMDFError):
    """A compiled module failed at run time; located at the IR node (and so the MDF node and
    parameter, or the nn.Module path and source line) whose code failed."""


class PassError(TorchMDFError):
    """A pass failed or left the graph in a state its contract forbids."""


__all__ = [
    "TorchMDFError", "ValidationError", "ExpressionError", "VerificationError",
    "UnsupportedOpError", "ShapeError", "ConversionError", "PassError", "ExecutionError", "UnknownKeyWarning",
]


class UnknownKeyWarning(UserWarning):
    """A model file has keys MDF does not define (older exporters write some, e.g. ``name``
    on edges); they are kept and written back.  ``load(..., strict=True)`` refuses them."""
