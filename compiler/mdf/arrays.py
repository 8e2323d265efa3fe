"""Compact, streaming text for the numeric arrays of MDF files.

Writing (:func:`write_text`): the model's structure is written as before (JSON indented by 4,
YAML in block style) but every array sits on one line, ``[[0.1,-0.25],[3.0,1e-05]]``, each
number in the shortest text that reads back to the same value *of its dtype* (a float32 weight
needs at most 9 significant digits, not the 17 of a float64), integers as integers, booleans as
``true``/``false``.  Arrays go from the tensor to the output in chunks of
:data:`CHUNK` elements, so no nested Python list of a whole weight is ever built.  With
`orjson <https://github.com/ijl/orjson>`_ installed the numbers are formatted by it (about 20x
faster); without it numpy's shortest round-trip formatting does the same job.  Files stay
plain MDF: modeci_mdf reads them and computes the same results.

Reading (:func:`parse_fast`): a large file's numeric arrays are cut out of the text before the
JSON/YAML parser sees it and parsed straight into numpy arrays (no Python float per number),
under exactly the grammar the parser would apply (JSON numbers; for YAML, the YAML 1.1 ints
and floats PyYAML resolves).  An array that does not follow it exactly (ragged, a NaN, a
syntax error, an unusual spelling) is left in the text for the ordinary parser, which then
reads it or reports it as before; anything unexpected makes the whole file go through the
ordinary parser, so the fast path can change speed and memory, never the result or an error.
"""

from __future__ import annotations

import io
import json
import math
import re
import secrets
from typing import IO, Any, Callable, Iterator

import numpy as np
import torch

try:  # optional: much faster number formatting
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["CHUNK", "write_text", "dumps_text", "parse_fast", "array_text", "FAST_MIN_BYTES"]

#: Elements formatted per step when writing an array.
CHUNK = 1 << 16

#: Files smaller than this are parsed the ordinary way (the fast path pays off on large arrays).
FAST_MIN_BYTES = 1 << 16

#: Arrays shorter than this (in characters) are left to the ordinary parser.
_MIN_ARRAY_CHARS = 256


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def to_numpy(v: Any) -> np.ndarray:
    """A tensor or array as a C-contiguous numpy array that keeps the values exactly
    (bfloat16, which numpy lacks, as float32: every bfloat16 is a float32)."""
    if isinstance(v, torch.Tensor):
        t = v.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return np.ascontiguousarray(t.numpy())
    return np.ascontiguousarray(v)


_YAML_EXP = re.compile(rb"(?<![0-9.])(-?[0-9]+)(?=[eE])")   # 1e+20 -> 1.0e+20 (YAML 1.1 floats need a dot)
_YAML_EXP_SIGN = re.compile(rb"([eE])([0-9])")              # 1.5e5 -> 1.5e+5 (and a signed exponent)


def _fix_yaml(b: bytes) -> bytes:
    if b"e" in b or b"E" in b:
        b = _YAML_EXP_SIGN.sub(rb"\1+\2", _YAML_EXP.sub(rb"\1.0", b))
    return b


_SPECIAL_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_SPECIAL_YAML = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}


def _tokens(a: np.ndarray, yaml: bool) -> list[str]:
    """The elements of a (small) array as text, flat, without orjson."""
    k = a.dtype.kind
    if k == "b":
        return ["true" if x else "false" for x in a.ravel().tolist()]
    if k in "iu":
        return a.ravel().astype(str).tolist()
    toks = a.ravel().astype(str).tolist()  # numpy: the shortest text that round-trips the dtype
    if not np.isfinite(a).all():
        special = _SPECIAL_YAML if yaml else _SPECIAL_JSON
        toks = [special.get(s, s) for s in toks]
    return toks


def _nest(toks: list[str], shape: tuple[int, ...]) -> str:
    level = toks
    for n in reversed(shape[1:]):
        level = ["[" + ",".join(level[i:i + n]) + "]" for i in range(0, len(level), n)]
    return "[" + ",".join(level) + "]"


def _small_array_text(a: np.ndarray, yaml: bool) -> bytes:
    """One array of at most about CHUNK elements as one line."""
    if a.ndim == 0:
        return _tokens(a.reshape(1), yaml)[0].encode()
    if a.size == 0:
        return json.dumps(a.tolist(), separators=(",", ":")).encode()
    if _orjson is not None and a.dtype.kind in "biuf" and a.dtype != np.float16 and (
            a.dtype.kind != "f" or np.isfinite(a).all()):
        out = _orjson.dumps(a, option=_orjson.OPT_SERIALIZE_NUMPY)
    else:
        out = _nest(_tokens(a, yaml), a.shape).encode()
    return _fix_yaml(out) if yaml and a.dtype.kind == "f" else out


