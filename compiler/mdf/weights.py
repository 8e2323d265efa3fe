"""External weights: tensors in a safetensors sidecar beside the MDF file.

``torchmdf.mdf.save(model, "net.json", weights=...)``:

* ``"inline"``: every tensor is written into the file (one line per array, see
  :mod:`torchmdf.mdf.arrays`); the file is self-contained and runs in modeci_mdf.
* ``"external"``: every tensor of one or more elements goes to ``net.safetensors`` in the same
  folder, and the file refers to it.
* ``"auto"`` (the default): tensors of :data:`AUTO_THRESHOLD` bytes or more go to the sidecar,
  smaller ones stay inline; when anything went to the sidecar a
  :class:`ExternalWeightsWarning` says so, naming the sidecar.

A reference takes the place of the value it stands for (a parameter's ``value``, an input
port's ``default_value``, ...)::

    "weight": {
        "value": {"safetensors": "net.safetensors", "tensor": "layer1.0.conv1.weight",
                  "dtype": "float32", "shape": [64, 64, 3, 3]},
        "metadata": {"torchmdf": {"name": "layer1.0.conv1.weight", "role": "parameter", ...}}
    }

Exactly these four keys: ``safetensors`` names the sidecar, a file name relative to the MDF
file's folder; ``tensor`` the tensor's name in it (the PyTorch name where there is one);
``dtype`` (a torch dtype name: float32, float16, bfloat16, float64, int64, int32, int16, int8,
uint8, bool) and ``shape`` what the tensor must be.

The sidecar is an ordinary `safetensors <https://huggingface.co/docs/safetensors>`_ file (an
8-byte header length, a JSON header, raw little-endian data; no pickle, nothing executable):
``safetensors.safe_open`` and ``safetensors.torch.load_file`` read it.

Loading (``torchmdf.mdf.load``) resolves every reference before validation: the sidecar must
lie inside the MDF file's folder (no absolute path, no ``..``, no symlink that leads out of
the folder), be a regular file with a well-formed header whose every tensor lies inside the
file, and hold the tensor with exactly the stated dtype and shape; otherwise a
:class:`~torchmdf.errors.ValidationError` names the MDF file, the node and the parameter, and
the sidecar.  Tensors are memory-mapped (copy-on-write: nothing is read before it is used, and
nothing done to a tensor changes the file).

:func:`inline_weights` writes a self-contained copy (for modeci_mdf or other tools).
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from torchmdf.errors import TorchMDFError, ValidationError

from .model import Edge, Function, Graph, InputPort, Model, Node, Parameter, format_location, seg
from .torchmdf_metadata import ParameterMetadata

__all__ = ["AUTO_THRESHOLD", "WEIGHTS_MODES", "ExternalWeightsWarning", "is_reference",
           "resolve_references", "plan_external", "write_safetensors", "read_safetensors",
           "inline_weights", "sidecar_path", "SIDECAR_SUFFIX"]

#: ``weights="auto"`` puts tensors of at least this many bytes (1 MiB) in the sidecar.
AUTO_THRESHOLD = 1 << 20

WEIGHTS_MODES = ("inline", "external", "auto")
SIDECAR_SUFFIX = ".safetensors"

#: The keys of a reference, all required.
REF_KEYS = frozenset(["safetensors", "tensor", "dtype", "shape"])

#: torch dtype name <-> safetensors dtype code, and the numpy dtype the bytes are viewed as.
_DTYPES: dict[str, tuple[str, torch.dtype, str]] = {
    "float64": ("F64", torch.float64, "<f8"),
    "float32": ("F32", torch.float32, "<f4"),
    "float16": ("F16", torch.float16, "<f2"),
    "bfloat16": ("BF16", torch.bfloat16, "<u2"),  # viewed as uint16, then as bfloat16
    "int64": ("I64", torch.int64, "<i8"),
    "int32": ("I32", torch.int32, "<i4"),
    "int16": ("I16", torch.int16, "<i2"),
    "int8": ("I8", torch.int8, "i1"),
    "uint8": ("U8", torch.uint8, "u1"),
    "bool": ("BOOL", torch.bool, "?"),
}
_BY_CODE = {code: name for name, (code, _, _) in _DTYPES.items()}
_BY_TORCH = {dt: name for name, (_, dt, _) in _DTYPES.items()}

#: Largest header accepted (as the safetensors library does).
MAX_HEADER = 100_000_000


class ExternalWeightsWarning(UserWarning):
    """``save(..., weights="auto")`` put tensors in a sidecar file."""


def is_reference(v: Any) -> bool:
    """Whether a value read from a file is an external weight reference (a mapping with a
    ``safetensors`` key; :func:`resolve_references` checks the rest)."""
    return isinstance(v, dict) and "safetensors" in v


# ---------------------------------------------------------------------------------------------
# Where values live in a model
# ---------------------------------------------------------------------------------------------

@dataclass
class _Slot:
    path: tuple
    get: Callable[[], Any]
    set: Callable[[Any], None]
    name: str  # a default tensor name


def _attr(obj: Any, attr: str, path: tuple, name: str) -> _Slot:
    return _Slot(path, lambda: getattr(obj, attr), lambda v: setattr(obj, attr, v), name)


def _item(d: dict, key: Any, path: tuple, name: str) -> _Slot:
    def put(v: Any) -> None:
        d[key] = v
    return _Slot(path, lambda: d.get(key), put, name)


def _slots(model: Model) -> Iterator[_Slot]:
    """Every place a value (a tensor, or a reference to one) may stand, with its location."""
    stack: list[tuple[Graph, tuple, str]] = [
        (g, (seg("model", model.id), seg("graph", g.id)), "") for g in reversed(model.graphs)
        if isinstance(g, Graph)]
    multi = len(model.graphs) > 1
    while stack:
        g, gpath, prefix = stack.pop()
        if multi or prefix:
            prefix = f"{prefix}{g.id}."
        if isinstance(g.parameters, dict):
            for k in list(g.parameters):
                yield _item(g.parameters, k, gpath + (f"parameter {k!r}",), f"{prefix}{k}")
        for n in g.nodes:
            if isinstance(n, Graph):
                stack.append((n, gpath + (seg("graph", n.id),), prefix))
                continue
            if not isinstance(n, Node):
                continue
            npath = gpath + (seg("node", n.id),)
            base = f"{prefix}{n.id}"
            for p in n.input_ports:
                if isinstance(p, InputPort):
                    yield _attr(p, "default_value", npath + (seg("input port", p.id), "default_value"),
                                f"{base}.{p.id}")
            for p in n.parameters:
                if not isinstance(p, Parameter):
                    continue
                ppath = npath + (seg("parameter", p.id),)
                tname = ParameterMetadata.read(p.metadata, lenient=True).name or f"{base}.{p.id}"
                yield _attr(p, "value", ppath, tname)
                yield _attr(p, "default_initial_value", ppath + ("default_initial_value",),
                            f"{base}.{p.id}.default_initial_value")
                if isinstance(p.args, dict):
                    for k in list(p.args):
                        yield _item(p.args, k, ppath + (f"argument {k!r}",), f"{base}.{p.id}.{k}")
            for f in n.functions:
                if isinstance(f, Function) and isinstance(f.args, dict):
                    for k in list(f.args):
                        yield _item(f.args, k, npath + (seg("function", f.id), f"argument {k!r}"),
                                    f"{base}.{f.id}.{k}")
        for e in g.edges:
            if isinstance(e, Edge) and isinstance(e.parameters, dict):
                for k in list(e.parameters):
                    yield _item(e.parameters, k, gpath + (seg("edge", e.id), f"parameter {k!r}"),
                                f"{prefix}{e.id}.{k}")


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------

def sidecar_path(model_path: str) -> str:
    """``net.json`` -> ``net.safetensors`` (same folder)."""
    root, _ = os.path.splitext(model_path)
    return root + SIDECAR_SUFFIX


@dataclass
class ExternalPlan:
    """What goes to the sidecar: id(tensor) -> (tensor name, tensor)."""

    sidecar: str  # the file name written into references
    tensors: dict[int, tuple[str, torch.Tensor]]

    def reference(self, v: Any) -> dict | None:
        hit = self.tensors.get(id(v))
        if hit is None:
            return None
        name, t = hit
        return {"safetensors": self.sidecar, "tensor": name, "dtype": _BY_TORCH[t.dtype],
                "shape": list(t.shape)}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for _, t in self.tensors.values())


def plan_external(model: Model, sidecar_name: str, weights: str,
                  threshold: int = AUTO_THRESHOLD) -> ExternalPlan:
    """Which tensors of ``model`` go to the sidecar under ``weights`` (see the module
    docstring); a tensor held in several places is stored once."""
    chosen: dict[int, tuple[str, torch.Tensor]] = {}
    if weights == "inline":
        return ExternalPlan(sidecar_name, chosen)
    taken: set[str] = set()
    for slot in _slots(model):
        v = slot.get()
        if not isinstance(v, torch.Tensor) or id(v) in chosen or v.dim() == 0 or v.numel() == 0:
            continue
        if v.dtype not in _BY_TORCH:
            continue  # written inline (or refused there) as before
        if weights == "auto" and v.numel() * v.element_size() < threshold:
            continue
        name, k = slot.name, 1
        while name in taken or name == "__metadata__":
            name, k = f"{slot.name}.{k}", k + 1
        taken.add(name)
        chosen[id(v)] = (name, v)
    return ExternalPlan(sidecar_name, chosen)


def write_safetensors(f: Any, tensors: list[tuple[str, torch.Tensor]]) -> int:
    """Write ``tensors`` to the binary stream ``f`` in the safetensors format, each straight
    from its memory (no copy of the whole set); returns the bytes written.

    The data starts 64-byte aligned in the file, and the tensors whose size is a multiple of 64
    bytes come first, so (memory-mapped at a page boundary) they sit 64-byte aligned, as torch's
    allocator would place them: kernels then take the same code paths, and a model computes
    bit for bit what it computes on copies.  The rest follow by element size, largest first,
    so each starts aligned to its element size (the format allows no gaps)."""
    order = sorted(tensors, key=lambda nt: ((nt[1].numel() * nt[1].element_size()) % 64 != 0,
                                            -nt[1].element_size()))
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "producer": "torchmdf"}}
    offset = 0
    for name, t in order:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[_BY_TORCH[t.dtype]][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-(8 + len(hb)) % 64)  # JSON whitespace, as safetensors pads its own headers
    f.write(len(hb).to_bytes(8, "little"))
    f.write(hb)
    for _, t in order:
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        a = t.numpy()
        if sys.byteorder == "big":  # pragma: no cover - safetensors is little-endian
            a = a.byteswap()
        f.write(memoryview(a.reshape(-1)).cast("B"))
    return 8 + len(hb) + offset


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

class _SidecarError(Exception):
    pass


class SafetensorsFile:
    """A safetensors file opened for reading: the header checked, the data memory-mapped."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise _SidecarError("is not a regular file")
                size = st.st_size
                head = f.read(8)
                if len(head) < 8:
                    raise _SidecarError("is too short to be a safetensors file")
                n = int.from_bytes(head, "little")
                if n > MAX_HEADER or 8 + n > size:
                    raise _SidecarError(f"has a header length of {n} bytes that does not fit the file "
                                        f"({size} bytes)")
                raw = f.read(n)
                if size > 8 + n:
                    self.mm = np.memmap(f, dtype=np.uint8, mode="c", offset=0, shape=(size,))
                else:
                    self.mm = np.zeros(8 + n, dtype=np.uint8)
        except OSError as e:
            raise _SidecarError(f"cannot be read: {e.strerror or e}") from e
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise _SidecarError(f"has a header that is not valid JSON ({e})") from e
        if not isinstance(header, dict):
            raise _SidecarError("has a header that is not a JSON object")
        self.start = 8 + n
        self.data_size = size - self.start
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            self.entries[name] = self._entry(name, e)

    def _entry(self, name: str, e: Any) -> tuple[str, tuple[int, ...], int, int]:
        where = f"tensor {name!r}"
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _SidecarError(f"has a malformed header entry for {where} (expected dtype, shape, "
                                "data_offsets)")
        code, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        dtype = _BY_CODE.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise _SidecarError(f"stores {where} with an unsupported dtype {code!r}")
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise _SidecarError(f"has a malformed shape for {where}: {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)
                and 0 <= offs[0] <= offs[1] <= self.data_size):
            raise _SidecarError(f"has data offsets for {where} outside the file's data "
                                f"({self.data_size} bytes): {offs!r}")
        itemsize = np.dtype(_DTYPES[dtype][2]).itemsize
        if offs[1] - offs[0] != math.prod(shape) * itemsize:
            raise _SidecarError(f"stores {where} in {offs[1] - offs[0]} bytes, but {dtype} of shape "
                                f"{tuple(shape)} needs {math.prod(shape) * itemsize}")
        return dtype, tuple(shape), offs[0], offs[1]

    def tensor(self, name: str) -> torch.Tensor:
        dtype, shape, a, b = self.entries[name]
        _, tdt, npdt = _DTYPES[dtype]
        arr = self.mm[self.start + a:self.start + b].view(np.dtype(npdt)).reshape(shape)
        if arr.dtype.byteorder not in ("=", "|") and not arr.dtype.isnative:  # pragma: no cover
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.ctypes.data % max(arr.itemsize, 1):
            arr = arr.copy()  # misaligned (not written by torchmdf or safetensors): a copy
        t = torch.from_numpy(arr)
        if tdt == torch.bfloat16:
            t = t.view(torch.bfloat16)
        return t


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, memory-mapped (a convenience for tests and tools)."""
    try:
        f = SafetensorsFile(path)
    except _SidecarError as e:
        raise ValidationError(f"the safetensors file {e}", location=f"file '{path}'") from None
    return {k: f.tensor(k) for k in f.entries}


def _inside(folder: str, ref: str) -> str:
    """The real path of ``ref`` if it names a file inside ``folder``; else _SidecarError."""
    if not ref or "\x00" in ref:
        raise _SidecarError("names no file")
    if os.path.isabs(ref) or ref.startswith(("/", "\\")) or (len(ref) > 1 and ref[1] == ":"):
        raise _SidecarError("is an absolute path; a sidecar must be named relative to the model "
                            "file's folder")
    parts = ref.replace("\\", "/").split("/")
    if ".." in parts:
        raise _SidecarError("uses '..'; a sidecar must lie inside the model file's folder")
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, ref))
    if os.path.commonpath([root, real]) != root:
        raise _SidecarError(f"leads out of the model file's folder (through a symbolic link, to "
                            f"'{real}')")
    if not os.path.exists(real):
        raise _SidecarError("does not exist")
    return real


def _check_ref(v: dict) -> str | None:
    """What is wrong with the form of a reference, or None."""
    keys = set(v)
    if keys != REF_KEYS:
        missing, extra = sorted(REF_KEYS - keys), sorted(map(str, keys - REF_KEYS))
        bits = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"unknown key(s) {', '.join(extra)}"] if extra else [])
        return "an external weight reference takes exactly safetensors, tensor, dtype and shape: " + \
            "; ".join(bits)
    if not isinstance(v["safetensors"], str) or not isinstance(v["tensor"], str):
        return "'safetensors' and 'tensor' of an external weight reference must be strings"
    if v["dtype"] not in _DTYPES:
        return f"unknown dtype {v['dtype']!r} in an external weight reference (known: {', '.join(_DTYPES)})"
    shape = v["shape"]
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        return f"the shape of an external weight reference must be a list of sizes, not {shape!r}"
    return None


def resolve_references(model: Model, folder: str | None) -> int:
    """Replace every external weight reference in ``model`` by its memory-mapped tensor, with
    every check of the module docstring; returns how many were resolved.  ``folder`` is the
    model file's folder (None: the model was not read from a file, so references cannot be
    resolved and are an error)."""
    files: dict[str, SafetensorsFile] = {}
    broken: dict[str, list] = {}  # a sidecar that cannot be used: reported once, [index, count]
    loaded: dict[tuple[str, str], torch.Tensor] = {}
    problems: list[ValidationError] = []
    count = 0
    for slot in _slots(model):
        v = slot.get()
        if not is_reference(v):
            continue
        where = format_location(model.location, slot.path)
        msg = _check_ref(v)
        if msg is not None:
            problems.append(ValidationError(msg, location=where))
            continue
        ref, name = v["safetensors"], v["tensor"]
        side = f"sidecar '{ref}'"
        if folder is None:
            problems.append(ValidationError(
                f"refers to the external weights file '{ref}', but the model was not read from a file",
                location=where, hint="load it with torchmdf.mdf.load(path) so the sidecar can be found"))
            continue
        if ref in broken:
            broken[ref][1] += 1
            continue
        try:
            real = _inside(folder, ref)
            f = files.get(real)
            if f is None:
                f = files[real] = SafetensorsFile(real)
        except _SidecarError as e:
            broken[ref] = [len(problems), 0]
            problems.append(ValidationError(f"the {side} {e}", location=where))
            continue
        entry = f.entries.get(name)
        if entry is None:
            problems.append(ValidationError(f"the {side} holds no tensor {name!r}", location=where,
                                            hint=f"it holds {len(f.entries)} tensor(s)"))
            continue
        dtype, shape, _, _ = entry
        if dtype != v["dtype"]:
            problems.append(ValidationError(
                f"tensor {name!r} in the {side} is {dtype}, but the reference says {v['dtype']}",
                location=where))
            continue
        if list(shape) != v["shape"]:
            problems.append(ValidationError(
                f"tensor {name!r} in the {side} has shape {list(shape)}, but the reference says "
                f"{v['shape']}", location=where))
            continue
        key = (real, name)
        t = loaded.get(key)
        if t is None:
            t = loaded[key] = f.tensor(name)
        slot.set(t)
        count += 1
    for ref, (i, more) in broken.items():
        if more:
            p = problems[i]
            problems[i] = ValidationError(p.raw_message, location=p.location,
                                          hint=f"{more} more reference(s) to '{ref}' not checked")
    if problems:
        if len(problems) == 1:
            raise problems[0]
        lines = [f"{len(problems)} problems with external weights:"]
        lines += [f"  - {p}" for p in problems]
        raise ValidationError("\n".join(lines), location=model.location, problems=problems)
    return count


def has_references(model: Model) -> bool:
    return any(is_reference(s.get()) for s in _slots(model))


def warn_auto(plan: ExternalPlan, target: str, threshold: int) -> None:
    n = len(plan.tensors)
    warnings.warn(
        f"weights='auto': {n} tensor(s) of {threshold} bytes or more ({plan.nbytes / 1e6:.1f} MB) "
        f"written to the sidecar '{plan.sidecar}' beside '{os.path.basename(target)}'; keep the two "
        "files together (weights='inline', or torchmdf.mdf.inline_weights(), writes one "
        "self-contained file, e.g. for modeci_mdf)", ExternalWeightsWarning, stacklevel=3)


def inline_weights(source: Any, output: str | os.PathLike, *, format: str | None = None) -> Model:
    """Write a copy of ``source`` (a path, or a loaded Model) with every tensor inline, as one
    self-contained file for tools that do not read sidecars (modeci_mdf); returns the model."""
    from .io import load, save

    model = source if isinstance(source, Model) else load(source)
    save(model, output, format=format, weights="inline")
    return model


def check_weights_mode(weights: Any, threshold: Any, target: str) -> None:
    if weights not in WEIGHTS_MODES:
        raise TorchMDFError(f"weights must be one of {', '.join(map(repr, WEIGHTS_MODES))}, not {weights!r}",
                            location=f"file '{target}'")
    if type(threshold) is not int or threshold < 0:
        raise TorchMDFError(f"weights_threshold must be a number of bytes >= 0, not {threshold!r}",
                            location=f"file '{target}'")


# ---------------------------------------------------------------------------------------------
# Writing a model file (and its sidecar) atomically
# ---------------------------------------------------------------------------------------------

def _file_mode(target: str) -> int:
    try:
        return os.stat(target).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_model(model: Model, target: str, fmt: str, *, weights: str = "auto",
                threshold: int = AUTO_THRESHOLD) -> ExternalPlan:
    """Write ``model`` to ``target`` (and its sidecar, when any tensor goes there), streaming
    the arrays, atomically: both files are written to temporary files in the target's folder,
    flushed to disk, and only then moved over the targets (the sidecar first), so a failure
    leaves no partial file and changes no existing one."""
    from .arrays import write_text

    side_path = sidecar_path(target)
    plan = plan_external(model, os.path.basename(side_path), weights, threshold)
    data = model.to_dict(keep_arrays=True)  # raises (located) before any file is touched
    directory = os.path.dirname(os.path.abspath(target))
    temps: list[str] = []

    def temp_for(path: str) -> tuple[int, str]:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        temps.append(tmp)
        return fd, tmp

    try:
        moves: list[tuple[str, str]] = []
        if plan.tensors:
            fd, tmp = temp_for(side_path)
            with os.fdopen(fd, "wb") as f:
                write_safetensors(f, [(name, t) for name, t in plan.tensors.values()])
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _file_mode(side_path))
            moves.append((tmp, side_path))
        fd, tmp = temp_for(target)
        with os.fdopen(fd, "wb") as f:
            write_text(data, f, fmt, external=plan.reference if plan.tensors else None)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(target))
        moves.append((tmp, target))
        for tmp, dst in moves:
            os.replace(tmp, dst)
            temps.remove(tmp)
    except OSError as e:
        raise TorchMDFError(f"cannot write the file: {e.strerror or e}", location=f"file '{target}'") from e
    finally:
        for tmp in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return plan


def unresolved_references(model: Model) -> list[ValidationError]:
    """A located problem for each external weight reference still in ``model`` (a model built
    from a dict, or read without its folder): the compiler needs the tensor itself."""
    return [ValidationError(f"external weight reference to tensor {s.get().get('tensor')!r} in "
                            f"'{s.get().get('safetensors')}' is not resolved",
                            location=format_location(model.location, s.path),
                            hint="load the file with torchmdf.mdf.load(path), which reads the sidecar")
            for s in _slots(model) if is_reference(s.get())]
