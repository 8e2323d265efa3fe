"""Imports every module that registers built-in ops."""

from . import aten_to_onnx, control_flow, mdf_ops, onnx_ops  # noqa: F401
