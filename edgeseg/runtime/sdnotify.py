"""systemd's sd_notify protocol: READY=1 and WATCHDOG=1 datagrams to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
import time


class SystemdNotifier:
    """Tells systemd the service is up and alive (``Type=notify`` + ``WatchdogSec=``).

    The protocol (sd_notify(3)): newline-separated ``KEY=value`` in one datagram to the
    AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract
    namespace). ``$WATCHDOG_USEC`` is the watchdog interval; pings go out at a third of
    it, so a late frame doesn't cost a restart. Outside systemd everything is a no-op.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.interval_s = int(usec) / 1e6 / 3 if usec.isdigit() and int(usec) and mine else None
        self._last_ping = 0.0
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # Never block the frame loop: a notification that doesn't fit is dropped.
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, message: str) -> bool:
        """Send one notification; False when not under systemd or the socket is gone."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self.address)
            return True
        except OSError:  # systemd went away or is behind: the run itself must go on
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def ping(self) -> None:
        """WATCHDOG=1, at most once per ``interval_s`` (call it as often as you like)."""
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")
        if self._sock is not None:
            self._sock.close()
            self._sock = None
