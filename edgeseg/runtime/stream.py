"""A tiny MJPEG server so a headless Pi can be watched from a browser, with its health."""

from __future__ import annotations

import errno
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

ALL_INTERFACES = ("0.0.0.0", "")


def network_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, by interface (Linux: the
    SIOCGIFADDR ioctl; elsewhere what the hostname resolves to). Empty when the network
    is down."""
    found: list[str] = []
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    raw = fcntl.ioctl(s.fileno(), 0x8915,  # SIOCGIFADDR
                                      struct.pack("256s", name.encode()[:15]))
                except OSError:  # an interface that is down or has no IPv4 address
                    continue
                found.append(socket.inet_ntoa(raw[20:24]))
    except (ImportError, OSError, AttributeError):  # not Linux
        try:
            found = [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                         socket.AF_INET)]
        except OSError:
            found = []
    return list(dict.fromkeys(a for a in found if not a.startswith("127.")))


# The page polls /stats once a second and shows it beside the video. TOKEN is replaced
# by "?token=..." when the server requires one (a browser can't send a header for <img>).
_PAGE = """<!doctype html><html><head><title>edgeseg</title><meta charset="utf-8"></head>
<body style="margin:0;background:#111;color:#ddd;font:14px monospace;display:flex">
<img src="/stream.mjpgTOKEN" style="max-width:75%">
<pre id="stats" style="padding:8px;margin:0">waiting for /stats…</pre>
<script>
async function poll() {
  try {
    const r = await fetch("/statsTOKEN");
    document.getElementById("stats").textContent = JSON.stringify(await r.json(), null, 1);
  } catch (e) { document.getElementById("stats").textContent = "no answer: " + e; }
}
poll(); setInterval(poll, 1000);
</script></body></html>
"""
_BOUNDARY = "edgesegframe"


class MjpegServer:
    """Serves the newest frame: MJPEG at ``/stream.mjpg``, page at ``/``, JPEG at ``/frame.jpg``.

    ``publish()`` only stores a reference; frames are JPEG-encoded in the client
    threads, once per frame however many clients watch, and not at all when none do.

    Args:
        port: TCP port (0 picks a free one; see ``port``).
        host: Interface to listen on: 127.0.0.1 (this machine only) unless opened up.
        quality: JPEG quality 1-100.
        token: When set, every request must carry it (``?token=`` or
            ``Authorization: Bearer``); others get 401.
        stats: Returns the ``/stats`` dict (:meth:`Health.snapshot`); None: no stats.
        metrics: Returns the ``/metrics`` body (Prometheus text format).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80,
                 token: str | None = None, stats: Any = None, metrics: Any = None) -> None:
        self.quality, self.token = quality, token
        self.stats, self.metrics = stats, metrics
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._closed = False
        if not 0 <= port <= 65535:
            raise EdgesegError(f"--stream {port}: a port must be 1-65535 (8080, say; 0 picks a "
                               "free one).")
        try:
            self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as e:
            if not (isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL):
                raise EdgesegError(f"can't serve on {host}:{port} ({e.strerror or e}); "
                                   "pick another port with --stream PORT.") from e
            raise EdgesegError(f"--host {host}: no such host or address ({e.strerror or e}); "
                               "use 127.0.0.1 (this machine only), 0.0.0.0 (the network) "
                               "or an address of this machine.") from e
        self._httpd.daemon_threads = True
        self.host, self.port = host, int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="edgeseg-mjpeg", daemon=True)
        self._thread.start()

    @property
    def all_interfaces(self) -> bool:
        """Whether the server listens on every interface (``--host 0.0.0.0``)."""
        return self.host in ALL_INTERFACES

    @property
    def url(self) -> str:
        """The first of :attr:`urls`."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Where a browser can open the stream: on all interfaces, this machine's hostname
        and each non-loopback IPv4 address (as Jupyter prints them); else the host given."""
        query = f"?token={self.token}" if self.token else ""
        if self.host == "127.0.0.1":
            hosts = ["localhost"]
        elif self.all_interfaces:
            hosts = [socket.gethostname(), *network_addresses()]
        else:
            hosts = [self.host]
        return [f"http://{h}:{self.port}/{query}" for h in hosts]

    def authorized(self, query: str, header: str | None) -> bool:
        """Whether a request carries the token (always, when there is none)."""
        if self.token is None:
            return True
        given = parse_qs(query).get("token", [""])[0]
        if header and header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def publish(self, frame: np.ndarray) -> None:
        """Make ``frame`` (BGR) the one clients see next. The caller must not modify it after."""
        with self._cond:
            self._frame, self._seq = frame, self._seq + 1
            self._cond.notify_all()

    def jpeg(self, after: int = 0, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """(sequence number, JPEG) of a frame newer than ``after``; None on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._seq > after, timeout):
                return None
            if self._closed or self._frame is None:
                return None
            seq, frame = self._seq, self._frame
            if self._jpeg[0] == seq:
                return self._jpeg
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return None
        with self._cond:
            self._jpeg = (seq, buf.tobytes())
            return self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._closed


def _handler(server: MjpegServer) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the terminal for the run's output
            pass

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            path = url.path
            if not server.authorized(url.query, self.headers.get("Authorization")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="edgeseg"')
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"401: add ?token=TOKEN (printed by edgeseg run at start)\n")
                return
            if path in ("/", "/index.html"):
                tok = f"?token={server.token}" if server.token else ""
                self._send(_PAGE.replace("TOKEN", tok).encode(), "text/html; charset=utf-8")
            elif path == "/stats" and server.stats is not None:
                self._send(json.dumps(server.stats()).encode(), "application/json")
            elif path == "/metrics" and server.metrics is not None:
                self._send(server.metrics(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/frame.jpg":
                got = server.jpeg(after=0, timeout=5.0)
                if got is None:
                    self.send_error(503, "no frame yet")
                else:
                    self._send(got[1], "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            seq = 0
            try:
                while not server.closed:
                    got = server.jpeg(after=seq)
                    if got is None:
                        continue
                    seq, data = got
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(data)}\r\n\r\n".encode())
                    self.wfile.write(data + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

    return Handler
