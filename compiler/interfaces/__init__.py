"""Compatibility APIs of other MDF tools (``torchmdf.interfaces.pytorch`` mirrors
``modeci_mdf.interfaces.pytorch``)."""

from .pytorch import mdf_to_pytorch, pytorch_to_mdf

__all__ = ["pytorch_to_mdf", "mdf_to_pytorch"]
