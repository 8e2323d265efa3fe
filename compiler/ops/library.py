"""Imports every module that registers built-in ops."""

from . import mdf_ops, onnx_ops  # noqa: F401
