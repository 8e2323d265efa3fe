"""The MDF value and attribute codec: how a file's literals become tensors (with
modeci_mdf's numpy dtypes), what an input port nothing feeds reads, and how ONNX and ATen
attributes written in a file are cast or decoded into the values the IR's ops take.

Used by the MDF frontend (:mod:`torchmdf.frontends.mdf`), expression lowering
(:mod:`torchmdf.mdf.expression_lowering`) and Threshold conditions
(:mod:`torchmdf.mdf.conditions`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchmdf.errors import ConversionError, ValidationError

__all__ = ["as_tensor", "is_pyscalar", "PORT_TYPES", "symbolic_port_shape", "port_default",
           "string_attr_types", "cast_attr", "MEMORY_FORMATS", "decode_attr", "with_dtype"]


def as_tensor(v: Any) -> torch.Tensor:
    """A literal MDF value as a tensor (float64 for floats, as modeci_mdf's numpy computes);
    anything that is not a number or an array is a located ConversionError upstream."""
    from torchmdf.mdf.expressions import literal_tensor

    try:
        return literal_tensor(v)
    except (TypeError, ValueError, RuntimeError) as e:
        text = repr(v)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise ConversionError(f"value {text} is not a number or array ({e})"[:300]) from e


def is_pyscalar(v: Any) -> bool:
    """A Python int or float (not bool): modeci_mdf hands those to ONNX ops as 1-element arrays."""
    return type(v) in (int, float)


PORT_TYPES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64,
              "double": torch.float64, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool,
              "float16": torch.float16}


def symbolic_port_shape(node_id: str, p: Any) -> tuple | None:
    """A shape with symbolic dims torchmdf wrote in the port's metadata (``{"torchmdf":
    {"shape": ["batch", 16]}}``, see :mod:`torchmdf.backends.mdf`), else None."""
    from torchmdf.mdf.torchmdf_metadata import PortMetadata

    shape = PortMetadata.read(p.metadata, f"node '{node_id}', input port '{p.id}'").shape
    return None if shape is None else tuple(shape)


def port_default(p: Any) -> torch.Tensor:
    """What a port nothing delivered to reads: ``default_value``, else zeros of its shape."""
    if p.default_value is not None:
        t = as_tensor(p.default_value)
        dt = PORT_TYPES.get(str(p.type)) if p.type else None
        return t.to(dt) if dt is not None and t.dtype != dt else t
    shape = tuple(p.shape) if p.shape else ()
    dtype = torch.float32 if (p.type and "float32" in str(p.type)) else torch.float64
    if p.type and "int" in str(p.type):
        dtype = torch.int64
    dtype = PORT_TYPES.get(str(p.type), dtype)  # "bool" (a Loop body's condition) and the rest
    # a stride-0 view of one zero: no memory and no fill for large ports (inception.json's
    # 97 free ports hold 56M elements); nothing writes into graph inputs or constants
    return torch.zeros((), dtype=dtype).expand(shape)


def string_attr_types() -> set[Any]:
    """The ONNX attribute types a file writes as literal strings (``mode: "constant"``)."""
    import onnx.defs

    T = onnx.defs.OpSchema.AttrType
    return {T.STRING, T.STRINGS}


def cast_attr(v: Any, typ: Any) -> Any:
    """Attributes cast to their schema type, as modeci_mdf does (a failed cast keeps the value)."""
    import onnx.defs

    T = onnx.defs.OpSchema.AttrType
    try:
        if typ == T.INT:
            return int(np.asarray(v).item()) if not isinstance(v, int) else v
        if typ == T.FLOAT:
            return float(np.asarray(v).item())
        if typ == T.INTS:
            return [int(x) for x in np.asarray(v).reshape(-1)]
        if typ == T.FLOATS:
            return [float(x) for x in np.asarray(v).reshape(-1)]
    except (TypeError, ValueError):
        return v
    return v


MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format, "preserve_format": torch.preserve_format,
                  "channels_last": torch.channels_last, "channels_last_3d": torch.channels_last_3d}


def decode_attr(v: Any, where: str | None = None) -> Any:
    """ATen attributes that JSON cannot hold are written as ``{"dtype": "float32"}`` etc.
    Only real dtypes and memory formats are read; a device is never taken from a file (the
    module's device decides), so ``{"device": ...}`` reads as None."""
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        if k == "dtype":
            dt = getattr(torch, x, None) if isinstance(x, str) and x.isidentifier() else None
            if not isinstance(dt, torch.dtype):
                raise ValidationError(f"unknown dtype {x!r}", location=where)
            return dt
        if k == "device":
            return None
        if k == "memory_format":
            mf = MEMORY_FORMATS.get(x) if isinstance(x, str) else None
            if mf is None:
                raise ValidationError(f"unknown memory format {x!r}", location=where,
                                      hint=f"one of {', '.join(MEMORY_FORMATS)}")
            return mf
    return v


def with_dtype(t: torch.Tensor, name: str | None, where: str) -> torch.Tensor:
    """``t`` in the dtype torchmdf metadata names (a weight keeps its PyTorch dtype)."""
    if not name:
        return t
    dt = getattr(torch, str(name), None)
    if not isinstance(dt, torch.dtype):
        raise ValidationError(f"unknown dtype {name!r} in torchmdf metadata", location=where)
    return t.to(dt)

