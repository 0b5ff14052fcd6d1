"""The test cache: what the tests build once per machine (pinned packages, a reference run, the C build).

One folder, ``$EDGESEG_TEST_CACHE`` (default ``~/.cache/edgeseg-tests``), holding one
folder per edgeseg version; an entry is ``NAME-KEY``, KEY a hash of everything it was
made from. Only the current version's folder, and in it each NAME's current KEY, is
kept: older ones are deleted when a test next asks for the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from edgeseg import __version__

_pruned: set[Path] = set()


def cache_root() -> Path:
    """``$EDGESEG_TEST_CACHE``, default ``~/.cache/edgeseg-tests`` (delete it to clear the cache)."""
    return Path(os.environ.get("EDGESEG_TEST_CACHE", Path.home() / ".cache" / "edgeseg-tests"))


def prune(root: Path, keep: str) -> list[str]:
    """Delete everything in ``root`` but ``keep`` (other versions' entries); returns the names."""
    gone = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.name != keep:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            gone.append(p.name)
    return gone


def cache_dir() -> Path:
    """This edgeseg version's folder of the test cache (other versions' folders are deleted)."""
    root = cache_root()
    here = root / f"edgeseg-{__version__}"
    if root not in _pruned:
        prune(root, here.name)
        _pruned.add(root)
    here.mkdir(parents=True, exist_ok=True)
    return here


def cache_key(parts: Iterable[str | bytes | Path]) -> str:
    """12 hex digits of SHA-256 over ``parts`` (a Path counts by its bytes)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.read_bytes() if isinstance(part, Path) else (
            part if isinstance(part, bytes) else part.encode())
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:12]


def cached(name: str, parts: Iterable[str | bytes | Path], build: Callable[[Path], None]) -> Path:
    """The folder ``NAME-KEY`` of the cache, made by ``build(folder)`` when missing.

    ``build`` writes into a temporary folder that is renamed into place only when it
    returns, so an interrupted build leaves nothing half-made; entries of ``name`` with
    another key (made from other inputs) are deleted.
    """
    root = cache_dir()
    entry = root / f"{name}-{cache_key(parts)}"
    if entry.is_dir():
        return entry
    for old in root.glob(f"{name}-*"):
        if old.is_dir() and len(old.name) == len(entry.name):
            shutil.rmtree(old, ignore_errors=True)
    tmp = root / f".{entry.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        try:
            tmp.rename(entry)
        except OSError:  # another session finished the same entry first
            shutil.rmtree(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry


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
