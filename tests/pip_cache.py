"""Packages the tests fetch once into a cache folder (they pin what edgeseg's venv can't hold)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def cache_dir() -> Path:
    """``$EDGESEG_TEST_CACHE``, default ``~/.cache/edgeseg-tests``."""
    return Path(os.environ.get("EDGESEG_TEST_CACHE", Path.home() / ".cache" / "edgeseg-tests"))


def pip_install_or_skip(python: str | Path, *args: str, what: str) -> None:
    """``python -m pip install -q ARGS``; skips when the package registry is unreachable.

    Raises:
        RuntimeError: pip failed for another reason (a real failure, never a skip).
    """
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True)
    if proc.returncode:
        text = proc.stdout + proc.stderr
        if any(s in text for s in ("No matching distribution", "Could not find", "connection")):
            pytest.skip(f"the package registry is unreachable: {text.strip().splitlines()[-1]}")
        raise RuntimeError(f"pip install {what} failed:\n{text}")
