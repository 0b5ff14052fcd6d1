"""Calibration images for int8 quantization, read by the same preprocessing as training."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.preprocess import Preprocessing, preprocess

MIN_RECOMMENDED = 100
# The project's default set (synthetic scenes like the demo's); used when --calib is not given.
# It lives in the checkout's top-level calibration/; a wheel carries it as edgeseg/calibration/
# (pyproject's package-dir mapping), so an install without a checkout has it too.
_PACKAGE = Path(__file__).resolve().parents[1]
DEFAULT_DIR = (_PACKAGE / "calibration" if (_PACKAGE / "calibration").is_dir()
               else _PACKAGE.parent / "calibration")


@dataclass(frozen=True)
class CalibrationSet:
    """A seeded sample of calibration images.

    Attributes:
        folder: Where the images came from.
        files: The sampled files, in the order they are fed.
        sha256: Hash of the sampled files' names and bytes (recorded in the sidecar).
    """

    folder: Path
    files: tuple[Path, ...]
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "count": len(self.files), "sha256": self.sha256}

    def batches(self, spec: Preprocessing,
                progress: Optional[Callable[[int], None]] = None) -> Iterator[list[np.ndarray]]:
        """Yield ``[1×H×W×3 float32]`` inputs, as a TFLite representative dataset.

        The first image gets one black and one white pixel, so the input range
        seen by the calibrator is exactly 0..255 and the uint8 input tensor of the
        int8 model is the raw pixel (scale 1/std, zero point = mean).
        """
        for i, path in enumerate(self.files):
            rgb = read_calibration_image(path)
            if i == 0:
                rgb = rgb.copy()
                rgb[0, 0], rgb[-1, -1] = 0, 255
            yield [preprocess(rgb, spec)[None]]
            if progress:
                progress(i + 1)


def read_calibration_image(path: Path) -> np.ndarray:
    """Read a calibration image as H×W×3 uint8 RGB, exactly as training reads its images.

    Grey, RGBA, palette, CMYK and 16-bit files are converted and EXIF orientation
    applied (:func:`edgeseg.data.readers.read_image`).

    Raises:
        EdgesegError: The file is empty or unreadable (naming it).
    """
    from edgeseg.data.readers import read_image

    try:
        return read_image(path)
    except EdgesegError as e:
        raise EdgesegError(f"calibration image {e}") from None


def load_calibration(folder: Optional[str | Path], count: int = 200, seed: int = 0,
                     warn: Callable[[str], None] = print) -> CalibrationSet:
    """Pick up to ``count`` images of ``folder`` (default: the set shipped in calibration/).

    Accepts a flat folder of images or a dataset folder with ``images/``.

    Raises:
        EdgesegError: The folder is missing or has no images.
    """
    from edgeseg.data.dataset import list_images
    from edgeseg.data.readers import IMAGE_SUFFIXES

    root = Path(folder) if folder else DEFAULT_DIR
    if not root.is_dir():
        raise EdgesegError(f"calibration folder {root} does not exist; pass --calib DIR with "
                           "100+ images like the ones the model will see.")
    try:
        files = list_images(root)
    except EdgesegError:
        files = []
    if not files:
        raise EdgesegError(f"calibration folder {root} has no images ({'/'.join(IMAGE_SUFFIXES)}); pass "
                           "--calib DIR with 100+ images like the ones the model will see.")
    if count < 1:
        raise EdgesegError(f"--calib-count must be at least 1 (got {count}).")
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(files), size=min(count, len(files)), replace=False))
    chosen = tuple(files[i] for i in picked)
    if len(chosen) < MIN_RECOMMENDED:
        warn(f"warning: calibrating on {len(chosen)} images from {root}; {MIN_RECOMMENDED}+ "
             "give more reliable int8 ranges.")
    h = hashlib.sha256()
    for p in chosen:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return CalibrationSet(root, chosen, h.hexdigest())
