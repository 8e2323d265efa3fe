"""Compatibility APIs of other MDF tools (``torchmdf.interfaces.pytorch`` and
``torchmdf.interfaces.onnx`` mirror ``modeci_mdf.interfaces.pytorch`` and ``.onnx``)."""

from .onnx import mdf_to_onnx, onnx_to_mdf
from .pytorch import mdf_to_pytorch, pytorch_to_mdf

__all__ = ["pytorch_to_mdf", "mdf_to_pytorch", "onnx_to_mdf", "mdf_to_onnx"]
