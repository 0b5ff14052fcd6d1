"""The capture thread: newest-frame hand-off, a stall watchdog and reconnection with backoff."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeseg.errors import EdgesegError


class CaptureError(EdgesegError):
    """A source that may work if tried again (camera busy, stream hiccup)."""


@dataclass(frozen=True)
class Retry:
    """Reconnection policy: ``attempts`` tries (None: for ever), waiting ``backoff_s * 2**i``
    seconds capped at ``max_s`` before try ``i``.

    The cap is short (2 s) so that frames flow again within seconds of a stream coming back.
    """

    attempts: int | None = 4
    backoff_s: float = 0.5
    max_s: float = 2.0

    def delays(self) -> Iterator[float]:
        i = 0
        while self.attempts is None or i < self.attempts:
            yield min(self.backoff_s * 2 ** min(i, 30), self.max_s)
            i += 1

    def describe(self) -> str:
        return "for ever" if self.attempts is None else f"{self.attempts} reconnection attempts"


DEFAULT_RETRY = Retry()


class FrameSource(Protocol):
    """What the capture thread reads from. ``read()`` returns None when no frame came.

    A source may also offer ``fresh()`` → an unopened copy, used after a stalled read
    was abandoned (the hung thread still holds the old handle and closes it when, if
    ever, its read returns).
    """

    name: str
    live: bool
    fps: float

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


def open_with_retry(src: FrameSource, retry: Retry | None = None,
                    note: Callable[[str], None] | None = None,
                    idle: Callable[[], object] | None = None) -> None:
    """Open ``src``, retrying transient failures (:class:`CaptureError`) with backoff.

    ``note`` gets a line for the first failures (then every 30th); ``idle`` is called
    between attempts (watchdog pings).

    Raises:
        CaptureError: After the last attempt, naming the source and the attempts.
    """
    retry = retry or DEFAULT_RETRY
    delays = retry.delays()
    tries = 0
    while True:
        tries += 1
        try:
            src.open()
            return
        except CaptureError as e:
            delay = next(delays, None)
            if delay is None:
                raise CaptureError(f"{str(e).rstrip('.')} (gave up after {tries} attempts).") from e
            if note is not None and _worth_noting(tries):
                of = ", retrying for ever" if retry.attempts is None else f" of {retry.attempts + 1}"
                note(f"warning: {str(e).rstrip('.')} (attempt {tries}{of})")
            if idle is not None:
                idle()
            time.sleep(delay)


def _worth_noting(n: int) -> bool:
    """Log the first failures of an outage, then every 30th: a long outage stays readable."""
    return n <= 3 or n % 30 == 0


_END = object()


class FrameReader:
    """Reads a source on its own thread; for live sources a watchdog reconnects it.

    Live sources keep only the newest frame (older ones are counted in ``dropped``),
    so latency doesn't grow when inference is slower than the camera. Files and folders
    are read in order through a short queue, so no frame is skipped.

    A live source whose ``read()`` returns None, or that delivers nothing for
    ``stall_s`` seconds (a hung driver, a stream that stops sending but keeps its
    connection open), is reopened with the ``retry`` backoff. The watchdog doesn't wait
    for a blocked read to return: it abandons that thread and opens a fresh source.
    Backoff restarts once a reopened source delivers a frame.

    Args:
        src: An opened source.
        retry: Reconnection policy for live sources (``Retry(attempts=None)``: for ever).
        stall_s: Seconds without a frame before a live source counts as stalled.
        first_frame_s: Seconds a reopened source may take to deliver its first frame
            (an RTSP open takes ~2 s on loopback; a reopen pending while the server is
            stalled completes as soon as it answers again, so this doesn't delay recovery).
        note: Receives one-line messages about stalls and reconnections.
    """

    def __init__(self, src: FrameSource, retry: Retry | None = None, stall_s: float = 3.0,
                 first_frame_s: float = 10.0, note: Callable[[str], None] | None = None) -> None:
        self.src, self.retry = src, retry or DEFAULT_RETRY
        self.stall_s, self.first_frame_s = stall_s, first_frame_s
        self.note = note or (lambda msg: None)
        self.dropped = self.captured = self.reconnects = self.stalls = 0
        self.state = "streaming"
        self.frame_time = 0.0  # time.monotonic() when the frame last returned was captured
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1 if src.live else 4)
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._workers: list[threading.Thread] = []
        target = self._supervise if src.live else self._read_file
        self._thread = threading.Thread(target=target, name="edgeseg-capture", daemon=True)
        self._thread.start()

    # -- files and folders: in order, no watchdog ---------------------------------------
    def _read_file(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.src.read()
                if frame is None:
                    break
                self.captured += 1
                self._put((frame, time.monotonic()))
        except Exception as e:  # noqa: BLE001 - handed to the consumer, raised there
            self.error = e
        finally:
            self._put(_END)

    # -- live sources: one worker per connection, watched by this thread ----------------
    def _session(self, src: FrameSource, token: list[bool], opened: bool,
                 done: threading.Event, result: dict[str, Any]) -> None:
        """Open (unless already open) and read ``src`` until it fails or is abandoned."""
        try:
            if not opened:
                src.open()
            while not self._stop.is_set() and token[0]:
                frame = src.read()
                if not token[0]:
                    break  # abandoned by the watchdog while blocked: drop the late frame
                if frame is None:
                    break
                with self._lock:
                    self._last = time.monotonic()
                    result["frames"] += 1
                    self.captured += 1
                self._put((frame, time.monotonic()))
        except CaptureError as e:
            result["error"] = e
        except Exception as e:  # noqa: BLE001 - not transient: end the run with it
            result["fatal"] = e
        finally:
            try:
                src.close()
            finally:
                done.set()

    def _supervise(self) -> None:
        src, opened, failures = self.src, True, 0
        delays = self.retry.delays()
        try:
            while not self._stop.is_set():
                token, done, result = [True], threading.Event(), {"frames": 0}
                with self._lock:
                    self._last = time.monotonic()
                worker = threading.Thread(target=self._session, args=(src, token, opened, done,
                                                                      result),
                                          name="edgeseg-capture-read", daemon=True)
                worker.start()
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
                stalled = self._watch(done, result)
                if self._stop.is_set():
                    token[0] = False
                    break
                if "fatal" in result:
                    raise result["fatal"]
                if stalled:
                    token[0] = False  # the blocked worker closes its handle when it returns
                    self.stalls += 1
                if result["frames"]:
                    failures, delays = 0, self.retry.delays()  # it worked: back off afresh
                failures += 1
                why = (f"no frame from {src.name} for {self.stall_s:g} s" if stalled and
                       result["frames"] else
                       f"{src.name} sent no frame within {self.first_frame_s:g} s of opening"
                       if stalled else str(result.get("error") or
                                           f"{src.name} stopped delivering frames").rstrip("."))
                delay = next(delays, None)
                if delay is None:
                    self.error = CaptureError(
                        f"{self.src.name} stopped delivering frames after {self.captured} "
                        f"frames and {self.retry.attempts} reconnection attempts; check the "
                        "connection (--reconnect forever keeps trying).")
                    break
                self.state = "reconnecting"
                if _worth_noting(failures):
                    self.note(f"warning: {why}; reconnecting in {delay:g} s "
                              f"(attempt {failures}, {self.reconnects + 1} in all)")
                if self._stop.wait(delay):
                    break
                src = src.fresh() if stalled and hasattr(src, "fresh") else src
                opened = False
                self.reconnects += 1
        except Exception as e:  # noqa: BLE001 - handed to the consumer, raised there
            self.error = e
        finally:
            self._put(_END)

    def _watch(self, done: threading.Event, result: dict[str, Any]) -> bool:
        """Wait for the worker to end (False) or to deliver nothing for too long (True)."""
        while not done.wait(0.1):
            if self._stop.is_set():
                return False
            with self._lock:
                idle = time.monotonic() - self._last
                limit = self.stall_s if result["frames"] else self.first_frame_s
            if result["frames"]:
                self.state = "streaming"
            if idle > limit:
                return True
        return False

    def _put(self, item: Any) -> None:
        if self.src.live:
            with self._lock:  # an abandoned worker may still be putting
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

    def read(self, timeout: float = 30.0, idle: Callable[[], Any] | None = None
             ) -> np.ndarray | None:
        """The next frame (the newest, for live sources); None at the end of a file.

        A live source is waited for as long as the watchdog keeps reconnecting it;
        ``idle`` is called about twice a second meanwhile (health pings).

        Raises:
            EdgesegError: When the source failed, ran out of reconnection attempts, or
                (a file) gave nothing for ``timeout`` seconds.
        """
        waited = 0.0
        while True:
            try:
                item = self._queue.get(timeout=0.5)
                break
            except queue.Empty:
                waited += 0.5
                if idle is not None:
                    idle()
                if not self.src.live and waited >= timeout:
                    raise CaptureError(f"no frame from {self.src.name} for {timeout:.0f} s."
                                       ) from None
        if item is _END:
            self._queue.put_nowait(_END)  # later reads see the end too
            if self.error is not None:
                raise self.error
            return None
        frame, self.frame_time = item
        return frame

    @property
    def last_frame_age(self) -> float:
        """Seconds since the last frame (or since the current connection started)."""
        with self._lock:
            return time.monotonic() - self._last

    def close(self) -> None:
        """Stop the threads and release the source (a hung read is left to its thread)."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)
        # Let the readers release their captures before the interpreter exits: OpenCV
        # aborts the process when a capture is torn down mid-read at exit. A read that
        # is truly hung is left behind after a bounded wait.
        deadline = time.monotonic() + 3.0
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if not self.src.live:
            self.src.close()
