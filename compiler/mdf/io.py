"""Reading and writing MDF files (JSON or YAML, by suffix).

Every failure is a :class:`~torchmdf.errors.TorchMDFError` that names the file and, for syntax
errors, the line and column (the parser's exception is kept as ``__cause__``).  ``save`` is
atomic: the file (and its weights sidecar, if any) is streamed to a temporary file in the target
directory and moved over the target with ``os.replace``, so a failure creates or changes nothing.

Arrays are written one per line in the shortest text that round-trips their dtype, and read
back by numpy in large files (:mod:`torchmdf.mdf.arrays`); ``save(..., weights=...)`` can put
tensors in a safetensors sidecar that ``load`` resolves, checks and memory-maps
(:mod:`torchmdf.mdf.weights`).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any

import yaml

from torchmdf.errors import TorchMDFError, ValidationError
from torchmdf.limits import LIMITS

from . import arrays as _arrays
from . import weights as _weights
from .model import DupDict, Model

__all__ = ["load", "save", "loads", "dumps", "atomic_write_bytes", "read_limited", "FORMATS"]

#: suffix -> format
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}

_YamlLoaderBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _pairs_hook(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        d = DupDict(d)
        d.duplicates = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
    return d


class _Loader(_YamlLoaderBase):  # type: ignore[misc, valid-type]
    """Safe YAML loading that keeps repeated keys visible and refuses aliases (``*name``), which
    MDF never needs and which can expand a small file into an enormous structure."""

    def construct_object(self, node, deep=False):
        if node in self.constructed_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "YAML anchors and aliases (&name, *name) are not supported in MDF files",
                node.start_mark)
        return super().construct_object(node, deep=deep)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    pairs = loader.construct_pairs(node, deep=True)
    try:
        return _pairs_hook(pairs)
    except TypeError:
        raise yaml.constructor.ConstructorError(
            None, None, "a mapping key must be a plain value", node.start_mark) from None


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> list:
    return loader.construct_sequence(node, deep=True)


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)  # a date stays the text it is (as in JSON)


def _refuse(loader: _Loader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML type {node.tag!r} is not allowed in MDF files (only mappings, lists, "
        "strings, numbers, booleans and null)", node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def _where(source: str | None) -> str | None:
    return f"file '{source}'" if source else None


def _parse(text: str, fmt: str, source: str | None) -> Any:
    loc = _where(source)
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=_pairs_hook)
        except json.JSONDecodeError as e:
            if not text.strip():
                raise ValidationError("the file is empty (expected {model id: {...}})", location=loc) from e
            raise ValidationError(f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                                  location=loc) from e
        except RecursionError as e:
            raise ValidationError("invalid JSON: nested too deeply", location=loc) from e
        except ValueError as e:  # an integer of more digits than Python converts
            raise ValidationError(f"invalid JSON: {e}", location=loc) from e
    if fmt == "yaml":
        try:
            return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            what = e.problem or e.context or "syntax error"
            raise ValidationError(f"invalid YAML: {what}{at}", location=loc) from e
        except yaml.YAMLError as e:
            raise ValidationError(f"invalid YAML: {e}", location=loc) from e
        except RecursionError as e:
            raise ValidationError("invalid YAML: nested too deeply", location=loc) from e
        except (ValueError, TypeError, OverflowError) as e:  # e.g. an integer of > 4300 digits
            raise ValidationError(f"invalid YAML: {e}", location=loc) from e
    raise ValidationError(f"unknown format {fmt!r}", location=loc, hint="use 'json' or 'yaml'")


_BSON_SCALARS = (str, int, float, bool, type(None))


def _parse_bson(data: bytes, source: str | None) -> Any:
    """A BSON document (modeci_mdf's third format) as plain dicts and lists; any BSON-only
    type (ObjectId, datetime, binary, code...) is refused, nothing in it is run."""
    loc = _where(source)
    try:
        import bson
    except ImportError as e:
        raise TorchMDFError("reading BSON needs the 'bson' module (pip install pymongo)", location=loc) from e
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationError("BSON is read from bytes, not text", location=loc)
    try:
        doc = bson.decode(bytes(data))
    except RecursionError as e:
        raise ValidationError("invalid BSON: nested too deeply", location=loc) from e
    except Exception as e:  # noqa: BLE001 - bson's errors (InvalidBSON, ValueError, ...)
        raise ValidationError(f"invalid BSON: {e}", location=loc) from e
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:  # explicit stack: any nesting depth
        v, where = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{where}/{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{where}[{i}]") for i, x in enumerate(v))
        elif not isinstance(v, _BSON_SCALARS):  # bson's Int64 is an int
            raise ValidationError(f"invalid BSON: a {type(v).__name__} at {where or '/'} is not an MDF value",
                                  location=loc)
    return doc


def loads(text: str | bytes, format: str = "json", *, validate: bool = True,
          source: str | None = None, weights_dir: str | None = None, strict: bool = False) -> Model:
    """Read a model from JSON or YAML text; ``source`` names the file in error locations.

    External weight references (see :mod:`torchmdf.mdf.weights`) are resolved inside the folder
    ``weights_dir`` (``load`` passes the model file's folder); without it they are an error.

    With ``validate`` (the default) the model is also checked with
    :func:`torchmdf.mdf.check`, so a model that loads is one the compiler can use.  Keys MDF
    does not define are kept (``obj.extra``, written back on save) with an
    :class:`~torchmdf.errors.UnknownKeyWarning`, as modeci_mdf loads them; ``strict=True``
    makes them errors."""
    if format not in ("json", "yaml", "bson"):
        raise ValidationError(f"unknown format {format!r}", location=_where(source),
                              hint="use 'json' or 'yaml'")
    data = _parse_bson(text, source) if format == "bson" else None
    if data is None and isinstance(text, bytes):  # [issue 17] large arrays parsed by numpy (None: not applicable)
        data = _arrays.parse_fast(text, format, lambda t: _parse(t, format, source))
    if data is None and isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ValidationError(f"the file is not UTF-8 text ({e.reason} at byte {e.start})",
                                  location=_where(source)) from e
    from torchmdf.api import gc_paused

    with gc_paused():
        if data is None:
            data = _parse(text, format, source)
        del text
        model = Model.from_dict(data, source=source, strict=strict)
        del data
        if _weights.has_references(model):  # [issue 17] external weights: memory-mapped from the sidecar
            _weights.resolve_references(model, weights_dir)
        if validate:
            from .validate import check

            check(model)
    return model


def _format_for(path: str | os.PathLike, format: str | None) -> str:
    if format is not None:
        if format not in ("json", "yaml"):
            raise ValidationError(f"unknown format {format!r}", location=_where(str(path)),
                                  hint="use 'json' or 'yaml'")
        return format
    suffix = Path(str(path)).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise ValidationError(f"cannot tell the format from the suffix {suffix or '(none)'!r}",
                              location=_where(str(path)), hint="use .json, .yaml or .yml")
    return fmt


def load(source: str | os.PathLike | IO, *, format: str | None = None,
         validate: bool = True, strict: bool = False) -> Model:
    """Load a model from a path or an open file (``.json``, ``.yaml``/``.yml`` by suffix, or
    ``format=``; a path ending ``.bson`` is read as BSON, as modeci_mdf writes it).  Any
    problem raises a TorchMDFError located in the file."""
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        name = str(name) if isinstance(name, (str, os.PathLike)) else None
        fmt = format if format is not None else (_format_for(name, None) if name else "json")
        if fmt not in ("json", "yaml"):
            raise ValidationError(f"unknown format {fmt!r}", location=_where(name))
        cap = LIMITS.max_file_bytes
        try:
            text = source.read(cap + 1)
        except (OSError, UnicodeDecodeError) as e:
            raise TorchMDFError(f"cannot read: {e}", location=_where(name)) from e
        if len(text) > cap:
            raise _too_big(name, None)
        return loads(text, fmt, validate=validate, source=name,
                     weights_dir=os.path.dirname(os.path.abspath(name)) if name else None, strict=strict)
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if name is None:
        raise TorchMDFError(f"load() takes a path or an open file, not {type(source).__name__}")
    fmt = "bson" if format is None and Path(name).suffix.lower() == ".bson" else _format_for(name, format)
    return loads(read_limited(name), fmt, validate=validate, source=name,
                 weights_dir=os.path.dirname(os.path.abspath(name)), strict=strict)


def _too_big(name: str | None, size: int | None) -> TorchMDFError:
    cap = LIMITS.max_file_bytes
    return TorchMDFError(f"the file is {'larger than' if size is None else f'{size:,} bytes,'} more than the "
                         f"limit of {cap:,} bytes", location=_where(name),
                         hint="raise torchmdf.limits.LIMITS.max_file_bytes (or TORCHMDF_MAX_FILE_BYTES)")


def read_limited(name: str) -> bytes:
    """The bytes of a regular file of at most ``LIMITS.max_file_bytes``.  Opened without
    blocking and checked with ``fstat`` before reading, so a FIFO, a device (``/dev/zero``)
    or a symlink to one is refused instead of read without end."""
    cap = LIMITS.max_file_bytes
    try:  # refuse a device or pipe before opening it (and check again on what was opened)
        if not stat.S_ISREG(os.stat(name).st_mode):
            raise TorchMDFError("not a regular file (a device, a pipe or a directory)", location=_where(name))
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise TorchMDFError(f"cannot read the file: {e.strerror or e}", location=_where(name)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TorchMDFError("not a regular file (a device, a pipe or a directory)", location=_where(name))
        if st.st_size > cap:
            raise _too_big(name, st.st_size)
        chunks = []
        total = 0
        while True:
            b = os.read(fd, min(1 << 24, cap + 1 - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
            if total > cap:
                raise _too_big(name, None)
        return b"".join(chunks)
    except OSError as e:
        raise TorchMDFError(f"cannot read the file: {e.strerror or e}", location=_where(name)) from e
    finally:
        os.close(fd)


def dumps(model: Model, format: str = "json") -> str:
    """The model as JSON or YAML text (floats written so they read back bit for bit)."""
    if not isinstance(model, Model):
        raise ValidationError(f"dumps() takes a torchmdf.mdf.Model, not {type(model).__name__}")
    data = model.to_dict(keep_arrays=True)
    try:
        if format in ("json", "yaml"):  # [issue 17] arrays on one line, shortest round-trip numbers
            return _arrays.dumps_text(data, format)
    except (TypeError, ValueError, yaml.YAMLError, RecursionError) as e:
        raise ValidationError(f"cannot write the model as {format}: {e}",
                              location=model.location) from e
    raise ValidationError(f"unknown format {format!r}", hint="use 'json' or 'yaml'")


def save(model: Model, path: str | os.PathLike, *, format: str | None = None,
         validate: bool = True, weights: str = "auto",
         weights_threshold: int = _weights.AUTO_THRESHOLD) -> None:
    """Write the model to ``path`` atomically (format by suffix unless ``format=``).

    With ``validate`` (the default) the model is checked first, so only loadable files are
    written.  On any failure nothing is created and an existing file is left untouched.

    ``weights``: ``"inline"`` writes every tensor into the file; ``"external"`` writes them to
    the sidecar ``<name>.safetensors`` beside it; ``"auto"`` (the default) externalizes tensors
    of ``weights_threshold`` bytes or more and warns (:class:`ExternalWeightsWarning`) when it
    did.  See :mod:`torchmdf.mdf.weights` for the reference form.  Arrays are streamed from the
    tensors to the file (:mod:`torchmdf.mdf.arrays`)."""
    target = os.fspath(path)
    fmt = _format_for(target, format)
    if not isinstance(model, Model):
        raise ValidationError(f"save() takes a torchmdf.mdf.Model, not {type(model).__name__}",
                              location=_where(target))
    _weights.check_weights_mode(weights, weights_threshold, target)
    if validate:
        from .validate import check

        check(model)
    plan = _weights.write_model(model, target, fmt, weights=weights, threshold=weights_threshold)
    if weights == "auto" and plan.tensors:
        _weights.warn_auto(plan, target, weights_threshold)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, fsync'd,
    then ``os.replace``d over the target (whose permissions it keeps).  On failure the target is
    untouched and the temporary file is removed."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        mode = os.stat(target).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise TorchMDFError(f"cannot write the file: {e.strerror or e}", location=_where(target)) from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
