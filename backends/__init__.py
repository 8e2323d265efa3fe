"""Backends: everything the IR is emitted as, one module each (``mdf``, ``fx``, ``onnx``), and
the registry that names them.

:func:`register_backend` is the one extension point: ``torchmdf.emit``, ``torchmdf.compile``
(``target=name``) and the command line (``convert -o OUT``, by OUT's suffix, or ``--target``)
all find a backend here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

from torchmdf.errors import TorchMDFError
from torchmdf.named_registry import NamedRegistry, normalize_suffixes

EmitFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Backend:
    """One way out of the IR: ``emit(graph, **options)`` returns the target's object;
    ``write(result, path, **options)`` puts it in a file (for the CLI) where the target has
    files, claimed by ``suffixes``."""

    name: str
    emit: EmitFn
    suffixes: tuple[str, ...] = ()
    write: Callable[..., Any] | None = None
    doc: str = ""


_BACKENDS: NamedRegistry[Backend] = NamedRegistry("backend")


def register_backend(name: str, emit: EmitFn, *, suffixes: Sequence[str] = (),
                     write: Callable[..., Any] | None = None, doc: str = "", replace: bool = False) -> Backend:
    """Make ``emit(graph, **options)`` the backend ``name``: ``compile(..., target=name)``,
    ``emit(graph, target=name)`` and the CLI use it.  ``write(result, path)`` and ``suffixes``
    let ``torchmdf convert IN -o OUT`` write its result.  Twice the same name is an error
    unless ``replace``."""
    if not name or not isinstance(name, str) or not callable(emit):
        raise TorchMDFError(f"register_backend needs a name and a callable emit, not {name!r}, {emit!r}")
    return _BACKENDS.add(Backend(name, emit, normalize_suffixes(suffixes), write,
                                 doc or (emit.__doc__ or "").strip()), replace=replace)


def unregister_backend(name: str) -> None:
    _BACKENDS.remove(name)


def backends() -> dict[str, Backend]:
    """The registered backends by name, in registration order."""
    return _BACKENDS.all()


def get_backend(name: str) -> Backend:
    be = _BACKENDS.get(name)
    if be is None:
        raise TorchMDFError(f"unknown target {name!r}", hint=f"choose one of {', '.join(_BACKENDS.all())}")
    return be


def _writes(be: Backend) -> bool:
    return be.write is not None


def backend_for_path(path: str | os.PathLike) -> Backend:
    """The backend that writes files like ``path`` (newest registration first)."""
    be = _BACKENDS.for_path(path, _writes)
    if be is None:
        raise TorchMDFError(f"{os.fspath(path)}: no backend writes files with this suffix",
                            hint=f"known suffixes: {_BACKENDS.known_suffixes(_writes)}")
    return be


# ---------------------------------------------------------------------------------------------
# The built-in backends
# ---------------------------------------------------------------------------------------------


def _emit_mdf(graph, **options):
    from .mdf import emit_mdf

    return emit_mdf(graph, **options)


def _write_mdf(model, path, *, weights: str = "auto") -> None:
    from torchmdf.mdf import save

    save(model, path, weights=weights)


def _emit_fx(graph, **options):
    from .fx import emit_fx

    if graph.metadata.get("mdf_source"):  # an MDF model's free inputs default to the file's values
        options.setdefault("input_defaults", True)
    return emit_fx(graph, **options)


def _emit_onnx(graph, **options):
    from .onnx import emit_onnx

    return emit_onnx(graph, **options)


def _write_onnx(proto, path, **options) -> None:
    import onnx

    from torchmdf.mdf.io import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())
    onnx.checker.check_model(os.fspath(path))


def _emit_ir(graph, **options):
    return graph


def _write_ir(graph, path, **options) -> None:
    from torchmdf.mdf.io import atomic_write_bytes

    atomic_write_bytes(path, (str(graph) + "\n").encode("utf-8"))


register_backend("mdf", _emit_mdf, suffixes=(".json", ".yaml", ".yml"), write=_write_mdf,
                 doc="a torchmdf.mdf.Model (MDF JSON/YAML files)")
register_backend("fx", _emit_fx, doc="a torch.fx.GraphModule")
register_backend("onnx", _emit_onnx, suffixes=(".onnx",), write=_write_onnx, doc="an onnx.ModelProto")
register_backend("ir", _emit_ir, suffixes=(".ir",), write=_write_ir, doc="the torchmdf.ir.Graph itself")

__all__ = ["Backend", "register_backend", "unregister_backend", "backends", "get_backend", "backend_for_path"]
