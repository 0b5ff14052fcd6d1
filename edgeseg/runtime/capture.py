"""Frame sources (camera, Pi camera, video, image folder, RTSP) and the capture thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.data.readers import IMAGE_SUFFIXES
from edgeseg.errors import EdgesegError
from edgeseg.runtime.reader import CaptureError, FrameSource

# FFmpeg's own limits for network streams, so a read the watchdog abandoned ends (and
# frees its socket) by itself; the watchdog notices a stall long before these.
_NET_TIMEOUTS_MS = (10_000, 10_000)

class OpenCVSource:
    """A camera index, video file or network stream through ``cv2.VideoCapture``."""

    def __init__(self, target: int | str, live: bool, name: str) -> None:
        self.target, self.live, self.name = target, live, name
        self.fps = 0.0
        self._cap: Any = None

    def fresh(self) -> OpenCVSource:
        """An unopened copy, for reconnecting while a hung read still holds this one."""
        return OpenCVSource(self.target, self.live, self.name)

    def open(self) -> None:
        if isinstance(self.target, str) and "://" in self.target:
            open_ms, read_ms = _NET_TIMEOUTS_MS
            self._cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
        else:
            self._cap = cv2.VideoCapture(self.target)
        if not self._cap.isOpened():
            self.close()
            hint = ("check the cable, `ls /dev/video*`, and that no other program uses it"
                    if isinstance(self.target, int) or str(self.target).startswith("/dev/")
                    else "check the URL and the network")
            if not self.live:
                raise EdgesegError(f"could not open {self.name}: not a video OpenCV can decode.")
            raise CaptureError(f"could not open {self.name}; {hint}.")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 0.0
        if self.live:  # keep the driver's queue short: we want the newest frame
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read() if self._cap is not None else (False, None)
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PicameraSource:
    """A Raspberry Pi CSI camera through picamera2 (Raspberry Pi OS Bookworm)."""

    live = True
    name = "the Pi camera (picamera2)"

    def __init__(self, size: tuple[int, int] = (640, 480)) -> None:
        self.size, self.fps = size, 30.0
        self._cam: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise EdgesegError(
                "--camera picam needs picamera2: sudo apt install python3-picamera2, and create "
                "the virtualenv with --system-site-packages so it can be imported."
            ) from e
        try:
            self._cam = Picamera2()
            # "RGB888" is B, G, R in memory: the order OpenCV and the Segmenter expect.
            cfg = self._cam.create_video_configuration(main={"format": "RGB888", "size": self.size})
            self._cam.configure(cfg)
            self._cam.start()
        except (RuntimeError, IndexError, OSError) as e:
            self.close()
            raise CaptureError(f"could not start the Pi camera ({e}); check the ribbon cable and "
                               "`rpicam-hello --list-cameras`.") from e

    def fresh(self) -> PicameraSource:
        return PicameraSource(self.size)

    def read(self) -> np.ndarray | None:
        try:
            return self._cam.capture_array("main") if self._cam is not None else None
        except (RuntimeError, OSError):
            return None

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.close()
            finally:
                self._cam = None


class ImageFolderSource:
    """Every image in a folder (or one image file), in name order."""

    live = False

    def __init__(self, path: Path, fps: float = 10.0) -> None:
        self.name, self.fps = str(path), fps
        self.paths = ([path] if path.is_file() else
                      sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not self.paths and (path / "images").is_dir():  # a dataset: images/ + annotations/
            path = path / "images"
            self.name = str(path)
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise EdgesegError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        self._next = 0
        self.skipped = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        from edgeseg.data.readers import read_image  # numpy + Pillow: the training reader

        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                # Upright by EXIF and RGB-converted as in training, then BGR like camera frames.
                return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR)
            except EdgesegError:
                self.skipped += 1  # unreadable file: skip it rather than stop the run
        return None

    def close(self) -> None:
        pass


def open_source(camera: str | None = None, source: str | None = None) -> FrameSource:
    """The source for ``--camera N|picam`` or ``--source FILE|DIR|URL`` (not yet opened)."""
    if (camera is None) == (source is None):
        raise EdgesegError("give exactly one of --camera N|picam or --source FILE|DIR|URL.")
    if camera is not None:
        if camera.lower() in ("picam", "picamera", "picamera2"):
            return PicameraSource()
        if camera.startswith("/dev/"):
            return OpenCVSource(camera, live=True, name=camera)
        if not camera.isdigit():
            raise EdgesegError(f"--camera {camera!r} must be a device number (0, 1, …), "
                               "a /dev/video path, or picam.")
        return OpenCVSource(int(camera), live=True, name=f"camera {camera}")
    assert source is not None
    if "://" in source:
        return OpenCVSource(source, live=True, name=source)
    path = Path(source)
    if not path.exists():
        raise EdgesegError(f"{path}: no such video, image or folder; check the path.")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path)
    return OpenCVSource(str(path), live=False, name=str(path))
