"""Two more ways in, for the command line and ``compile``: a saved ``torch.export`` program
(``model.pt2``, by suffix) and a user's own Python factory (``module.py:factory``, chosen by
``method="factory"``; the CLI picks it from the spelling).  Both are registered as frontends
when this module is imported (the CLI imports it).

A factory is a function in a Python file the user names; it takes no arguments and returns
``(model, example_inputs)``.  Importing the file runs the user's own code, as ``python
module.py`` would: name only files you trust.  A ``.pt2`` file is read by
``torch.export.load``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ConversionError
from .frontends import register_frontend

FACTORY_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def is_factory_spec(obj: Any) -> bool:
    """Whether ``obj`` is written ``module.py:factory``."""
    return isinstance(obj, str) and FACTORY_SPEC.match(obj) is not None


def load_factory(spec: str) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """Import ``module.py`` and call its ``factory()``: ``(model, example_inputs)``."""
    m = FACTORY_SPEC.match(spec)
    if m is None:
        raise ConversionError(f"{spec!r} is not module.py:factory", hint="e.g. torchmdf convert net.py:make -o net.json")
    path, name = Path(m.group("file")), m.group("name")
    if not path.is_file():
        raise ConversionError("no such file", location=str(path))
    mod_name = f"_torchmdf_factory_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConversionError("cannot import this file", location=str(path))
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(mod_name, None)
        raise ConversionError(f"importing it failed: {type(e).__name__}: {e}", location=str(path)) from e
    factory = getattr(module, name, None)
    if not callable(factory):
        found = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise ConversionError(f"has no function {name!r}", location=str(path),
                              hint=f"functions there: {', '.join(found[:10]) or '(none)'}")
    try:
        result = factory()
    except Exception as e:
        raise ConversionError(f"{name}() failed: {type(e).__name__}: {e}", location=str(path)) from e
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise ConversionError(f"{name}() must return (model, example_inputs), got {type(result).__name__}",
                              location=str(path))
    model, inputs = result
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    return model, inputs


def load_pt2(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """A program saved by ``torch.export.save``."""
    import logging
    import zipfile

    if not Path(path).is_file():
        raise ConversionError("no such file", location=os.fspath(path))
    if not zipfile.is_zipfile(path):
        raise ConversionError("not a torch.export program (a .pt2 file is a zip archive)", location=os.fspath(path))
    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.ERROR)  # torch logs a traceback of its own before raising
    try:
        return torch.export.load(os.fspath(path))
    except Exception as e:
        raise ConversionError(f"not a torch.export program: {type(e).__name__}: {str(e)[:200]}",
                              location=os.fspath(path)) from e
    finally:
        log.setLevel(level)


def pt2_example_inputs(ep: torch.export.ExportedProgram) -> tuple[Any, ...] | None:
    """The example inputs saved with the program (torch >= 2.5 keeps them), else None."""
    saved = getattr(ep, "example_inputs", None)
    if not saved:
        return None
    args, kwargs = saved
    return None if kwargs else tuple(args)


def _lower_pt2(obj: Any, example_inputs: Sequence[Any] | None = None, **options: Any) -> Any:
    from .frontends import lower_pytorch

    return lower_pytorch(load_pt2(obj), example_inputs)


def _lower_factory(obj: Any, example_inputs: Sequence[Any] | None = None, **options: Any) -> Any:
    from .api import lower

    model, inputs = load_factory(os.fspath(obj))
    return lower(model, example_inputs if example_inputs is not None else inputs, **options)


register_frontend("pt2", _lower_pt2, suffixes=(".pt2",), doc="a torch.export program saved with torch.export.save")
register_frontend("factory", _lower_factory,
                  doc="module.py:factory, a function returning (model, example_inputs)")
