"""The training data, checked first: ``data check``'s checks, left-out files and the split."""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from edgeseg.data.check import CheckResult, Issue, check_dataset, classes_hint, conversion_note
from edgeseg.data.dataset import IMAGES_DIR, Pair, resolve_split
from edgeseg.data.readers import IMAGE_SUFFIXES, MaskEncoding
from edgeseg.errors import EdgesegError

SHOWN = 4  # problems quoted in the one-line error (data check lists them all)


def _rel(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        try:
            return str(path.relative_to(root)) or path.name
        except ValueError:
            continue
    return str(path)


def _grouped(errors: list[tuple[Path, Issue]]) -> str:
    """The first error of each kind in full, then the other files with that kind of error."""
    kinds: dict[str, list[tuple[Path, Issue]]] = {}
    for root, issue in errors:
        stem = rf"(?<![\w-]){re.escape(issue.path.stem)}(?![\w-])"  # the file's own name, as a word
        kind = re.sub(r"\d[\d,]*", "#", re.sub(stem, "", issue.message))
        kinds.setdefault(kind, []).append((root, issue))
    parts = []
    for group in list(kinds.values())[:SHOWN]:
        (root, first), rest = group[0], group[1:]
        text = f"{_where(root, first.path)}{first.message.rstrip('.')}"
        if rest:
            names = ", ".join(_rel(i.path, [r]) for r, i in rest[:SHOWN])
            text += f" (the same in {names}{', ...' if len(rest) > SHOWN else ''})"
        parts.append(text)
    if len(kinds) > SHOWN:
        parts.append(f"and {len(kinds) - SHOWN} other kind(s) of error")
    return "; ".join(parts)


def _where(root: Path, path: Path) -> str:
    return "" if path == root or path.is_dir() else f"{_rel(path, [root])}: "


def _command(data: Path, n_classes: int, enc: MaskEncoding) -> str:
    opts = f" --classes {n_classes}"
    if enc.ignore_index != 255:
        opts += f" --ignore-index {enc.ignore_index}"
    if enc.binary:
        opts += " --binary"
    return f"edgeseg data check {data}{opts}"


def checked_split(data: Path, val: Optional[Path], n_classes: int, encoding: MaskEncoding,
                  val_fraction: float = 0.1, seed: int = 0, skip_bad: bool = False,
                  log: Callable[[str], None] = print) -> tuple[list[Pair], list[Pair]]:
    """Run ``data check`` on the training (and validation) folders, then split.

    Errors stop training with one line quoting the first problems and the files;
    with ``skip_bad`` the pairs concerned are left out and listed instead. Warnings,
    converted images and classes missing from validation are logged.

    Args:
        data: Training dataset folder (``images/`` + ``annotations/`` or ``train/`` + ``val/``).
        val: Separate validation folder.
        n_classes: Classes, background included.
        encoding: How masks are read.
        val_fraction: Share held out when there is no validation folder.
        seed: Seed of the split.
        skip_bad: Train on the good pairs when some have errors.
        log: Where the findings go (one line each).

    Returns:
        ``(train_pairs, val_pairs)``.

    Raises:
        EdgesegError: The data has errors (and ``skip_bad`` is off, or they concern
            the whole dataset), or fewer than 2 training / 1 validation pairs remain.
    """
    data = Path(data)
    roots = [data] + ([Path(val)] if val else [])
    results = [check_dataset(r, n_classes, encoding=encoding) for r in roots]
    errors = [(r.root, i) for r in results for i in r.errors]
    fatal = [e for e in errors if e[1].path.is_dir()]  # about a whole folder: skipping cannot help
    if errors and (not skip_bad or fatal):
        first = fatal or errors
        quoted = "; ".join(f"{_where(root, i.path)}{i.message.rstrip('.')}" for root, i in first[:SHOWN])
        # Name the folder the (first) errors are in: --val's, not --data's, when it is that one.
        where = first[0][0] if fatal or len({root for root, _ in errors}) == 1 else data
        command = _command(where, n_classes, encoding)
        if fatal:
            others = len(errors) - min(len(fatal), SHOWN)
            more = f" ({others} more data error(s): `{command}` lists them)" if others else ""
            raise EdgesegError(f"{where}: {quoted}.{more}")
        hints = " ".join(h for h in map(classes_hint, results) if h)
        raise EdgesegError(f"{where}: {len(errors)} data error(s): {_grouped(errors)}. "
                           + (f"{hints} " if hints else "")
                           + f"`{command}` lists them all; fix them or pass --skip-bad to train "
                             "on the good pairs.")
    for r in results:
        for w in r.warnings:
            log(f"warning: {_where(r.root, w.path)}{w.message}")
        note = conversion_note(r)
        if note:
            log(f"{r.root}: {note}")
    bad = frozenset().union(*(r.bad_files for r in results))
    classes = {m: c for r in results for m, c in r.mask_classes.items()}
    train, val_pairs = resolve_split(data, val, val_fraction, seed, classes=classes, exclude=bad)
    if bad:
        _log_left_out(results, bad, train + val_pairs, roots, log)
        for hint in filter(None, map(classes_hint, results)):
            log(f"hint: {hint}")
    _warn_missing_classes(train, val_pairs, classes, results[0], log)
    if len(train) < 2 or not val_pairs:
        raise EdgesegError(f"{data}: {len(train)} training and {len(val_pairs)} validation pairs; "
                           "need at least 2 and 1 (add images or lower --val-fraction).")
    return train, val_pairs


def _log_left_out(results: Sequence[CheckResult], bad: frozenset[Path], kept: list[Pair],
                  roots: Sequence[Path], log: Callable[[str], None]) -> None:
    """``left out 3 of 8 images (--skip-bad):`` and one line per image with the reason."""
    used = {p for pair in kept for p in pair}
    reasons = {i.path: i.message for r in results for i in r.errors}
    images: dict[Path, str] = {}
    lonely: list[Path] = []
    for p in sorted(b for b in bad if b not in used and b.is_file()):
        if p.parent.name == IMAGES_DIR:
            images.setdefault(p, reasons[p])
            continue
        owner = next((q for q in sorted((p.parent.parent / IMAGES_DIR).glob(f"{glob.escape(p.stem)}.*"))
                      if q.suffix.lower() in IMAGE_SUFFIXES), None)
        if owner is None:
            lonely.append(p)
        else:
            images.setdefault(owner, f"{_rel(p, roots)}: {reasons[p]}")
    if images:
        log(f"left out {len(images)} of {len(kept) + len(images)} images (--skip-bad):")
        for img, why in images.items():
            log(f"  {_rel(img, roots)}: {why}")
    if lonely:
        log(f"left out {len(lonely)} mask(s) without an image (--skip-bad): "
            + ", ".join(_rel(p, roots) for p in lonely))


def _warn_missing_classes(train: list[Pair], val: list[Pair], classes: dict[Path, frozenset[int]],
                          result: CheckResult, log: Callable[[str], None]) -> None:
    seen_train = frozenset().union(*(classes.get(m, frozenset()) for _, m in train))
    seen_val = frozenset().union(*(classes.get(m, frozenset()) for _, m in val))
    def names(ids: list[int]) -> str:
        return ("class " if len(ids) == 1 else "classes ") + ", ".join(f"{c} ({result.labels[c]})" for c in ids)

    missing = sorted(seen_train - seen_val)
    if missing and val:
        log(f"warning: validation has no example of {names(missing)}: not measured, val mIoU averages "
            "the other classes (add validation images that show them).")
    unseen = sorted(seen_val - seen_train)
    if unseen:
        log(f"warning: training has no example of {names(unseen)}, which validation holds: the model "
            "cannot learn them (add training images that show them).")
