"""Frame sources (camera, Pi camera, video, image folder, RTSP) and the capture thread."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class CaptureError(EdgesegError):
    """A source that may work if tried again (camera busy, stream hiccup)."""


@dataclass(frozen=True)
class Retry:
    """Bounded retry with exponential backoff: ``backoff_s * 2**i``, capped at ``max_s``."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_s: float = 4.0

    def delays(self) -> list[float]:
        return [min(self.backoff_s * 2**i, self.max_s) for i in range(self.attempts)]


DEFAULT_RETRY = Retry()


class FrameSource(Protocol):
    """What the capture thread reads from. ``read()`` returns None when no frame came."""

    name: str
    live: bool
    fps: float

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class OpenCVSource:
    """A camera index, video file or network stream through ``cv2.VideoCapture``."""

    def __init__(self, target: int | str, live: bool, name: str) -> None:
        self.target, self.live, self.name = target, live, name
        self.fps = 0.0
        self._cap: Any = None

    def open(self) -> None:
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


def open_with_retry(src: FrameSource, retry: Retry | None = None) -> None:
    """Open ``src``, retrying transient failures with backoff; then a clear error."""
    retry = retry or DEFAULT_RETRY
    delays = retry.delays()
    for i in range(len(delays) + 1):
        try:
            src.open()
            return
        except CaptureError as e:
            if i == len(delays):
                raise CaptureError(f"{e} (gave up after {i + 1} attempts)") from e
            time.sleep(delays[i])


_END = object()


class FrameReader:
    """Reads a source on its own thread.

    Live sources keep only the newest frame (older ones are counted in ``dropped``),
    so latency doesn't grow when inference is slower than the camera; a live source
    that stops delivering is reopened with backoff before giving up. Files and
    folders are read in order through a short queue, so no frame is skipped.

    Args:
        src: An opened source.
        retry: Backoff policy for a live source that stops delivering.
    """

    def __init__(self, src: FrameSource, retry: Retry | None = None) -> None:
        self.src, self.retry = src, retry or DEFAULT_RETRY
        self.dropped = 0
        self.captured = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1 if src.live else 4)
        self._thread = threading.Thread(target=self._loop, name="edgeseg-capture", daemon=True)
        self._thread.start()

    def _recover(self) -> np.ndarray | None:
        """Reopen a live source that returned no frame; None when it stays silent."""
        for delay in self.retry.delays():
            if self._stop.wait(delay):
                return None
            self.src.close()
            try:
                self.src.open()
            except CaptureError:
                continue
            frame = self.src.read()
            if frame is not None:
                return frame
        self.error = CaptureError(
            f"{self.src.name} stopped delivering frames after {self.captured} frames and "
            f"{self.retry.attempts} reconnection attempts; check the connection.")
        return None

    def _put(self, item: Any) -> None:
        if self.src.live:
            try:  # replace the unread frame with the newer one
                self._queue.get_nowait()
                self.dropped += item is not _END
            except queue.Empty:
                pass
            self._queue.put_nowait(item)
            return
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.src.read()
                if frame is None and self.src.live:
                    frame = self._recover()
                if frame is None:
                    break
                self.captured += 1
                self._put(frame)
        except Exception as e:  # noqa: BLE001 - handed to the consumer, raised there
            self.error = e
        finally:
            self._put(_END)

    def read(self, timeout: float = 30.0) -> np.ndarray | None:
        """The next frame (the newest, for live sources); None at the end of a file.

        Raises:
            EdgesegError: When the source failed or went silent for ``timeout`` seconds.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise CaptureError(f"no frame from {self.src.name} for {timeout:.0f} s.") from None
        if item is _END:
            self._queue.put_nowait(_END)  # later reads see the end too
            if self.error is not None:
                raise self.error
            return None
        return item

    def close(self) -> None:
        """Stop the thread and release the source."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)
        self.src.close()
