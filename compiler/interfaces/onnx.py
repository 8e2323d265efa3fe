"""Drop-in versions of ``modeci_mdf.interfaces.onnx``: :func:`onnx_to_mdf` and
:func:`mdf_to_onnx`, same names and arguments, built on :func:`torchmdf.compile` (the ONNX
frontend and backend).

Differences from modeci_mdf: node and port ids of a model made by :func:`onnx_to_mdf` are
torchmdf's own (modeci_mdf names each node after the ONNX node and each port after the ONNX
value), and :func:`mdf_to_onnx` lowers each graph through the IR, so a model whose graph
holds MDF standard functions and expressions (not only ONNX ops) converts too.
"""

from __future__ import annotations

from typing import Any

from torchmdf.errors import ConversionError

__all__ = ["onnx_to_mdf", "mdf_to_onnx", "convert_file"]


def onnx_to_mdf(onnx_model: Any, onnx_initializer: dict | None = None) -> Any:
    """An ONNX ``ModelProto`` (or a path to a ``.onnx`` file) as a :class:`torchmdf.mdf.Model`.
    ``onnx_initializer`` is accepted for compatibility and must be empty: the initializers
    of the model itself are read."""
    from torchmdf.api import compile

    if onnx_initializer:
        raise ConversionError("onnx_to_mdf: onnx_initializer is not supported; the model's own initializers are read")
    return compile(onnx_model, target="mdf")


def mdf_to_onnx(mdf_model: Any) -> list[Any]:
    """One ONNX ``ModelProto`` for each graph of ``mdf_model`` (a :class:`torchmdf.mdf.Model`),
    as modeci_mdf returns them."""
    from torchmdf.api import compile

    graphs = getattr(mdf_model, "graphs", None)
    if not graphs:
        raise ConversionError("mdf_to_onnx takes an MDF model with at least one graph")
    if len(graphs) == 1:
        return [compile(mdf_model, target="onnx")]
    from torchmdf.mdf import Model

    return [compile(Model(id=g.id, graphs=[g]), target="onnx") for g in graphs]


def convert_file(input_file: str) -> None:
    """An ONNX file converted to MDF beside it: ``<name>-mdf.json`` and ``<name>-mdf.yaml``
    (modeci_mdf's ``convert_file``)."""
    import os

    model = onnx_to_mdf(os.fspath(input_file))
    base = f"{os.path.splitext(os.fspath(input_file))[0]}-mdf"
    model.to_json_file(f"{base}.json")
    model.to_yaml_file(f"{base}.yaml")