def array_chunks(a: np.ndarray, yaml: bool = False) -> Iterator[bytes]:
    """The one-line text of ``a`` in pieces of about CHUNK elements."""
    if a.size <= CHUNK or a.ndim == 0:
        yield _small_array_text(a, yaml)
        return
    if a.ndim == 1:
        yield b"["
        for i in range(0, a.size, CHUNK):
            if i:
                yield b","
            yield _small_array_text(a[i:i + CHUNK], yaml)[1:-1]
        yield b"]"
        return
    yield b"["
    for i in range(a.shape[0]):
        if i:
            yield b","
        yield from array_chunks(a[i], yaml)
    yield b"]"


def array_text(v: Any, yaml: bool = False) -> str:
    """The one-line text of a tensor or array (see the module docstring)."""
    return b"".join(array_chunks(to_numpy(v), yaml)).decode()


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (bool, int, float, str))


class _Placeholders:
    """Replaces arrays (tensors, numpy arrays, lists of plain scalars) in the data by unique
    strings, so the structure can be written by json/yaml and the arrays streamed in."""

    def __init__(self, external: Callable[[Any], Any] | None):
        self.nonce = secrets.token_hex(8)
        self.items: list[Any] = []
        self.external = external

    def key(self, i: int) -> str:
        return f"tmdf_{self.nonce}_{i}"

    def sub(self, v: Any) -> Any:
        if isinstance(v, (torch.Tensor, np.ndarray)):
            if self.external is not None:
                ref = self.external(v)
                if ref is not None:
                    return self.sub(ref)
            if v.ndim == 0:
                return v.item()
            self.items.append(v)
            return self.key(len(self.items) - 1)
        if isinstance(v, dict):
            return {k: self.sub(x) for k, x in v.items()}
        if isinstance(v, list):
            if v and all(_is_scalar(x) for x in v):
                self.items.append(v)
                return self.key(len(self.items) - 1)
            return [self.sub(x) for x in v]
        return v


def write_text(data: Any, out: IO[bytes], fmt: str, *,
               external: Callable[[Any], Any] | None = None) -> None:
    """Write ``data`` (a model's file form, tensors kept as tensors) to the binary stream
    ``out`` as JSON or YAML, every array on one line, streamed from the tensors.

    ``external(tensor)`` may return a mapping to write in the tensor's place (an external
    weight reference), or None to write the tensor inline."""
    ph = _Placeholders(external)
    skeleton = ph.sub(data)
    yaml_fmt = fmt == "yaml"
    if yaml_fmt:
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(skeleton, Dumper=dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=100)
        pattern = re.compile(r"""['"]?tmdf_""" + ph.nonce + r"""_(\d+)['"]?""")
    else:
        text = json.dumps(skeleton, indent=4) + "\n"
        pattern = re.compile(r'"tmdf_' + ph.nonce + r'_(\d+)"')
    pos = 0
    for m in pattern.finditer(text):
        out.write(text[pos:m.start()].encode("utf-8"))
        item = ph.items[int(m.group(1))]
        if isinstance(item, list):
            if yaml_fmt:
                out.write(yaml.dump(item, Dumper=dumper, default_flow_style=True, width=1 << 30,
                                    allow_unicode=True).rstrip("\n").removesuffix("\n...").encode("utf-8"))
            else:
                out.write(json.dumps(item).encode("utf-8"))
        else:
            for chunk in array_chunks(to_numpy(item), yaml_fmt):
                out.write(chunk)
        pos = m.end()
    out.write(text[pos:].encode("utf-8"))


def dumps_text(data: Any, fmt: str) -> str:
    """:func:`write_text` into a string."""
    buf = io.BytesIO()
    write_text(data, buf, fmt)
    return buf.getvalue().decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

# A JSON string, optionally followed (as a key) by ':' and a candidate numeric array.
_JSON_SCAN = re.compile(rb'"(?:[^"\\]|\\.)*"(?:[ \t\r\n]*:[ \t\r\n]*(\[[0-9eE.+\-,\[\] \t\r\n]*\]))?')
# A YAML line ``key: [numbers]`` (block mapping, plain key, one-line flow sequence).
_YAML_SCAN = re.compile(rb"^([ ]*(?:- +)?[A-Za-z_][A-Za-z0-9_]*:[ \t]+)(\[[0-9eE.+\-,\[\] \t]*\])[ \t]*\r?$",
                        re.MULTILINE)

_WS = b" \t\r\n"
_BRACKETS = bytes.maketrans(b"[]", b"  ")
_TOKEN_CHARS = bytes.maketrans(b"0123456789.eE+-", b"D" * 15)
# digits -> D (Z for 0), E -> e, whitespace -> ' ': the checks below look at character classes
_CLASSES = bytes.maketrans(b"0123456789E\t\r\n", b"ZDDDDDDDDDe   ")
_EMPTY = re.compile(rb"\[[ \t\r\n]*\]")
_PARSE_CHUNK = 1 << 18  # bytes of numbers per orjson call (its transient memory is ~10x that)


