"""How edgeseg writes an image size: height×width, as the --height/--width flags order them."""

from __future__ import annotations


def hw(height: int, width: int) -> str:
    """``416×320 (H×W)``: one size, height first, with the convention named."""
    return f"{height}×{width} (H×W)"
