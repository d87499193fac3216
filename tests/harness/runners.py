"""Running ragex as users do: the ``ragexctl`` command, and the one-shot worker.

The client runs as a subprocess (``python -m ragexctl``) so a test sees exactly
what a user sees: exit code, stdout, stderr.  stdin is /dev/null unless the
test feeds it, so no command can wait on a terminal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragexd.protocol import Op, Request

from .env import REPO


def ragexctl(env: dict[str, str], *args: str, cwd: Path | str | None = None,
             timeout: float = 180.0, input: str | None = None,
             prefix: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``[PREFIX] python -m ragexctl ARGS`` in ``env``, from ``cwd`` (the repository
    by default); ``prefix`` wraps it (``setpriv``, ``unshare``…)."""
    return subprocess.run([*(prefix or []), sys.executable, "-m", "ragexctl", *args],
                          env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(cwd or REPO),
                          stdin=subprocess.DEVNULL if input is None else None, input=input)


def ragexctl_at_a_terminal(env: dict[str, str], *args: str, cwd: Path | str | None = None,
                           columns: int = 100, timeout: float = 180.0
                           ) -> subprocess.CompletedProcess[str]:
    """``python -m ragexctl ARGS`` with stdout a pseudo-terminal ``columns`` wide, as
    a person at a terminal sees it (stderr is a pipe); output with plain newlines."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    cmd = [sys.executable, "-m", "ragexctl", *args]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE, cwd=str(cwd or REPO))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:   # EIO: the child closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(cmd, proc.returncode,
                                       out.decode("utf-8", "replace").replace("\r\n", "\n"),
                                       err.decode("utf-8", "replace"))


def as_at_a_terminal() -> None:
    """In the child, before exec: Ctrl-C (SIGINT) does what it does at a terminal.
    A test run started in the background by a non-interactive shell inherits
    SIGINT *ignored*, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ragexctl_popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -m ragexctl ARGS`` left running (to kill ragexd under it, or to
    press Ctrl-C: SIGINT behaves as at a terminal)."""
    return subprocess.Popen([sys.executable, "-m", "ragexctl", *args], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(REPO),
                            preexec_fn=as_at_a_terminal)


def index_oneshot(env: dict[str, str], root: Path, timeout: float = 600) -> dict[str, Any]:
    """Index ``root`` without ragexd (the one-shot worker), so a later ragexd
    starts cold against an existing index, as after a login or a reboot."""
    from ragexd.paths import project_id_for

    index_dir = Path(env["RAGEX_DATA_DIR"]) / "projects" / project_id_for(root)
    request = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    out = subprocess.run([sys.executable, "-m", "ragexd.worker", "oneshot", "--root", str(root),
                          "--index-dir", str(index_dir)], input=json.dumps(request.to_wire()),
                         capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert reply["ok"], reply
    return reply["result"]
