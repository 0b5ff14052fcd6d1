"""Atomic file writes: a temp file in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    An exception or Ctrl-C inside the block removes the temporary file, so an
    interrupted run never leaves a half-written artifact under the final name.

    Args:
        path: Final destination.
        suffix: Suffix of the temporary file (defaults to the destination's, so
            writers that infer the format from the extension keep working).
    """
    dest = Path(path)
    if dest.is_dir():
        raise EdgesegError(f"cannot write {dest}: it is a folder; name a file.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.stem}.", suffix=suffix if suffix is not None else dest.suffix,
            dir=dest.parent,
        )
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise EdgesegError(f"cannot write {dest}: {dest.parent} is not a writable folder ({why}); "
                           "choose another output path.") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; artifacts are read by other users (a Pi service user).
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, fix: str) -> Any:
    """Read a JSON file edgeseg wrote; a damaged one is a one-line EdgesegError.

    Args:
        path: The file.
        fix: What the user should do, e.g. ``"delete it to start over"``.
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EdgesegError(f"{p} is not valid JSON ({e}); {fix}.") from None


def read_csv_rows(path: str | os.PathLike, fix: str) -> list[dict[str, float]]:
    """Rows of a numeric CSV with a header (a training history); one-line error when damaged."""
    import csv

    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [{k: float(v) for k, v in r.items()} for r in rows]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as e:
        raise EdgesegError(f"{p} is not a readable history ({e}); {fix}.") from None
