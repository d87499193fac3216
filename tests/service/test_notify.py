"""ragexd speaks systemd's notify protocol correctly (what Type=notify relies on).

The test plays systemd's part for real: it binds the AF_UNIX datagram socket
named by NOTIFY_SOCKET, with SO_PASSCRED so that, like systemd with
NotifyAccess=main, it knows which pid sent each message.  Then:

* READY=1 arrives, and at that very moment ragexd's ZeroMQ socket exists and
  answers HELLO and PING (systemctl start returns on READY, so a client that
  runs right after must get through);
* WATCHDOG=1 keeps arriving at WATCHDOG_USEC/2 (>= 3 within ~2 s at 1 s);
* SIGTERM brings STOPPING=1 and a clean exit 0;
* every message comes from ragexd's main pid (else NotifyAccess=main drops it).
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragexd.protocol import Op, Reply
from tests.harness import REPO, Client, make_env

READY_DEADLINE = 60.0


class NotifyListener:
    """The receiving end of sd_notify, as systemd has it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[float, int | None, list[str]]] = []

    def receive(self, timeout: float) -> tuple[float, int | None, list[str]] | None:
        self.sock.settimeout(max(0.01, timeout))
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("iII", payload[:12])
        item = (time.monotonic(), pid, data.decode().split("\n"))
        self.messages.append(item)
        return item

    def wait_for(self, field: str, timeout: float, proc: subprocess.Popen | None = None
                 ) -> tuple[float, int | None, list[str]] | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc is not None and proc.poll() is not None and not self._pending():
                return None
            got = self.receive(min(0.5, end - time.monotonic()))
            if got and field in got[2]:
                return got
        return None

    def _pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return True
        except BlockingIOError:
            return False
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def ask(endpoint: str, op: Op, timeout: float = 10.0) -> Reply:
    """One request on a fresh protocol client (the endpoint may be a systemd socket)."""
    client = Client(endpoint)
    try:
        return client.call(op, timeout=timeout)
    finally:
        client.close()


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


@pytest.fixture
def daemon_env(rx_tmp):
    env = make_env(rx_tmp, session=True)
    notify = rx_tmp / "notify.sock"
    env.update(NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="1000000")
    return env, notify


def test_ready_watchdog_stopping(daemon_env, rx_tmp, monkeypatch):
    env, notify_path = daemon_env
    listener = NotifyListener(notify_path)
    out = rx_tmp / "ragexd.out"
    monkeypatch.setenv("RAGEX_RUNTIME_DIR", env["RAGEX_RUNTIME_DIR"])
    from ragexd import paths
    endpoint = paths.daemon_endpoint()
    sock_path = paths.daemon_socket_path()
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ragexd", "--foreground"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
                                stdin=subprocess.DEVNULL)
    try:
        ready = listener.wait_for("READY=1", READY_DEADLINE, proc)
        assert ready is not None, (f"no READY=1 within {READY_DEADLINE} s (exit code "
                                   f"{proc.poll()}); ragexd said:\n{tail(out)}")
        # At READY the socket must already be bound: check before anything else.
        assert sock_path.exists(), f"READY=1 sent before {sock_path} was bound"
        assert ready[1] == proc.pid, "READY=1 did not come from ragexd's main pid"
        assert f"MAINPID={proc.pid}" in ready[2] or not any(
            f.startswith("MAINPID=") for f in ready[2])
        hello = ask(endpoint, Op.HELLO)
        assert hello.ok, hello.error
        assert hello.result["pid"] == proc.pid
        assert ask(endpoint, Op.PING).ok

        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.2:
            listener.receive(2.2 - (time.monotonic() - t0))
        pings = [m for m in listener.messages if m[0] >= t0 and "WATCHDOG=1" in m[2]]
        assert len(pings) >= 3, (f"{len(pings)} WATCHDOG=1 in 2.2 s at WATCHDOG_USEC=1 s "
                                 f"(want >= 3); messages: {listener.messages}")
        assert all(m[1] == proc.pid for m in pings)

        proc.send_signal(signal.SIGTERM)
        stopping = listener.wait_for("STOPPING=1", 15.0)
        assert stopping is not None, f"no STOPPING=1 after SIGTERM; ragexd said:\n{tail(out)}"
        assert stopping[1] == proc.pid
        code = proc.wait(timeout=30)
        assert code == 0, f"ragexd exited {code} after SIGTERM:\n{tail(out)}"
        assert not sock_path.exists(), "ragexd left its socket behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        listener.close()


def test_no_notify_socket_no_messages(rx_tmp):
    """Without NOTIFY_SOCKET (auto-start, a terminal) ragexd must not try to
    notify anyone and must still start: sd_notify is strictly optional."""
    env = make_env(rx_tmp, session=True)
    out = rx_tmp / "ragexd.out"
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ragexd", "--foreground"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
                                stdin=subprocess.DEVNULL)
    sock_path = Path(env["RAGEX_RUNTIME_DIR"]) / "ragexd.sock"
    try:
        end = time.monotonic() + READY_DEADLINE
        while not sock_path.exists() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        assert sock_path.exists(), f"ragexd did not bind its socket:\n{tail(out)}"
        assert ask("ipc://" + str(sock_path), Op.PING).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, tail(out)
        assert "sd_notify" not in out.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
