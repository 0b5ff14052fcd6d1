"""Where drawn frames go: a video file (finalized atomically) and a window."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgeseg.atomic import atomic_path
from edgeseg.errors import EdgesegError

_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class VideoSaver:
    """Writes frames to a video under a temporary name, renamed into place on ``close()``.

    The writer opens on the first frame, which fixes the video's size; later frames
    of another size (an image folder) are resized to it.

    Args:
        path: Output video (.mp4, .avi, .mkv, .mov).
        fps: Frame rate written into the file.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        self.fourcc = _CODECS.get(self.path.suffix.lower())
        if self.fourcc is None:
            raise EdgesegError(f"--save {self.path}: use one of {', '.join(_CODECS)}.")
        self.fps = fps if fps > 0 else 15.0
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, img: np.ndarray) -> None:
        if self._writer is None:
            try:
                tmp = self._stack.enter_context(atomic_path(self.path))
            except OSError as e:
                raise EdgesegError(f"--save {self.path}: can't be written ({e.strerror or e}); "
                                   "check the folder exists, is writable and has space.") from e
            self._size = (img.shape[1], img.shape[0])
            self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                self.close(keep=False)
                raise EdgesegError(f"OpenCV can't write {self.path} ({self.fourcc}); "
                                   "try --save out.avi.")
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(img)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it into place (``keep=False`` deletes it instead)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep:
            self._stack.close()
        else:
            err = RuntimeError("discarded")
            self._stack.__exit__(RuntimeError, err, None)


def display_available() -> bool:
    """Whether a window can be shown: a display server on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Display:
    """An OpenCV window; ``show()`` returns False once the user pressed q/Esc or closed it.

    Args:
        title: Window title.
        note: Called with a one-line message if the window can't be opened (headless
            OpenCV build), after which ``show()`` does nothing.
    """

    def __init__(self, title: str = "edgeseg", note: Callable[[str], None] = print) -> None:
        self.title, self.note = title, note
        self.enabled = True
        self._opened = False

    def show(self, img: np.ndarray) -> bool:
        if not self.enabled:
            return True
        try:
            cv2.imshow(self.title, img)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error:
            self.enabled = False
            self.note("this OpenCV build can't open windows (opencv-python-headless); running "
                      "headless: use --stream PORT or --save FILE to see the output.")
            return True
        if self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return False
        self._opened = True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.enabled and self._opened:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)


class FrameCollector:
    """Saves frames (and their predicted masks) in the dataset layout, bounded in count and size.

    ``DIR/images/NAME.jpg`` and ``DIR/annotations/NAME.png`` (class ids as 8-bit grey),
    ready to correct and pass to ``edgeseg train``. When ``max_files`` pairs or
    ``max_mb`` megabytes are exceeded the oldest pairs are deleted (counted in ``evicted``).

    Args:
        root: The dataset folder (created).
        max_files: Most image/mask pairs kept.
        max_mb: Most megabytes kept, images and masks together.
        min_interval_s: Seconds between saves, so one bad minute isn't 1,800 copies of itself.
    """

    def __init__(self, root: str | os.PathLike, max_files: int = 200, max_mb: float = 200.0,
                 min_interval_s: float = 1.0) -> None:
        import time

        self._clock = time.monotonic
        self.root = Path(root)
        self.images, self.masks = self.root / "images", self.root / "annotations"
        try:
            self.images.mkdir(parents=True, exist_ok=True)
            self.masks.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EdgesegError(f"--collect {self.root}: can't create it ({e.strerror}).") from e
        self.max_files, self.max_bytes = max_files, int(max_mb * 1e6)
        self.min_interval_s = min_interval_s
        self.saved = self.evicted = self.failed = 0
        self.error = ""
        self._last = -1e9
        # (stem, bytes) oldest first; what an earlier run left counts too.
        self._kept = [(p.stem, p.stat().st_size + _size(self.masks / f"{p.stem}.png"))
                      for p in sorted(self.images.glob("*.jpg")) if not p.name.startswith(".")]

    def __call__(self, frame: np.ndarray, mask: np.ndarray) -> bool:
        """Save one pair (False when skipped by the rate limit or a failed write)."""
        import datetime

        now = self._clock()
        if now - self._last < self.min_interval_s:
            return False
        self._last = now
        stem = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        img, msk = self.images / f"{stem}.jpg", self.masks / f"{stem}.png"
        try:
            # The mask first: an image never exists without its mask.
            with atomic_path(msk) as tmp:
                if not cv2.imwrite(str(tmp), mask.astype(np.uint8)):
                    raise OSError(f"OpenCV could not write {msk}")
            with atomic_path(img) as tmp:
                if not cv2.imwrite(str(tmp), frame):
                    raise OSError(f"OpenCV could not write {img}")
        except OSError as e:
            msk.unlink(missing_ok=True)
            self.failed += 1
            self.error = str(e)
            return False
        self.saved += 1
        self._kept.append((stem, _size(img) + _size(msk)))
        while self._kept and (len(self._kept) > self.max_files or
                              sum(b for _, b in self._kept) > self.max_bytes):
            old, _ = self._kept.pop(0)
            for p in (self.images / f"{old}.jpg", self.masks / f"{old}.png"):
                p.unlink(missing_ok=True)
            self.evicted += 1
        return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
