"""labels.txt: one class name per line, background first; the one parser."""

from __future__ import annotations

from pathlib import Path


def parse_labels(text: str | bytes) -> tuple[str, ...]:
    """Class names from the text of a label file: one per line, blank lines skipped.

    Bytes are decoded as UTF-8 (undecodable bytes replaced, so a damaged file still
    shows which names it has).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return tuple(s.strip() for s in text.splitlines() if s.strip())


def read_labels_file(path: str | Path) -> tuple[str, ...]:
    """Class names from a label file on disk (see :func:`parse_labels`)."""
    return parse_labels(Path(path).read_bytes())
