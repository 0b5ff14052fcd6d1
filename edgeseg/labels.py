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


# The names file beside a dataset: edgeseg's (data import, synth and demo write it), then
# labelme's (labelme2voc writes class_names.txt, background first).
NAMES_FILES = ("labels.txt", "class_names.txt")


def find_names_file(*folders: str | Path) -> Path | None:
    """The first names file (:data:`NAMES_FILES`) in ``folders``, searched in order."""
    for folder in folders:
        for name in NAMES_FILES:
            path = Path(folder) / name
            if path.is_file():
                return path
    return None


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names by id from a names file; labelme's ``__ignore__`` line (id -1, the
    ignore label, first in its input labels.txt) is not a class and is dropped."""
    names = read_labels_file(path)
    return names[1:] if names[:1] == ("__ignore__",) else names
