"""Check that a file is a real picture: PNG header, plausible size, and PIL can decode it."""

from __future__ import annotations

import struct
from pathlib import Path


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_picture(path: Path, min_side: int = 50, max_side: int = 20000) -> tuple[int, int]:
    """``path`` is a PNG of plausible size that decodes completely."""
    w, h = png_size(path)
    assert min_side <= w <= max_side and min_side <= h <= max_side, (path, w, h)
    try:
        from PIL import Image
    except ImportError:
        return w, h
    with Image.open(path) as im:
        im.load()
        assert im.size == (w, h)
    return w, h


def have_renderer() -> bool:
    from torchmdf.errors import TorchMDFError
    from torchmdf.mdf.picture import renderer

    try:
        renderer()
    except TorchMDFError:
        return False
    return True
