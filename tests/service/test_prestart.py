"""Warm at login: ``ragexd --prestart N`` starts the N most recently used
projects' workers before anyone asks.

Two real projects are used (a request to each makes them "recent", the second
one last), ragexd is stopped, started again with ``--prestart 1``, and STATUS
- which never starts a worker itself - must show the most recent project's
worker starting or ready, and not the other one's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


from ragexd.protocol import Op, Reply, Request, decode, encode

from .conftest import REPO, isolated_env
from .test_notify import tail

import zmq

WARM_STATES = {"starting", "ready", "indexing"}


def make_project(path: Path, text: str) -> Path:
    (path / ".git").mkdir(parents=True)
    (path / "main.py").write_text(text)
    return path


class Daemon:
    def __init__(self, env: dict[str, str], out: Path, *args: str) -> None:
        self.env = env
        self.sock = Path(env["RAGEX_RUNTIME_DIR"]) / "ragexd.sock"
        self.endpoint = "ipc://" + str(self.sock)
        self.out = out
        with open(out, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ragexd", "--foreground", *args],
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(REPO), stdin=subprocess.DEVNULL)
        self.dealer = zmq.Context.instance().socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        end = time.monotonic() + 60
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"ragexd did not come up:\n{tail(out)}")
            time.sleep(0.05)
        self.dealer.connect(self.endpoint)

    def call(self, op: Op, project: str | None = None, args: dict | None = None,
             timeout: float = 120.0) -> Reply:
        req = Request(op=op, project=project, args=args or {}, timeout=timeout)
        self.dealer.send_multipart(encode(req))
        end = time.monotonic() + timeout + 5
        while time.monotonic() < end:
            if self.dealer.poll(500):
                msg = decode(self.dealer.recv_multipart())
                if isinstance(msg, Reply) and msg.id == req.id:
                    return msg
            elif self.proc.poll() is not None:
                raise AssertionError(f"ragexd exited {self.proc.returncode}:\n{tail(self.out)}")
        raise AssertionError(f"no reply to {op.value} within {timeout} s:\n{tail(self.out)}")

    def shutdown(self) -> int:
        try:
            if self.proc.poll() is None:
                self.call(Op.SHUTDOWN, timeout=10)
            return self.proc.wait(timeout=60)
        finally:
            self.dealer.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)


def workers_by_root(status: dict) -> dict[str, dict]:
    return {w["root"]: w for w in status.get("workers", [])}


def test_prestart_warms_the_most_recent_project(rx_tmp):
    env = isolated_env(rx_tmp, RAGEX_DAEMON_PRESTART="0", RAGEX_WATCH="0")
    older = make_project(rx_tmp / "older", "def alpha():\n    return 1\n")
    newer = make_project(rx_tmp / "newer", "def beta():\n    return 2\n")
    out = rx_tmp / "ragexd.out"

    first = Daemon(env, out, "--prestart", "0")
    try:
        for root in (older, newer):  # `newer` is used last, so it is the most recent
            reply = first.call(Op.WORKER_STATUS, project=str(root))
            assert reply.ok, reply.error
            time.sleep(1.1)
    finally:
        assert first.shutdown() == 0, tail(out)

    second = Daemon(env, out, "--prestart", "1")
    try:
        deadline = time.monotonic() + 30
        seen: dict[str, dict] = {}
        while time.monotonic() < deadline:
            status = second.call(Op.STATUS, timeout=10).raise_for_error()
            seen = workers_by_root(status)
            if seen.get(str(newer), {}).get("state") in WARM_STATES:
                break
            time.sleep(0.2)
        assert seen.get(str(newer), {}).get("state") in WARM_STATES, \
            f"the most recent project was not pre-started: {seen}\n{tail(out)}"
        assert seen.get(str(older), {}).get("state") not in WARM_STATES, \
            f"--prestart 1 started more than the most recent project: {seen}"
    finally:
        assert second.shutdown() == 0, tail(out)