def _shape_of(skel: bytes) -> tuple[int, ...] | None:
    """The shape of a regular nested array from its skeleton (brackets and commas only), read
    off its first groups; the caller compares the whole skeleton with the expected one."""
    d = len(skel) - len(skel.lstrip(b"["))
    if d == 0:
        return None
    p = skel.find(b"]")
    if p < 0:
        return None
    inner = skel[d - 1:p + 1]
    n = inner.count(b",") + 1
    shape = [n]
    length = n + 1  # '[' + n-1 commas + ']'
    for k in range(d - 1, 0, -1):
        q = skel.find(b"]" * (d - k + 1))
        if q < 0:
            return None
        lk = q + (d - k) - (k - 1) + 1
        nk, rem = divmod(lk - 1, length + 1)
        if rem or nk < 1:
            return None
        shape.append(nk)
        length = lk
    return tuple(reversed(shape))


def _skeleton(shape: tuple[int, ...]) -> bytes:
    s = b"[" + b"," * (shape[-1] - 1) + b"]"
    for n in reversed(shape[:-1]):
        s = b"[" + b",".join([s] * n) + b"]"
    return s


def _strict_tokens(c: bytes, yaml: bool, use_orjson: bool) -> bool:
    """Whether every number (in the class-mapped text ``c``) is spelled as the ordinary parser
    reads it as a number.  The parser used next (orjson: exactly JSON's grammar; numpy's
    ``fromstring``: anything ``strtod`` reads, with nothing left over) rules out most other
    spellings; these checks rule out the rest."""
    if yaml and b"e" in c:
        # a YAML 1.1 float has a dot before a signed exponent ("1e-05" is a string there)
        if c.count(b"e") != c.count(b"e+") + c.count(b"e-"):
            return False
        if len(re.findall(rb"\.[DZ]*e", c)) != c.count(b"e"):
            return False
    if use_orjson:
        return True
    # numpy's reader skips what JSON/YAML do not: a sign apart from its digits, an empty slot
    if b"- " in c or b"+ " in c:
        return False
    packed = c.replace(b" ", b"")
    if b",," in packed or packed.startswith(b",") or packed.endswith((b",", b"-", b"+")) \
            or b"-," in packed or b"+," in packed:
        return False
    # a leading zero (JSON: invalid; YAML: an octal int), or after a sign not in an exponent
    for z in (b"ZZ", b"ZD"):
        if c.count(b"," + z) or c.count(b" " + z) or c.startswith(z):
            return False
        for sign in (b"-", b"+"):
            if c.count(sign + z) != c.count(b"e" + sign + z):
                return False
    digits = c.replace(b"Z", b"D")
    if yaml:  # "5." is a YAML float, ".5" / "-.5" are not numbers to PyYAML's int/float rules
        return digits.count(b".") == digits.count(b"D.")
    # JSON: a dot between digits, a '+' only in an exponent
    return digits.count(b".") == digits.count(b"D.D") and c.count(b"+") == c.count(b"e+")


def parse_array(raw: bytes, yaml: bool = False) -> np.ndarray | None:
    """A numeric array written in JSON (or YAML flow) text as numpy (int64 or float64, as the
    ordinary parser + numpy would make it), or None where that parser might read it
    differently (see the module docstring)."""
    if _EMPTY.search(raw) or (yaml and (b"\t" in raw or b"\n" in raw or b"\r" in raw)):
        return None  # an empty group (a ragged or empty array); YAML flow text on one line, no tabs
    marked = raw.translate(_TOKEN_CHARS, _WS)  # numbers as runs of D, no whitespace
    if b"[," in marked or b",]" in marked:
        # a slot without its number, or (with the checks below: the skeleton, no empty group,
        # exactly one comma between numbers) a number outside its innermost brackets
        return None
    skel = marked.translate(None, b"D")
    del marked
    shape = _shape_of(skel)
    if shape is None or len(shape) > 32 or skel != _skeleton(shape):
        return None
    del skel
    is_float = b"." in raw or b"e" in raw or b"E" in raw
    if not is_float and re.search(rb"[0-9]{19}", raw):
        return None  # beyond int64: the ordinary parser keeps Python ints
    flat = raw.translate(_BRACKETS)
    use_orjson = _orjson is not None
    if not _strict_tokens(flat.translate(_CLASSES), yaml, use_orjson):
        return None
    n = math.prod(shape)
    out = np.empty(n, dtype=np.float64 if is_float else np.int64)
    if use_orjson:
        # in pieces, so only a few MB of Python numbers exist at a time
        pos = k = 0
        while pos < len(flat):
            end = flat.find(b",", pos + _PARSE_CHUNK) if pos + _PARSE_CHUNK < len(flat) else -1
            piece = flat[pos:] if end < 0 else flat[pos:end]
            try:
                vals = _orjson.loads(b"[" + piece + b"]")
            except _orjson.JSONDecodeError:
                return None
            if k + len(vals) > n or not all(type(v) in (int, float) for v in vals[:1]):
                return None
            try:
                out[k:k + len(vals)] = vals
            except (TypeError, ValueError, OverflowError):
                return None
            k += len(vals)
            pos = len(flat) if end < 0 else end + 1
        if k != n:
            return None
        return out.reshape(shape)
    try:
        arr = np.fromstring(flat, dtype=out.dtype, sep=",")
    except ValueError:
        return None
    if arr.size != n:
        return None
    return arr.reshape(shape)


