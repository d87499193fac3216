"""systemd's readiness and watchdog protocol (sd_notify), without libsystemd.

It is one datagram on the AF_UNIX socket named by ``$NOTIFY_SOCKET``, so a
dependency would buy nothing.  ``READY=1`` is sent only once the client socket
is bound, so a unit ordered after ragexd (or ``systemctl start`` with
Type=notify) finds it connectable.  ``WATCHDOG=1`` is sent from the main loop,
not from a timer thread, so a wedged loop really does get restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger("ragexd.notify")

#: Variables that describe *our* service; workers must not inherit them, or a
#: worker could notify (or be mistaken for) the ragexd unit.
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                "LISTEN_PID", "LISTEN_FDNAMES")


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + raw[1:].encode()
    return raw


class Notifier:
    """Sends sd_notify messages when running under systemd; silently does nothing otherwise."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC")
        wpid = env.get("WATCHDOG_PID")
        if usec:
            try:
                pid_ok = not wpid or int(wpid) == os.getpid()
                if pid_ok and int(usec) > 0:
                    self.watchdog_interval = int(usec) / 1e6 / 2
            except ValueError:
                log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, wpid)
        self._last_watchdog = 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), _address(self.address))
            return True
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        fields = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            fields.append(f"STATUS={status}")
        return self.send(*fields)

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def next_watchdog_in(self, now: float | None = None) -> float | None:
        """Seconds until the next WATCHDOG=1 is due, or None when there is no watchdog."""
        if self.watchdog_interval is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self._last_watchdog + self.watchdog_interval - now)

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog if due.  Cheap to call every loop iteration."""
        if self.watchdog_interval is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_watchdog < self.watchdog_interval:
            return False
        self._last_watchdog = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