_VALUE_KEYS = frozenset(["value", "default_value", "default_initial_value"])
_VALUE_PARENTS = frozenset(["args", "parameters"])


class _Fill:
    """Puts the parsed arrays back where the text had them: as numpy arrays where MDF reads a
    value (which :func:`torchmdf.mdf.model.to_value` makes a tensor), as the lists the ordinary
    parser would have made elsewhere (metadata, shapes...)."""

    def __init__(self, nonce: str, table: list, restore: Callable[[int], Any]):
        self.prefix = f"tmdf_{nonce}_"
        self.table = table
        self.restore = restore
        self.used = 0

    def lookup(self, v: Any, as_value: bool) -> Any:
        if type(v) is str and v.startswith(self.prefix):
            tail = v[len(self.prefix):]
            if tail.isdigit() and int(tail) < len(self.table):
                self.used += 1
                i = int(tail)
                return self.table[i] if as_value else self.restore(i)
        return v

    def walk(self, root: Any) -> None:
        # iterative, so a deeply nested file cannot exhaust the stack here
        stack: list[tuple[Any, Any, bool]] = [(root, None, False)]
        while stack:
            obj, parent_key, in_meta = stack.pop()
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if type(v) is str:
                        if v.startswith(self.prefix):
                            as_value = not in_meta and (k in _VALUE_KEYS or parent_key in _VALUE_PARENTS)
                            obj[k] = self.lookup(v, as_value)
                    elif isinstance(v, (dict, list)):
                        stack.append((v, k, in_meta or k in ("metadata", "notes")))
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    if type(v) is str:
                        if v.startswith(self.prefix):
                            obj[i] = self.lookup(v, False)
                    elif isinstance(v, (dict, list)):
                        stack.append((v, parent_key, in_meta))


def parse_fast(data: bytes, fmt: str, parse: Callable[[str], Any]) -> Any | None:
    """Parse a large JSON/YAML file with its numeric arrays read by numpy.

    ``parse(text)`` is the ordinary parser.  Returns the parsed data, or None when the fast
    path does not apply or anything about it is off (the caller then parses the whole file the
    ordinary way, which also gives any error its exact line and column)."""
    if len(data) < FAST_MIN_BYTES or fmt not in ("json", "yaml"):
        return None
    nonce = secrets.token_hex(8)
    table: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    yaml = fmt == "yaml"

    def found(raw: bytes, start: int, end: int) -> bytes | None:
        if len(raw) < _MIN_ARRAY_CHARS:
            return None
        arr = parse_array(raw, yaml)
        if arr is None:
            return None
        table.append(arr)
        spans.append((start, end))
        ph = f"tmdf_{nonce}_{len(table) - 1}".encode()
        return ph if yaml else b'"' + ph + b'"'

    pieces: list[bytes] = []
    pos = 0
    if yaml:
        for m in _YAML_SCAN.finditer(data):
            rep = found(m.group(2), m.start(2), m.end(2))
            if rep is not None:
                pieces += [data[pos:m.start(2)], rep]
                pos = m.end(2)
    else:
        for m in _JSON_SCAN.finditer(data):
            if m.start(1) < 0:
                continue
            rep = found(m.group(1), m.start(1), m.end(1))
            if rep is not None:
                pieces += [data[pos:m.start(1)], rep]
                pos = m.end(1)
    if not table:
        return None
    pieces.append(data[pos:])
    residual = b"".join(pieces)
    del pieces
    try:
        text = residual.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    del residual
    try:
        parsed = parse(text)
    except Exception:  # noqa: BLE001 - the ordinary parse of the whole file reports it exactly
        return None

    def restore(i: int) -> Any:
        a, b = spans[i]
        return parse(data[a:b].decode("ascii"))

    fill = _Fill(nonce, table, restore)
    fill.walk(parsed)
    if fill.used != len(table):  # a placeholder landed inside a string (YAML block scalar...)
        return None
    return parsed
